"""Who owns an alert and where it is sent: the routing file and the webhook delivery settings.

The routing file (shipped: `deploy/alerts/routing.toml`) names an owning team per series:

```toml
version = 1

[default]                       # required: who gets what no route matches
team = "journeys-oncall"
webhook = "https://alerts.example.com/hooks/journeys"     # generic JSON, optional
slack = "${JOURNEYS_SLACK_ONCALL}"                        # Slack-compatible, optional
pagerduty = "${JOURNEYS_PD_ONCALL}"   # PagerDuty Events v2 integration key, optional
runbook = "https://wiki.example.com/runbooks/journeys"    # in every page, optional
dashboard = "https://grafana.example.com/d/journeys"      # in every page, optional

[[route]]
name = "checkout"               # optional, shown in logs
team = "payments"
channel = "web"                 # glob patterns (fnmatch, case-sensitive), each optional
touchpoint = "/checkout*"
slack = "${JOURNEYS_SLACK_PAYMENTS}"
```

A route matches on `kind` (friction, dropoff, entries, volume), `channel`, `touchpoint`
(friction series), `source` (volume series), `journey` and `stage` (stage series); every key
it gives must match, and a key for a dimension the series does not have never matches (a
`touchpoint` route never takes a drop-off). The most specific matching route wins: the one
giving more keys, then more keys without wildcards, then more literal characters; ties go
to the first in the file. So order only matters between routes that say equally much.

URLs are http(s); `${NAME}` in one is replaced from the environment when the file is loaded,
so tokens (a Slack webhook URL is one) stay out of the file. They are kept as `SecretStr`.
`load_alert_routing` raises `schemas.config_files.ConfigFileError` listing every problem with
its line and key.

`WebhookSettings` are the knobs of delivery (`stream_processors/friction/alerts/webhooks.py`);
they are meant to sit in the one settings object as a section.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    ValidationInfo,
    model_validator,
)

from schemas.config_files import TomlFile, validate
from schemas.touchpoint import Channel

SERIES_KINDS = ("friction", "dropoff", "entries", "volume")
_GLOB = frozenset("*?[")
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")

Pattern = Annotated[str, StringConstraints(min_length=1, max_length=256, strip_whitespace=True)]
Team = Annotated[str, StringConstraints(min_length=1, max_length=128, strip_whitespace=True)]


def is_glob(pattern: str) -> bool:
    return any(c in _GLOB for c in pattern)


def _expand_url(value: object, info: ValidationInfo) -> SecretStr:
    """`${NAME}` from the environment (the context's `environ`, else the process's), then
    an http(s) URL with a host."""
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if not isinstance(value, str) or not value.strip():
        raise ValueError("a URL is a non-empty string")
    context = info.context if isinstance(info.context, dict) else {}
    environ: Mapping[str, str] = context.get("environ", os.environ)
    missing = [name for name in _ENV.findall(value) if not environ.get(name)]
    if missing:
        raise ValueError(f"environment variable {', '.join(missing)} is not set")
    url = _ENV.sub(lambda m: environ[m.group(1)], value.strip())
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        # Not echoed: the value may hold a token.
        raise ValueError("not an http(s) URL with a host")
    return SecretStr(url)


Url = Annotated[SecretStr, BeforeValidator(_expand_url)]


class _Strict(BaseModel):
    """A routing section: unknown keys are errors, values are immutable once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class WebhookTarget(_Strict):
    """One endpoint an alert is posted to, and the body it expects (`pagerduty`: an Events v2
    body carrying `routing_key`, the integration key)."""

    format: Literal["json", "slack", "pagerduty"]
    url: SecretStr
    routing_key: SecretStr | None = None

    @property
    def endpoint(self) -> str:
        return self.url.get_secret_value()

    @property
    def redacted(self) -> str:
        """Scheme and host only: safe for logs, metrics and dead letters (a path can hold a
        token, as Slack's do)."""
        parts = urlsplit(self.endpoint)
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{parts.hostname}{port}/..."


def _expand_key(value: object, info: ValidationInfo) -> SecretStr:
    """A PagerDuty integration key, `${NAME}` filled in from the environment like a URL."""
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if not isinstance(value, str) or not value.strip():
        raise ValueError("an integration key is a non-empty string")
    context = info.context if isinstance(info.context, dict) else {}
    environ: Mapping[str, str] = context.get("environ", os.environ)
    missing = [name for name in _ENV.findall(value) if not environ.get(name)]
    if missing:
        raise ValueError(f"environment variable {', '.join(missing)} is not set")
    return SecretStr(_ENV.sub(lambda m: environ[m.group(1)], value.strip()))


def _link(value: object) -> str:
    """A runbook or dashboard: an http(s) URL with a host, shown in every page (no secret)."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError("a URL is a non-empty string")
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{value!r} is not an http(s) URL with a host")
    return value.strip()


IntegrationKey = Annotated[SecretStr, BeforeValidator(_expand_key)]
Link = Annotated[str, BeforeValidator(_link)]
PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"


class _Targets(_Strict):
    team: Team
    webhook: Url | None = None  # generic JSON
    slack: Url | None = None  # Slack-compatible (`text` and `blocks`)
    pagerduty: IntegrationKey | None = None  # Events v2 integration (routing) key
    pagerduty_url: Url | None = None  # default: PagerDuty's Events v2 endpoint
    runbook: Link | None = None  # shown in every page of the route
    dashboard: Link | None = None

    def targets(self) -> tuple[WebhookTarget, ...]:
        pd_url = self.pagerduty_url or SecretStr(PAGERDUTY_EVENTS_URL)
        found = [
            WebhookTarget(format="json", url=self.webhook) if self.webhook else None,
            WebhookTarget(format="slack", url=self.slack) if self.slack else None,
            WebhookTarget(format="pagerduty", url=pd_url, routing_key=self.pagerduty)
            if self.pagerduty
            else None,
        ]
        return tuple(t for t in found if t is not None)


class DefaultRoute(_Targets):
    """Who owns a series no route matches."""


class RouteSpec(_Targets):
    """One `[[route]]`: patterns on the series' dimensions (see the module docstring)."""

    name: Pattern | None = None
    kind: Pattern | None = None
    channel: Pattern | None = None
    touchpoint: Pattern | None = None
    source: Pattern | None = None
    journey: Pattern | None = None
    stage: Pattern | None = None

    @model_validator(mode="after")
    def _sensible(self) -> RouteSpec:
        if not self.patterns():
            raise ValueError(
                "give at least one of kind, channel, touchpoint, source, journey, stage "
                "(a route without them is the [default])"
            )
        # A literal that can never match is a typo, not a route that waits for traffic.
        if self.channel and not is_glob(self.channel) and self.channel not in set(Channel):
            known = ", ".join(c.value for c in Channel)
            raise ValueError(f"channel {self.channel!r} is not a channel ({known})")
        if self.kind and not is_glob(self.kind) and self.kind not in SERIES_KINDS:
            raise ValueError(f"kind {self.kind!r} is not one of {', '.join(SERIES_KINDS)}")
        return self

    def patterns(self) -> dict[str, str]:
        """The dimensions this route constrains, with their patterns."""
        named = {
            "kind": self.kind,
            "channel": self.channel,
            "touchpoint": self.touchpoint,
            "source": self.source,
            "journey": self.journey,
            "stage": self.stage,
        }
        return {key: value for key, value in named.items() if value is not None}


class AlertRouting(_Strict):
    """A whole routing file."""

    version: Literal[1] = 1
    default: DefaultRoute
    route: tuple[RouteSpec, ...] = ()


class WebhookSettings(BaseModel):
    """Delivery of incident records to webhooks (`stream_processors/friction/alerts/webhooks.py`).
    Retries back off exponentially from `base_delay_seconds` to `max_delay_seconds`, each
    wait shortened by up to `jitter` of itself at random; a delivery gives up after
    `max_attempts` or once the next wait would end past `max_elapsed_seconds`, and goes to
    the dead-letter topic."""

    model_config = ConfigDict(extra="forbid")

    routing_file: Path | None = None  # None: alerts reach Kafka and ClickHouse only
    timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    max_attempts: int = Field(default=8, ge=1, le=100)
    max_elapsed_seconds: float = Field(default=300.0, gt=0, le=86_400)
    base_delay_seconds: float = Field(default=0.5, gt=0, le=60)
    max_delay_seconds: float = Field(default=60.0, gt=0, le=3_600)
    jitter: float = Field(default=0.5, ge=0, le=1)
    queue_size: int = Field(default=10_000, ge=1, le=1_000_000)  # per endpoint
    close_timeout_seconds: float = Field(default=10.0, ge=0, le=600)


WHAT = "alert routing"


def load_alert_routing(path: Path, environ: Mapping[str, str] | None = None) -> AlertRouting:
    """Read and validate a routing file, expanding `${NAME}` in URLs from `environ` (default:
    the process environment); `ConfigFileError` lists every problem."""
    file = TomlFile.read(path, WHAT)
    return parse_alert_routing(file.doc, file.text, path, environ)


def parse_alert_routing(
    doc: dict[str, Any], text: str, path: Path, environ: Mapping[str, str] | None = None
) -> AlertRouting:
    """Validate an already parsed file (`text` is only used to find lines)."""
    context = {"environ": os.environ if environ is None else environ}
    return validate(TomlFile(path, text, doc), AlertRouting, what=WHAT, context=context)
