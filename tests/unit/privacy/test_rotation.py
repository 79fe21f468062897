"""Key rotation: a rotated key hashes the old key's digest, so stored hashes can be carried to
it without the values, and an event's contact hashes are put back in their first form."""

from __future__ import annotations

from typing import Any

import pytest

from deploy.privacy.erasure import rotated_forms, suppressions
from deploy.privacy.rotation import RotationError, aliases
from deploy.privacy.scope import Scope
from producers.pii import PiiHasher, derive
from schemas.settings import PiiSettings, Settings
from stream_processors.privacy.core.rotation import canonical

KEYS = {"k1": "first", "k2": "second", "k3": "third"}
BEFORE = PiiSettings(keys=KEYS, active_key_id="k1")
AFTER = PiiSettings(keys=KEYS, active_key_id="k2", derived_from={"k2": "k1"})
LATER = PiiSettings(keys=KEYS, active_key_id="k3", derived_from={"k2": "k1", "k3": "k2"})


@pytest.mark.parametrize("later", [AFTER, LATER], ids=["one rotation", "two rotations"])
def test_an_old_hash_carried_to_the_new_key_is_what_the_new_key_makes(later: PiiSettings) -> None:
    old = PiiHasher(BEFORE).email(" Ann@Example.com")
    new = PiiHasher(later).email("ann@example.com")
    assert old.startswith("k1:") and new.startswith(f"{later.active_key_id}:")
    assert derive(later, old, later.active_key_id) == new
    assert derive(later, new, "k1") is None  # never backwards
    assert PiiHasher(later).email("bob@example.com") != new


def test_a_key_that_replaces_none_hashes_as_before() -> None:
    plain = PiiSettings(keys=KEYS, active_key_id="k2")
    assert PiiHasher(plain).email("a@b.c") != PiiHasher(AFTER).email("a@b.c")
    assert derive(plain, PiiHasher(BEFORE).email("a@b.c"), "k2") is None


def test_derived_from_must_name_known_keys() -> None:
    with pytest.raises(ValueError, match="derived_from"):
        PiiSettings(keys=KEYS, active_key_id="k2", derived_from={"k2": "k9"})


def test_stored_hashes_become_aliases_of_their_new_form() -> None:
    old = PiiHasher(BEFORE).email("ann@example.com")
    new = PiiHasher(AFTER).email("ann@example.com")
    found = aliases(Settings(pii=AFTER), [("email_hash", old), ("email_hash", new)])
    assert found == {f"email_hash:{new}": f"email_hash:{old}"}
    with pytest.raises(RotationError, match="DERIVED_FROM"):
        aliases(Settings(pii=BEFORE), [("email_hash", old)])


def event(**identity: str) -> dict[str, Any]:
    return {"event_id": "e", "identity": dict(identity)}


def test_an_event_gets_its_first_forms_back_and_the_window_adds_aliases() -> None:
    old = PiiHasher(BEFORE).email("ann@example.com")
    new = PiiHasher(AFTER).email("ann@example.com")
    known = {f"email_hash:{new}": f"email_hash:{old}"}
    seen = event(email_hash=new, customer_id="c-1")
    assert canonical(seen, known, None) is None
    assert seen["identity"] == {"email_hash": old, "customer_id": "c-1"}

    def carry(value: str) -> str | None:
        return derive(AFTER, value, "k2") if value.startswith("k1:") else None

    phone = "+44 20 7946 0958"
    before, after = PiiHasher(BEFORE).phone(phone), PiiHasher(AFTER).phone(phone)
    assert canonical(event(phone_hash=before), {}, carry) == {
        f"phone_hash:{after}": f"phone_hash:{before}"
    }
    assert canonical(event(email_hash=old), known, carry) is None  # known already
    assert canonical({"no": "identity"}, known, carry) is None


def test_an_erasure_covers_and_drops_the_rotated_forms_of_contact_hashes() -> None:
    old = PiiHasher(BEFORE).email("ann@example.com")
    settings = Settings(pii=LATER)
    forms = rotated_forms(settings, [f"email_hash:{old}", "customer_id:c-1"])
    assert forms == sorted(
        f"email_hash:{PiiHasher(s).email('ann@example.com')}" for s in (AFTER, LATER)
    )
    scope = Scope("customer_id:c-1", ("p1",), ("customer_id:c-1", f"email_hash:{old}"))
    assert len(suppressions(settings, scope)) == 2 + len(forms) + 1
