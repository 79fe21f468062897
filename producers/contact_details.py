"""Finding e-mail addresses and phone numbers in free text: the one detector every producer
uses where free text enters (the HTTP collector, the file adapters, `journeys publish`) and
the ingest stage applies again to whatever reaches `raw` from elsewhere.

Pure. E-mail addresses are found by their shape, Unicode included (`jané@exämple.com`, also
URL-encoded as `%40`). Phone numbers are found by libphonenumber's matcher (the
`phonenumbers` port) in each region of `pii.phone_regions`, at `pii.phone_leniency`, but only
inside candidate runs of digits that are not part of a longer token, and never in the shapes
of other numbers:

- the default leniency, `possible`, reads national formats the way people write them
  (`555 123 4567` in the US, `07700 900123` in the UK); `valid` misses both, because
  libphonenumber knows them as reserved fiction ranges, and any phone number a person types
  can be one digit off a valid range;
- at `possible` the matcher alone also takes dates (`20240115`, `2024-01-15` in the UK),
  amounts (`299.00`) and the digit groups of ids (`716-446655440000` inside a UUID), so
  candidates inside a longer token (letters, `-` or `/` joined), date and time shapes and
  amounts with decimals are never phones;
- a bare digit string (no separators, no `+`) is far more often an order number than a
  phone number, so it is a phone only when it starts with a national trunk `0` (`07700900123`)
  or an international `00` and then is a valid number; under a key that names a phone, any
  value is hashed (the collector's key rules), whatever its look;
- a national number people group with a trunk `0` that no region's plan knows
  (`08-26 01 81` in Sweden, with the default regions) is still taken;
- the work stays bounded on hostile texts: the search for runs never backtracks, a chain of
  more digits than three phone numbers is hashed whole, and past 16 runs in one text the
  shape rules decide without the matcher.

Regions only decide how national formats (no `+`, no `00`) are read: add those your
customers write; each costs a pass of the matcher over runs no earlier region took.

When in doubt the value is hashed: a lost order number is a smaller harm than a leaked phone
number. `tests/bench/scrub_rates.py` measures both errors on generated corpora.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import phonenumbers
from phonenumbers import Leniency, PhoneNumberMatcher

from schemas.settings import PhoneLeniency

LENIENCIES: dict[PhoneLeniency, int] = {
    "possible": Leniency.POSSIBLE,
    "valid": Leniency.VALID,
    "strict_grouping": Leniency.STRICT_GROUPING,
    "exact_grouping": Leniency.EXACT_GROUPING,
}
DEFAULT_PHONE_REGIONS = ("US", "GB", "DE", "FR")

# Bounded repetitions (RFC 5321 lengths) keep the search linear on hostile long texts. `\w`
# is Unicode: internationalized local parts and domains (`jané@exämple.com`) are addresses.
EMAIL = re.compile(
    r"[\w.%+\-]{1,64}(?:@|%40)[\w\-]{1,63}(?:\.[\w\-]{1,63}){0,8}\.[^\W\d_]{2,24}",
)
# A run of digits written the way numbers are written: phone punctuation between digits, an
# optional leading `+` or `(`, an optional extension. It must not continue a longer token on
# the left: a letter or digit, or a `-`, `/` or `.` that joins it to one (ids, versions,
# paths), or a time's `12:` (`10:15:43.123456`); `tel:+44 ...` and `phone:0161 ...` are runs.
# The run of digits and punctuation is possessive (the search never backtracks, so it stays
# linear on hostile texts); a run glued to a token on the right is judged in `_phone_run`.
_CANDIDATE = re.compile(
    r"(?<!\d:)(?:(?<![\w+])(?:\+|\(\+?)|(?<![\w\-/.+]))\d(?:[ \t().\-/]{0,3}+\d)*+\)?"
    r"(?:[ \t]?(?:x|ext\.?|#)[ \t]?\d{1,6}(?![\w\-/]))?"
)
_SEPARATORS = " \t().-/"
_Y, _M, _D = r"(?:19|20)\d{2}", r"(?:0?[1-9]|1[0-2])", r"(?:0?[1-9]|[12]\d|3[01])"
_DATE = re.compile(
    rf"\(?(?:{_Y}([\-./ ]){_M}\1{_D}|{_D}([\-./ ]){_M}\2(?:{_Y}|\d{{2}})"
    rf"|{_M}([\-./ ]){_D}\3(?:{_Y}|\d{{2}}))(?:[ T]\d{{1,2}})?\)?"
    rf"|{_Y}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{{0,6}}"  # 20240115, 20240115103000
)
# Amounts (`1 299 000.00`) and decimals (`43.123456`), but not `9487.5749` (Australia).
_AMOUNT = re.compile(r"[\d ]*\d\.\d{1,2}|\d{1,2}\.\d+|\d+\.\d{5,}")
_IPV4 = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}")
# A national number as people group it, with a trunk `0`: `08-26 01 81`, `(0161) 4960066`.
# Taken even when no region's numbering plan knows it (when in doubt, hash).
_NATIONAL = re.compile(r"\(?0\d{1,4}\)?(?:[ \-./]{1,2}\d{2,6}){1,4}")
_SEPARATOR = re.compile(r"[ \t().\-/]")
_MIN_DIGITS, _MAX_DIGITS = 7, 15
# The library's matcher costs 0.1 to 1 ms a run: a hostile text packed with numbers must not
# buy seconds of CPU. Past this many runs in one text, the shape rules decide alone.
_LIBRARY_RUNS = 16
# A run with more digits than three phone numbers is a chain of numbers: taken whole.
_CHAIN_DIGITS = 3 * _MAX_DIGITS
_PHONE_VALUE = re.compile(r"\+?\(?\d[\d ().\-/]*\d\)?")
_PHONE_START = frozenset("+(0123456789")

# Whole values that are a UUID or an ISO timestamp hold no contact detail: every event has
# them, and each is new, so they skip the search outright.
_STRUCTURED = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    r"|\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+\-]\d{2}:?\d{2})?"
)
# Whatever the rules above can change holds an `@`, a `%40` or a run of at least 7 digits
# and phone punctuation, so a text without any of them is left as it is. Most texts are
# such, and one search is cheaper than all the rules.
SUSPECT = re.compile(r"@|%40|\d[\d \t().\-/]{5,}\d")


def is_id_or_time(value: str) -> bool:
    """A whole value that is a UUID or an ISO timestamp (so it holds no contact detail)."""
    return _STRUCTURED.fullmatch(value) is not None


class ContactDetails:
    """Finds e-mail addresses and phone numbers in a text and replaces each by what
    `email` / `phone` return for it (the keyed hashes, `producers.pii`)."""

    def __init__(
        self,
        email: Callable[[str], str],
        phone: Callable[[str], str],
        regions: Sequence[str] = DEFAULT_PHONE_REGIONS,
        leniency: PhoneLeniency = "possible",
    ) -> None:
        self._email, self._phone = email, phone
        unknown = sorted(set(regions) - phonenumbers.SUPPORTED_REGIONS)
        if unknown:
            raise ValueError(f"pii.phone_regions: {', '.join(unknown)} is not a known region")
        self.regions = tuple(regions)
        self.leniency = LENIENCIES[leniency]

    def replace(self, text: str) -> str:
        """`text` with every e-mail address and phone number in it replaced."""
        if SUSPECT.search(text) is None or _STRUCTURED.fullmatch(text):
            return text
        if ("@" in text or "%40" in text) and EMAIL.search(text):
            text = EMAIL.sub(self._email_match, text)
        if looks_like_phone(text):
            return self._phone(text)
        budget = [_LIBRARY_RUNS]
        return _CANDIDATE.sub(lambda match: self._phone_run(match, budget), text)

    def phones(self, text: str) -> list[str]:
        """The phone numbers found in `text`, as written (for tests and measurements)."""
        found: list[str] = []
        budget = [_LIBRARY_RUNS]
        for match in _CANDIDATE.finditer(text):
            found.extend(text for _, _, text in self._phones_in(_own_part(match), budget))
        return found

    def _email_match(self, match: re.Match[str]) -> str:
        return self._email(match.group(0).replace("%40", "@"))

    def _phone_run(self, match: re.Match[str], budget: list[int]) -> str:
        run, rest = _own_part(match), ""
        if len(run) < len(match.group(0)):
            rest = match.group(0)[len(run) :]
        spans = self._phones_in(run, budget)
        for start, end, found in reversed(spans):
            run = run[:start] + self._phone(found) + run[end:]
        return run + rest

    def _phones_in(self, run: str, budget: list[int]) -> list[tuple[int, int, str]]:
        """(start, end, text) of the phone numbers in one candidate run, in order; those of
        the first region that finds any. A chain of numbers, or any run past the text's
        budget of library runs, is taken whole unless it is a bare digit string (when in
        doubt, hash)."""
        digits = sum(c.isdigit() for c in run)
        if digits < _MIN_DIGITS or _other_number(run):
            return []
        budget[0] -= 1
        if budget[0] < 0 or digits > _CHAIN_DIGITS:
            return [] if run.isdigit() and not run.startswith("0") else [(0, len(run), run)]
        for region in self.regions:
            spans = [
                (m.start, m.end, m.raw_string)
                for m in PhoneNumberMatcher(run, region, leniency=self.leniency)
                if _is_phone(m.raw_string, m.number)
            ]
            if spans:
                return self._and_the_rest(run, spans, budget)
        if digits >= _MIN_DIGITS + 1 and _NATIONAL.fullmatch(run):
            return [(0, len(run), run)]
        return []

    def _and_the_rest(
        self, run: str, spans: list[tuple[int, int, str]], budget: list[int]
    ) -> list[tuple[int, int, str]]:
        """`spans` and the phones in what they leave of `run`: the matcher takes one number
        from `555 123 4567 555 123 4567`, a run of two."""
        out, start = [], 0
        for span in [*spans, (len(run), len(run), "")]:
            rest = run[start : span[0]]
            if sum(c.isdigit() for c in rest) >= _MIN_DIGITS:
                # What lies between two numbers keeps its separators at both ends, which no
                # number's pattern takes (`00805 768292 ` before `555 123 4567`).
                lead = len(rest) - len(rest.lstrip(_SEPARATORS))
                rest = rest.strip(_SEPARATORS)
                at = start + lead
                out += [(at + a, at + b, t) for a, b, t in self._phones_in(rest, budget)]
            if span[2]:
                out.append(span)
            start = span[1]
        return out


def _own_part(match: re.Match[str]) -> str:
    """The part of a run that is not glued to a token on its right: a run followed by a
    letter, a digit, `-`, `/` or `.` and a digit (`4567abc`, `12-34x`, `3.5`) loses what is
    joined to that token."""
    run, after = match.group(0), match.string[match.end() : match.end() + 2]
    if not after or not (
        after[0].isalnum() or after[0] in "_-/" or (after[0] == "." and after[1:].isdigit())
    ):
        return run
    # `-`, `/` and `.` join groups as a token does: the run keeps what precedes its last space
    # or parenthesis, and nothing when it has none (`555-123-4567abc`, a UUID's digits).
    cut = max(run.rfind(c) for c in " \t()")
    return run[:cut].rstrip(_SEPARATORS) if cut > 0 else ""


def _other_number(written: str) -> bool:
    """A date, an amount or an IPv4 address."""
    return bool(_DATE.fullmatch(written) or _AMOUNT.fullmatch(written) or _IPV4.fullmatch(written))


def looks_like_phone(value: str) -> bool:
    """A whole value shaped like a phone number: 10 to 15 digits with phone punctuation, or
    8 to 15 after a leading `+`. Plain digit strings and IPv4 addresses are not phones."""
    text = value.strip()
    if not 8 <= len(text) <= 24 or text[0] not in _PHONE_START:
        return False
    if not _PHONE_VALUE.fullmatch(text):
        return False
    digits = sum(c.isdigit() for c in text)
    if text.startswith("+"):
        return 8 <= digits <= 15
    if digits == len(text) or _IPV4.fullmatch(text):
        return False
    return 10 <= digits <= 15


def _is_phone(written: str, number: phonenumbers.PhoneNumber) -> bool:
    """Whether one of the matcher's finds is a phone number and not another kind of number."""
    digits = sum(c.isdigit() for c in written)
    if not _MIN_DIGITS <= digits <= _MAX_DIGITS + 6:  # + an extension
        return False
    if written.startswith("+") or written.startswith("(+"):
        return True
    if _other_number(written):
        return False
    if _SEPARATOR.search(written):
        return True
    # A bare digit string: an order number unless it is dialled like a phone.
    return written.startswith("0") and (
        not written.startswith("00") or phonenumbers.is_valid_number(number)
    )
