"""producers.synthetic: deterministic demo traffic whose items are what they claim to be."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import orjson
import pytest
from pydantic import ValidationError

from producers.synthetic import INVALID_KINDS, Item, generate
from schemas.envelope import EnvelopeError, decode
from schemas.touchpoint import Touchpoint
from stream_processors.ingest.core.admission import Ingest
from tests.unit.builders import NOW

COUNT = 20_000
INVALID, DUPLICATE = 0.1, 0.05


@pytest.fixture(scope="module")
def items() -> list[Item]:
    return list(
        generate(COUNT, seed=11, invalid_ratio=INVALID, duplicate_ratio=DUPLICATE, start=NOW)
    )


def test_generate_is_deterministic_for_a_seed() -> None:
    def run(seed: int) -> list[Item]:
        return list(generate(300, seed=seed, invalid_ratio=0.2, duplicate_ratio=0.1, start=NOW))

    assert run(3) == run(3)
    assert run(3) != run(4)


def test_ratios_are_roughly_respected(items: list[Item]) -> None:
    kinds = Counter(item.kind for item in items)
    assert len(items) == COUNT
    invalid = sum(kinds[k] for k in INVALID_KINDS)
    assert invalid == pytest.approx(COUNT * INVALID, rel=0.1)
    assert kinds["duplicate"] == pytest.approx(COUNT * DUPLICATE, rel=0.15)
    assert kinds["valid"] == COUNT - invalid - kinds["duplicate"]
    # Every invalid kind shows up, in roughly equal shares.
    for kind in INVALID_KINDS:
        assert kinds[kind] == pytest.approx(invalid / len(INVALID_KINDS), rel=0.25)


def test_without_ratios_everything_is_valid() -> None:
    kinds = {item.kind for item in generate(500, seed=1, start=NOW)}
    assert kinds == {"valid"}


def test_valid_items_validate_and_are_keyed_by_their_stablest_identifier(
    items: list[Item],
) -> None:
    valid = [item for item in items if item.kind == "valid"]
    for item in valid:
        event = Touchpoint.model_validate(item.event)
        assert str(event.event_id) == item.event_id
        assert item.key == event.identity.partition_key()
        assert item.raw is None
    assert len({item.event_id for item in valid}) == len(valid)


def test_ingest_accepts_every_valid_item_and_drops_every_duplicate(items: list[Item]) -> None:
    ingest = Ingest({}, horizon=timedelta(days=1), future_tolerance=timedelta(minutes=5))
    sent = [item for item in items if item.kind in ("valid", "duplicate")]
    end = NOW + timedelta(seconds=COUNT * 0.05 + 1)  # the latest a valid item can occur
    result = ingest.process([item.event for item in sent], end)
    assert result.rejected == []
    assert len(result.accepted) == sum(item.kind == "valid" for item in sent)
    assert result.duplicates == sum(item.kind == "duplicate" for item in sent)


def test_duplicates_repeat_an_earlier_valid_event(items: list[Item]) -> None:
    seen: dict[str, Item] = {}
    duplicates = 0
    for item in items:
        if item.kind == "valid":
            assert item.event_id is not None
            seen[item.event_id] = item
        elif item.kind == "duplicate":
            duplicates += 1
            assert item.event_id in seen
            original = seen[item.event_id]
            assert (item.event, item.key) == (original.event, original.key)
    assert duplicates > 0


# What each invalid kind must become on the way in: a decode failure or an Ingest rejection.
EXPECTED_REASON = {
    "malformed_json": "malformed_json",
    "not_object": "not_an_object",
    "invalid_field": "invalid_field",
    "no_identity": "invalid_field",
    "future": "future_timestamp",
}


def rejection_reason(item: Item) -> str | None:
    payload = item.raw if item.raw is not None else orjson.dumps(item.event)
    try:
        decoded = decode(payload)
    except EnvelopeError as exc:
        return exc.reason
    ingest = Ingest({}, horizon=timedelta(days=7), future_tolerance=timedelta(minutes=5))
    result = ingest.process(decoded.events, NOW + timedelta(minutes=1))
    (rejection,) = result.rejected  # exactly one event, and it is refused
    assert result.accepted == []
    return rejection.reason


def test_every_invalid_item_is_refused_for_its_reason(items: list[Item]) -> None:
    assert set(EXPECTED_REASON) == set(INVALID_KINDS)
    invalid = [item for item in items if item.kind in EXPECTED_REASON]
    got = Counter((item.kind, rejection_reason(item)) for item in invalid)
    assert set(got) == set(EXPECTED_REASON.items())


@pytest.mark.parametrize("kind", ["invalid_field", "no_identity"])
def test_invalid_field_kinds_fail_touchpoint_validation(kind: str, items: list[Item]) -> None:
    bad = [item for item in items if item.kind == kind]
    assert bad
    for item in bad:
        with pytest.raises(ValidationError):
            Touchpoint.model_validate(item.event)
