"""What a request of the page asks, and who may ask it."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from deploy.query.options import QueryError
from deploy.ui import access
from deploy.ui.asking import Asked, AskingError, for_people, parse


def test_parameters_are_read_and_empty_ones_ignored() -> None:
    got = parse("from=2026-01-05T00%3A00&to=&definition=purchase&id=customer_id%3Ac-42&limit=20")
    assert got == Asked("2026-01-05T00:00", None, "purchase", "customer_id:c-42", 20, "json")
    assert parse("") == Asked()


@pytest.mark.parametrize("query", ["format=xml", "limit=0", "limit=51", "limit=ten"])
def test_a_malformed_parameter_is_refused(query: str) -> None:
    with pytest.raises(AskingError):
        parse(query)


def test_an_empty_range_is_a_question_without_answer_worded_for_the_page() -> None:
    with pytest.raises(QueryError) as empty:
        parse("from=2026-01-06&to=2026-01-05").span()
    assert for_people(str(empty.value)).startswith("empty range: from 2026-01-06")


TOKEN = SecretStr("s3cret")


def test_without_a_token_everyone_on_the_address_may_read() -> None:
    assert access.decide(None, "/", "", {}).allowed


@pytest.mark.parametrize(
    ("headers", "allowed"),
    [
        ({}, False),
        ({"authorization": "Bearer s3cret"}, True),
        ({"authorization": "Bearer wrong"}, False),
        ({"x-journeys-token": "s3cret"}, True),
        ({"cookie": f"journeys_ui={access.cookie_value('s3cret')}"}, True),
        ({"cookie": "journeys_ui=s3cret"}, False),  # the cookie holds a digest, not the token
        ({"cookie": 'journeys_ui="unterminated'}, False),
    ],
)
def test_with_a_token_a_request_must_carry_it(headers: dict[str, str], allowed: bool) -> None:
    assert access.decide(TOKEN, "/api/funnel", "", headers).allowed is allowed


def test_the_token_in_the_address_sets_the_cookie_and_leaves_the_address() -> None:
    got = access.decide(TOKEN, "/", "token=s3cret&definition=support", {})
    assert not got.allowed
    assert got.location == "/?definition=support"
    assert got.set_cookie is not None
    assert got.set_cookie.startswith(f"journeys_ui={access.cookie_value('s3cret')};")
    assert "HttpOnly" in got.set_cookie
    assert access.decide(TOKEN, "//elsewhere.example", "token=s3cret", {}).location == (
        "/elsewhere.example"
    )
    assert access.decide(TOKEN, "/", "token=wrong", {}) == access.REFUSED
