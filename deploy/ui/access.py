"""Who may read the page: everyone on this machine when no token is set; otherwise only
requests carrying it, as `Authorization: Bearer <token>`, an `X-Journeys-Token` header, or
the cookie that opening any address with `?token=<token>` sets (then the address is loaded
again without the token, so it stays out of the history and the server's logs).

The cookie holds a keyed digest of the token, not the token: it opens this page and is no use
anywhere else the token may be accepted."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie
from urllib.parse import parse_qsl, urlencode

from pydantic import SecretStr

COOKIE = "journeys_ui"


@dataclass(frozen=True)
class Decision:
    """allowed; or a redirect setting the cookie (`location`, `set_cookie`); or refused."""

    allowed: bool
    location: str | None = None
    set_cookie: str | None = None


ALLOWED = Decision(True)
REFUSED = Decision(False)


def cookie_value(token: str) -> str:
    return hmac.new(token.encode(), b"journeys ui cookie", hashlib.sha256).hexdigest()


def decide(
    token: SecretStr | None, path: str, query_string: str, headers: dict[str, str]
) -> Decision:
    """Whether a request (lower-cased header names) may be answered."""
    if token is None or not token.get_secret_value():
        return ALLOWED
    secret = token.get_secret_value()
    pairs = parse_qsl(query_string, keep_blank_values=True)
    offered = [v for k, v in pairs if k == "token"]
    if offered:
        if not _same(offered[-1], secret):
            return REFUSED
        rest = urlencode([(k, v) for k, v in pairs if k != "token"])
        path = "/" + path.lstrip("/")  # `//host` would send the browser to another site
        cookie = f"{COOKIE}={cookie_value(secret)}; Path=/; HttpOnly; SameSite=Strict"
        return Decision(False, f"{path}?{rest}" if rest else path, cookie)
    given = _header_token(headers)
    if given is not None:
        return ALLOWED if _same(given, secret) else REFUSED
    kept = _cookie(headers.get("cookie", ""))
    return ALLOWED if kept is not None and _same(kept, cookie_value(secret)) else REFUSED


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def _cookie(header: str) -> str | None:
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(header)
    except CookieError:
        return None
    morsel = jar.get(COOKIE)
    return None if morsel is None else morsel.value


def _header_token(headers: dict[str, str]) -> str | None:
    auth = headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return headers.get("x-journeys-token")
