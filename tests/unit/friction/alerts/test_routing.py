"""Owning-team routing: the shipped file, the most specific route winning, dimensions a
series does not have, URLs from the environment, and errors that say where."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from schemas.alerting import load_alert_routing, parse_alert_routing
from schemas.config_files import ConfigFileError
from stream_processors.friction.alerts.core.routing import AlertRouter, dimensions
from stream_processors.friction.core.rules import Series

SHIPPED = Path(__file__).resolve().parents[4] / "deploy" / "alerts" / "routing.toml"
ENV = {"SLACK_PAY": "https://hooks.slack.test/services/T0/B0/secret", "HOOK": "http://h:8080/a"}


def router(text: str, environ: dict[str, str] | None = None) -> AlertRouter:
    doc = tomllib.loads(text)
    return AlertRouter(parse_alert_routing(doc, text, Path("routing.toml"), environ or ENV))


def problems(text: str, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigFileError) as caught:
        router(text, environ)
    return [str(p) for p in caught.value.problems]


@pytest.mark.parametrize(
    ("series", "team"),
    [
        (Series("friction", "web:/checkout", "payment_declined"), "payments"),
        (Series("friction", "web:/checkout/done", "error"), "payments"),
        (Series("friction", "app:payment", "app_crash"), "payments"),
        (Series("friction", "web:/cart", "rage_click"), "storefront"),
        (Series("friction", "web:*", "error"), "storefront"),  # channel-wide
        (Series("friction", "app:home", "app_crash"), "mobile"),
        (Series("dropoff", "purchase:checkout:web", "dropoff"), "payments"),
        (Series("entries", "purchase:checkout:*", "entered"), "payments"),
        (Series("dropoff", "purchase:cart:app", "dropoff"), "storefront"),
        (Series("dropoff", "support:contact:*", "dropoff"), "customer-care"),
        (Series("friction", "call_center:queue:support", "long_queue_wait"), "customer-care"),
        (Series("friction", "store:store:042", "out_of_stock"), "retail-ops"),
        (Series("volume", "web:web-shop", "events"), "data-platform"),
        (Series("volume", "store:pos", "events"), "data-platform"),
        (Series("friction", "kiosk:/", "error"), "journeys-oncall"),
    ],
)
def test_the_shipped_routing(series: Series, team: str) -> None:
    routes = AlertRouter(load_alert_routing(SHIPPED, environ={}))
    assert routes.route(series).team == team


SPECIFIC = """
version = 1
[default]
team = "oncall"
webhook = "${HOOK}"

[[route]]
team = "web"
channel = "web"

[[route]]
name = "pay"
team = "payments"
channel = "web"
touchpoint = "/checkout*"
slack = "${SLACK_PAY}"

[[route]]
team = "first"
touchpoint = "/check*"

[[route]]
team = "second"
touchpoint = "/check*"
"""


def test_the_most_specific_route_wins_whatever_its_place() -> None:
    route = router(SPECIFIC).route(Series("friction", "web:/checkout", "error"))
    assert (route.team, route.matched) == ("payments", "route[1] pay")
    (target,) = route.targets
    assert target.format == "slack" and target.endpoint == ENV["SLACK_PAY"]
    assert target.redacted == "https://hooks.slack.test/..."  # the token stays out of logs
    assert "secret" not in repr(target)


def test_equally_specific_routes_go_by_order() -> None:
    route = router(SPECIFIC).route(Series("friction", "app:/checkout", "error"))
    assert route.team == "first"


def test_no_match_is_the_default_with_its_targets() -> None:
    route = router(SPECIFIC).route(Series("volume", "app:mobile-app", "events"))
    assert (route.team, route.matched) == ("oncall", "default")
    assert [(t.format, t.endpoint) for t in route.targets] == [("json", ENV["HOOK"])]


def test_a_pattern_on_a_dimension_the_series_lacks_never_matches() -> None:
    routes = router(SPECIFIC)
    assert routes.route(Series("dropoff", "purchase:checkout:web", "dropoff")).team == "web"
    assert routes.route(Series("dropoff", "purchase:checkout:*", "dropoff")).team == "oncall"


@pytest.mark.parametrize(
    ("series", "found"),
    [
        (
            Series("friction", "web:/product/:id", "error"),
            {"channel": "web", "touchpoint": "/product/:id"},
        ),
        (Series("volume", "web:web-shop", "events"), {"channel": "web", "source": "web-shop"}),
        (
            Series("dropoff", "purchase:cart:*", "dropoff"),
            {"journey": "purchase", "stage": "cart", "channel": "*"},
        ),
        (Series("dropoff", "broken", "dropoff"), {}),
    ],
)
def test_dimensions_of_a_series(series: Series, found: dict[str, str]) -> None:
    assert dimensions(series) == {"kind": series.kind, **found}


# -- bad files ------------------------------------------------------------------------------------

ROUTE = '\n[default]\nteam = "oncall"\n\n[[route]]\nteam = "a"\nchannel = "web"\n'


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '[default]\nteam = "x"\n\n[[route]]\nteam = "a"\nchanel = "web"\n',
            ["routing.toml:6: route[0].chanel: unknown key (misspelt?)"],
        ),
        (
            '[default]\nteam = "x"\n\n[[route]]\nteam = "a"\n',
            ["routing.toml:4: route[0]: give at least one of kind, channel"],
        ),
        (ROUTE + '\n[[route]]\nchannel = "app"\n', ["routing.toml:9: route[1].team: required"]),
        (
            ROUTE + '\n[[route]]\nteam = "b"\nchannel = "wbe"\n',
            ["routing.toml:9: route[1]: channel 'wbe' is not a channel"],
        ),
        (
            ROUTE + '\n[[route]]\nteam = "b"\nkind = "dropof"\n',
            ["routing.toml:9: route[1]: kind 'dropof' is not one of"],
        ),
        (
            ROUTE + 'slack = "${NOPE}"\n',
            ["routing.toml:8: route[0].slack: environment variable NOPE is not set"],
        ),
        (
            ROUTE + 'webhook = "ftp://x/y"\n',
            ["routing.toml:8: route[0].webhook: not an http(s) URL"],
        ),
        ('[default]\nwebhook = "${HOOK}"\n', ["routing.toml:1: default.team: required"]),
        (
            "version = 2\n",
            ["routing.toml:1: version: Input should be 1", "routing.toml: default: required"],
        ),
    ],
)
def test_bad_files_say_where(text: str, expected: list[str]) -> None:
    found = problems(text)
    assert len(found) == len(expected), found
    for problem, start in zip(sorted(found), sorted(expected), strict=True):
        assert problem.startswith(start), problem


def test_an_unreadable_or_invalid_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigFileError, match="cannot read the file"):
        load_alert_routing(tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[default\n", encoding="utf-8")
    with pytest.raises(ConfigFileError, match="not valid TOML"):
        load_alert_routing(broken)


def test_urls_come_from_the_environment_and_are_never_echoed(tmp_path: Path) -> None:
    path = tmp_path / "routing.toml"
    path.write_text('[default]\nteam = "x"\nslack = "https://${HOST}/t/${TOKEN}"\n', "utf-8")
    routing = load_alert_routing(path, environ={"HOST": "hooks.test", "TOKEN": "abc"})
    assert routing.default.slack is not None
    assert routing.default.slack.get_secret_value() == "https://hooks.test/t/abc"
    path.write_text('[default]\nteam = "x"\nslack = "hooks.test/t/abc123"\n', "utf-8")
    with pytest.raises(ConfigFileError) as caught:
        load_alert_routing(path, environ={})
    assert "abc123" not in str(caught.value)
