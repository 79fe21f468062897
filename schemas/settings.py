"""The one settings object of Journeys, read once at each entry point.

Sources, strongest first: keyword arguments, environment variables (`JOURNEYS_` prefix,
nested with `__`, for example `JOURNEYS_KAFKA__BOOTSTRAP_SERVERS`), then a TOML file named by
`JOURNEYS_SETTINGS_FILE` (default `journeys.toml` in the working directory, if present).
Connection pieces are plain models handed down to the adapters; secrets are `SecretStr`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from schemas import environment as environ_names
from schemas.alerting import WebhookSettings
from schemas.config_files import ConfigFileError, TomlFile
from schemas.identity_rules import IdentityRules

DEFAULT_SETTINGS_FILE = "journeys.toml"
SETTINGS_FILE_VARIABLE = "JOURNEYS_SETTINGS_FILE"
CHDB_SCHEME = "chdb:"
LIBRDKAFKA_LOGGER = "librdkafka"
# The shipped journey definitions (a deployment names its own files instead).
SHIPPED_DEFINITIONS = Path(__file__).resolve().parents[1] / "deploy" / "definitions"
# The shipped friction mapping and alert routing (a deployment names its own files instead).
SHIPPED_FRICTION_MAPPING = SHIPPED_DEFINITIONS.parent / "friction" / "defaults.toml"
SHIPPED_ALERT_ROUTING = SHIPPED_DEFINITIONS.parent / "alerts" / "routing.toml"


class Section(BaseModel):
    """A settings section: a misspelt key is an error, not a silently kept default."""

    model_config = ConfigDict(extra="forbid")


class KafkaSettings(Section):
    """How every Kafka client (confluent-kafka and faust's aiokafka) reaches the cluster."""

    bootstrap_servers: str = "127.0.0.1:19092"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None

    def as_librdkafka_dict(self) -> dict[str, Any]:
        """The connection part of a confluent-kafka configuration. librdkafka's own log goes
        through the `librdkafka` logger (deploy/logs.py keeps its repeats out) instead of
        straight to stderr, where an unreachable broker printed a line every 50 ms."""
        conf: dict[str, Any] = {
            "logger": logging.getLogger(LIBRDKAFKA_LOGGER),
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": self.security_protocol.lower(),
        }
        if self.sasl_mechanism:
            conf["sasl.mechanism"] = self.sasl_mechanism
        if self.sasl_username:
            conf["sasl.username"] = self.sasl_username
        if self.sasl_password:
            conf["sasl.password"] = self.sasl_password.get_secret_value()
        for key, path in (
            ("ssl.ca.location", self.ssl_cafile),
            ("ssl.certificate.location", self.ssl_certfile),
            ("ssl.key.location", self.ssl_keyfile),
        ):
            if path is not None:
                conf[key] = str(path)
        return conf


class TopicSettings(Section):
    """Topic naming and sizing. The partition count is fixed at creation: keyed state depends
    on it, so changing it is a migration (see ARCHITECTURE.md), not a setting flip."""

    prefix: str = "journeys."
    partitions: int = Field(default=12, ge=1, le=1024)
    replication_factor: int = Field(default=1, ge=1)
    # How long the data topics (every topic neither compacted nor a dead-letter or audit topic)
    # keep records, set when they are created; None: the broker's log.retention.hours (168 by
    # Kafka's default). It bounds how long an erased person's events stay in them
    # (docs/concepts.md §10).
    retention_hours: int | None = Field(default=None, ge=1)

    def name(self, base: str) -> str:
        return f"{self.prefix}{base}"

    def group(self, stage: str) -> str:
        """The consumer group (and faust app id) of a stage: one deployment, one prefix."""
        return f"{self.prefix}{stage}"


class BatchSettings(Section):
    """Bounds of the per-partition micro-batches written between stages (docs/concepts.md §9)."""

    max_events: int = Field(default=500, ge=1, le=100_000)
    max_bytes: int = Field(default=512 * 1024, ge=1024, le=8 * 1024 * 1024)
    linger_seconds: float = Field(default=0.05, ge=0.0, le=10.0)


class ClickHouseUser(Section):
    """A user of the HTTP interface and the limits every one of its queries runs under."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    password: SecretStr = SecretStr("")
    # Read-only users can neither write nor change settings (ClickHouse's readonly=1).
    readonly: bool = False
    max_threads: int | None = Field(default=None, ge=1)
    max_execution_time_seconds: float | None = Field(default=None, gt=0)
    max_memory_usage_bytes: int | None = Field(default=None, ge=1)


LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


class ClickHouseHttpSettings(Section):
    """ClickHouse's HTTP interface over the embedded engine. chDB allows one process per data
    folder, so the process that owns it (the sink, `journeys db serve`) serves it here and
    every other reader (reports, queries, the page, BI tools) connects to it."""

    serve: bool = True
    host: str = "127.0.0.1"
    # 0: any free port; readers find the one chosen in the announcement beside the folder.
    port: int = Field(default=8123, ge=0, le=65535)
    users: list[ClickHouseUser] = [ClickHouseUser(name="default")]
    # The user this deployment's own commands connect as.
    client_user: str = "default"
    # Queries run at once; more wait their turn.
    max_concurrent_queries: int = Field(default=16, ge=1)
    # Idle HTTP sessions (a client's `session_id`) are closed after this.
    session_timeout_seconds: float = Field(default=60.0, gt=0)

    @model_validator(mode="after")
    def _users_fit(self) -> ClickHouseHttpSettings:
        names = [user.name for user in self.users]
        if len(set(names)) != len(names):
            raise ValueError(f"users: a name appears twice ({', '.join(sorted(names))})")
        if self.client_user not in names:
            raise ValueError(f"client_user: {self.client_user!r} is not one of users ({names})")
        if self.host not in LOOPBACK_HOSTS:
            open_users = [u.name for u in self.users if not u.password.get_secret_value()]
            if open_users:
                raise ValueError(
                    f"host: {self.host} is reachable from other machines, so every user needs "
                    f"a password (none for {', '.join(open_users)})"
                )
        return self

    def user(self, name: str) -> ClickHouseUser | None:
        return next((user for user in self.users if user.name == name), None)


class ClickHouseSettings(Section):
    """One DSN: `chdb:///path` (embedded engine, the default) or `http(s)://user:pw@host:port/db`.

    A relative embedded folder (`chdb:data/ch`, `chdb://data/ch`) is taken from the working
    directory when the settings are read, and kept absolute (`relative_folder` says which
    was given, for the entry point to say so)."""

    dsn: SecretStr | None = None
    # A ClickHouse cluster's name (remote_servers): the schema is made ON CLUSTER, each table
    # as a Replicated `<table>_local` under a Distributed `<table>` (sinks/cluster.py).
    cluster: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
    http: ClickHouseHttpSettings = ClickHouseHttpSettings()
    _relative: str | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _absolute_folder(self) -> ClickHouseSettings:
        if self.dsn is not None:
            given = self.dsn.get_secret_value()
            absolute = absolute_chdb_dsn(given, Path.cwd())
            if absolute != given:  # `chdb:/a` only gains its `//`
                self.dsn = SecretStr(absolute)
            if absolute != absolute_chdb_dsn(given, Path("/")):
                self._relative = given
        return self

    @property
    def relative_folder(self) -> str | None:
        """The relative embedded DSN that was given, if one was (it holds no credentials)."""
        return self._relative

    def resolved_dsn(self, data_dir: Path) -> str:
        if self.dsn is not None:
            return self.dsn.get_secret_value()
        return f"chdb://{(data_dir / 'clickhouse').resolve()}"


def absolute_chdb_dsn(dsn: str, cwd: Path) -> str:
    """`dsn` with a relative embedded folder made absolute against `cwd`: `chdb:a/b` and
    `chdb://a/b` are the folder a/b (`chdb:/a`, `chdb:///a` are /a already); anything else,
    and the in-memory engine (`chdb://memory`, `chdb://:memory:`), as it is."""
    if not dsn.startswith(CHDB_SCHEME):
        return dsn
    location, mark, query = dsn[len(CHDB_SCHEME) :].partition("?")
    if location.startswith("//"):
        location = location[2:]
        if location.split("/", 1)[0] in ("", "memory", ":memory:"):
            return dsn
    elif location.startswith("/"):
        return f"{CHDB_SCHEME}//{location}{mark}{query}"
    if not location or location.startswith("/"):
        return dsn
    return f"{CHDB_SCHEME}//{(cwd / location).resolve()}{mark}{query}"


class LocalBrokerSettings(Section):
    """The project-local single-node KRaft broker used by `make demo`, `make test` and dev."""

    instance: str = "dev"
    port: int = 19092
    controller_port: int = 19093
    kafka_version: str = "4.1.1"
    jars_dir: Path | None = None  # default: <data_dir>/kafka-jars/<version>
    heap: str = "768m"
    start_timeout_seconds: float = 90.0


# Each stage's default Prometheus port, so the four run side by side on one host.
STAGE_METRICS_PORTS = {"ingest": 9464, "identity": 9465, "journeys": 9466, "friction": 9467}


class ProcessorSettings(Section):
    """Knobs shared by the faust stages."""

    # Names the transactional producer (`<group>-<worker_id>`): unique among the stage's live
    # workers, the same across a restart. Unset: `<hostname>-<n>`, n the lowest slot free on
    # this host (stream_processors/runtime/worker_id.py says why).
    worker_id: str | None = Field(default=None, min_length=1, max_length=200)
    commit_interval_seconds: float = Field(default=1.0, gt=0)
    session_timeout_seconds: float = Field(default=10.0, ge=6)
    dedup_horizon: timedelta = timedelta(days=7)
    future_tolerance: timedelta = timedelta(minutes=5)
    # Events older than this (by the clock of the collector or the ingest stage) are
    # dead-lettered as `old_timestamp`: a year-0001 time is a broken client, not history.
    # Raise it to import older history (`/v1/import`, `journeys publish --history`).
    max_event_age: timedelta = Field(default=timedelta(days=730), gt=timedelta(0))
    allowed_lateness: timedelta = timedelta(minutes=2)
    # "stage": the stage's own (STAGE_METRICS_PORTS), so all of them run on one host; 0: any
    # free port (logged); None: no metrics.
    metrics_port: Annotated[int, Field(ge=0, le=65535)] | Literal["stage"] | None = "stage"
    # Channels whose events arrive late by nature (store batches, call-center exports): they
    # do not move the event-time watermark, which is the timely channels' (docs/concepts.md §5).
    late_channels: frozenset[str] = frozenset({"store", "call_center"})
    # Live mode: a `raw` partition without input this long gets a watermark heartbeat at the
    # wall clock minus the allowed lateness, so drop-offs still fire in quiet hours, but only
    # if its event time is within the lateness plus this period of the clock (a partition
    # replaying old data is never pushed to the present). 0 turns it off: replays close time
    # with the heartbeats they publish (`journeys simulate`); the history domain never has it.
    idle_after_seconds: float = Field(default=60.0, ge=0)

    def metrics_port_of(self, stage: str) -> int | None:
        """The port `stage` serves its metrics on (0: any free one), or None."""
        if self.metrics_port == "stage":
            return STAGE_METRICS_PORTS.get(stage, 0)
        return self.metrics_port


class JourneyStageSettings(Section):
    """The journeys stage: which definitions it runs and how it treats time."""

    definitions: list[Path] = [
        SHIPPED_DEFINITIONS / "purchase.toml",
        SHIPPED_DEFINITIONS / "support.toml",
    ]
    session_gap: timedelta = timedelta(minutes=30)
    # How far behind the watermark an event may still change journeys (and so how long ended
    # journeys are kept in memory); older ones are counted as rejected.
    late_tolerance: timedelta = timedelta(hours=72)
    # How far a partition's input may run ahead of its time (the upstream watermark on
    # `stitched` past the partition's watermark) before the stage stops reading that
    # partition's `stitched` until half of it is left. Events read ahead of time are held in
    # memory until time passes them; in a replay or a catch-up the input runs hours ahead.
    read_ahead: timedelta = Field(default=timedelta(hours=1), gt=timedelta(0))


class FixedThresholdSettings(Section):
    """A hand-set limit for the series matching `kind`, `scope` and `name` (`*` patterns):
    a rate above `max_rate` for `friction` and `dropoff`, a count below `min_count` for
    `entries` and `volume` (`stream_processors/friction/core/rules.py` FixedThreshold)."""

    kind: Literal["friction", "dropoff", "entries", "volume"]
    scope: str = "*"
    name: str = "*"
    max_rate: float | None = Field(default=None, gt=0, le=1)
    min_count: float | None = Field(default=None, ge=0)
    severity: Literal["warning", "critical"] = "warning"


class DetectorSettings(Section):
    """The friction detector (`stream_processors/friction/core/detector.py`, `baselines.py`): how
    sure an alert must be, how much volume a series needs, and how baselines learn."""

    alpha: float = Field(default=1e-6, gt=0, lt=1)
    critical_alpha: float = Field(default=1e-9, gt=0, lt=1)
    spike_ratio: float = Field(default=2.0, ge=1)
    collapse_ratio: float = Field(default=0.2, ge=0, lt=1)
    min_signals: int = Field(default=5, ge=1)
    min_exposures: int = Field(default=20, ge=1)
    min_rate: float = Field(default=0.001, ge=0, lt=1)
    min_expected: float = Field(default=10.0, gt=0)
    warmup_windows: int = Field(default=12, ge=1)
    half_life_windows: float = Field(default=36.0, gt=0)
    season_buckets: int = Field(default=24, ge=1, le=288)  # per day; 1 turns it off
    season_min_periods: float = Field(default=3.0, gt=0)
    forget_after: timedelta = timedelta(days=7)
    revisable_for: timedelta = timedelta(days=1)
    # How long after a late channel's window closes (`processor.late_channels`) its counts
    # (stage entries, source volume) are judged for a collapse: set it to how late the
    # channel's exports land (0 judges them on close). Its friction and drop-off rates are
    # judged on close as usual.
    late_count_wait: timedelta = Field(default=timedelta(hours=2), ge=timedelta(0))
    thresholds: list[FixedThresholdSettings] = []
    # Tests over the run of recent windows (`sequential.py`): a CUSUM alarms at h, so the mean
    # run to a false alarm is at least e^h windows per test (13.8: 10^6); `critical_h` makes
    # it critical. Designed changes: a rate `cusum_rise` times, a drop-off share's odds
    # `cusum_odds` times, a stage's progression hazard `cusum_fall` of normal.
    cusum: bool = True
    cusum_h: float = Field(default=13.815510557964274, gt=0)
    cusum_critical_h: float = Field(default=20.72326583694641, gt=0)
    cusum_rise: float = Field(default=2.0, gt=1)
    cusum_odds: float = Field(default=3.0, gt=1)
    cusum_fall: float = Field(default=0.3, gt=0, lt=1)
    progression: bool = True  # test stage series' entrants in flight (`progression.py`)
    # The progression test's own threshold (9.2: 10^4 windows, 35 days, on average to a false
    # alarm per stage series): a stall must be found from the windows 15 minutes close.
    cusum_progression_h: float = Field(default=9.210340371976184, gt=0)


class FrictionSettings(Section):
    """The friction and alerts stage: series in event-time windows, the detector, incidents.

    `allowed_lateness` is how long a closed window still takes late events (and is
    re-emitted as a new version); events later than that are counted and dropped. The
    windows of series only late-arriving channels feed (`processor.late_channels`) take
    their batches for `journeys.late_tolerance` instead (docs/concepts.md §5).
    """

    mapping: Path = SHIPPED_FRICTION_MAPPING
    team_mapping: Path | None = None  # a team's file extending the mapping
    window: timedelta = timedelta(minutes=5)
    allowed_lateness: timedelta = timedelta(hours=1)
    max_touchpoints: int = Field(default=5_000, ge=1)
    # Stage series (entries, drop-offs) need the journeys stage's topics; without them the
    # windows close on the `stitched` watermark alone.
    stage_series: bool = True
    resolve_after: int = Field(default=3, ge=1)  # normal windows before an incident resolves
    examples: int = Field(default=3, ge=0, le=20)  # example journeys per alert
    reference_windows: int = Field(default=12, ge=1)  # "before" for the likely cause
    detector: DetectorSettings = DetectorSettings()


class SinkSettings(Section):
    """Batching of the ClickHouse sink."""

    max_rows: int = Field(default=50_000, ge=1)
    max_seconds: float = Field(default=1.0, gt=0)
    # Write a partition's batch as soon as the sink has read all there is in it, rather than
    # when it is `max_seconds` old: the stages commit once a second, so waiting longer only
    # made rows later. False batches by age and size alone (fewer, larger inserts).
    flush_when_caught_up: bool = True
    group_id: str | None = None  # default: `<topic prefix>sink`


PhoneLeniency = Literal["possible", "valid", "strict_grouping", "exact_grouping"]


class PiiSettings(Section):
    """Keys for hashing e-mail addresses and phone numbers (HMAC-SHA-256) in producers.

    The built-in `dev` key exists so demos and tests run out of the box; set your own key
    (JOURNEYS_PII__KEYS='{"2026a": "..."}' and JOURNEYS_PII__ACTIVE_KEY_ID=2026a) in production.
    """

    keys: dict[str, SecretStr] = {"dev": SecretStr("journeys-development-key-not-secret")}
    active_key_id: str = "dev"
    default_country_code: str = Field(default="1", pattern=r"^\d{1,3}$")
    # Phone numbers in free text (producers/contact_details.py): the regions whose national
    # formats are read (ISO 3166 codes; numbers written with + or 00 are found whatever the
    # region), and libphonenumber's leniency. `possible`, because `valid` misses numbers as
    # people type them (`555 123 4567`, `07700 900123` are reserved ranges); the detector's
    # own shape rules keep dates, amounts and ids out. Each region costs a pass over texts
    # that hold a candidate number.
    phone_regions: list[Annotated[str, Field(pattern=r"^[A-Z]{2}$")]] = Field(
        default=["US", "GB", "DE", "FR"], min_length=1
    )
    phone_leniency: PhoneLeniency = "possible"

    # Key rotation (docs/concepts.md, Privacy): a new key id -> the key id it replaces. A key
    # listed here hashes the hash the key it replaces makes, so the identity stage can carry
    # every hash it knows to the new key without the values (`journeys privacy rotate-key`).
    derived_from: dict[str, str] = {}
    # Until then (the rotation window) the identity stage also carries to the active key any
    # hash under the key it replaces that producers not yet switched still send.
    rotation_window_until: datetime | None = None

    @model_validator(mode="after")
    def _rotation_names_known_keys(self) -> PiiSettings:
        for new, old in self.derived_from.items():
            if new not in self.keys or old not in self.keys:
                raise ValueError(f"derived_from {new!r}: {old!r} are not both among the keys")
        return self

    @model_validator(mode="after")
    def _active_key_exists(self) -> PiiSettings:
        if self.active_key_id not in self.keys:
            raise ValueError(f"active_key_id {self.active_key_id!r} is not among the keys")
        return self


class PrivacySettings(Section):
    """Erasure and its suppression list (docs/concepts.md, Privacy).

    The sink re-reads the suppression list from ClickHouse at most every
    `suppression_refresh_seconds`; the ingest stage follows its topic as it is written.
    """

    suppression_refresh_seconds: float = Field(default=2.0, gt=0)


CollectorChannel = Literal["web", "app", "call_center", "store"]


class CollectorSource(Section):
    """One sending system behind a write key, as a Segment source: its name (the touchpoint's
    `source`) and the channel its events belong to unless their context says otherwise.

    What its calls carry (producers/collector/identifiers.py, places.py, attribution.py):
    - `identifiers`: trait or property names that carry an identifier, beside Segment's
      conventional ones (`email`, `phone`; `loyalty_id`, `loyaltyId`, `loyalty_card` for a
      loyalty card), for example {"member_no": "loyalty_id", "crm_id": "customer_id"};
    - `touchpoint`: per channel, the fields of a call its touchpoint is taken from, first
      found wins (default: the page's path on web, the screen's name in apps);
    - `query_allowlist`: query parameters kept in page and referrer URLs beside `utm_*`;
    - `ip`: the client's address is dropped, or kept `truncate`d (/24, /48) or as a keyed
      `hash`; never raw.
    """

    name: str = Field(min_length=1, max_length=128)
    channel: CollectorChannel
    identifiers: dict[
        str, Literal["customer_id", "loyalty_id", "email", "phone", "device_id", "anonymous_id"]
    ] = {}
    touchpoint: dict[CollectorChannel, list[str]] = {}
    query_allowlist: list[str] = []
    ip: Literal["drop", "truncate", "hash"] = "drop"


class CollectorSettings(Section):
    """The HTTP collector (`journeys collector`): Segment's tracking API in front of `raw`.

    Sources map write keys to sources, for example
    JOURNEYS_COLLECTOR__SOURCES='{"wk_web_1": {"name": "web-shop", "channel": "web"}}'.
    The rate limit counts events per write key and second; a key may burst
    `rate_limit_burst_seconds` worth of them.
    """

    host: str = "127.0.0.1"
    port: int = Field(default=8088, ge=0, le=65535)
    sources: dict[SecretStr, CollectorSource] = {}
    max_batch_bytes: int = Field(default=500_000, ge=1024, le=16 * 1024 * 1024)
    max_event_bytes: int = Field(default=32_768, ge=256, le=1024 * 1024)
    rate_limit_per_key_per_second: float = Field(default=5_000.0, gt=0)
    rate_limit_burst_seconds: float = Field(default=2.0, gt=0)
    cors_origins: list[str] = ["*"]
    # How long a request's events wait for other requests' events to share Kafka messages.
    linger_seconds: float = Field(default=0.005, ge=0.0, le=1.0)
    # Kafka must acknowledge a request's events within this time, or the request gets 503
    # (and the SDK retries; the deterministic event ids make the retry a duplicate to drop).
    ack_timeout_seconds: float = Field(default=30.0, gt=0, le=300)
    # Against hostile or broken clients (producers/collector/server.py): request headers past
    # this size get 431; a connection that has not sent a whole request head within
    # `idle_timeout_seconds` (idle, or trickling its headers) is closed; a body not received
    # within `request_timeout_seconds` of its head gets 408; past `max_connections` open
    # connections per process, new ones are closed at once (logged).
    max_header_bytes: int = Field(default=16_384, ge=1024, le=1024 * 1024)
    idle_timeout_seconds: float = Field(default=5.0, gt=0, le=600)
    request_timeout_seconds: float = Field(default=10.0, gt=0, le=600)
    max_connections: int = Field(default=2_000, ge=1)
    # Collector processes serving `port` together (SO_REUSEPORT), each with its own producer.
    workers: int = Field(default=1, ge=1, le=64)
    # /health/live, /health/ready and /metrics, on a listener of their own.
    admin_host: str = "127.0.0.1"
    admin_port: int = Field(default=9468, ge=0, le=65535)


class UiSettings(Section):
    """The analysts' page (`journeys ui`): read-only, on this machine unless told otherwise.
    Bound to another address, every request must carry the token (a header, or the cookie
    that opening the page with `?token=` sets)."""

    host: str = "127.0.0.1"
    port: int = Field(default=8089, ge=0, le=65535)
    token: SecretStr | None = None

    @model_validator(mode="after")
    def _token_when_exposed(self) -> UiSettings:
        if self.host not in LOOPBACK_HOSTS and not (self.token and self.token.get_secret_value()):
            raise ValueError(
                f"host: {self.host} is reachable from other machines, so the page needs a "
                "token (JOURNEYS_UI__TOKEN)"
            )
        return self


class WatchSettings(Section):
    """`journeys watch`: which groups to watch, and when one counts as stalled."""

    host: str = "127.0.0.1"
    port: int = Field(default=9470, ge=0, le=65535)
    # A group behind its input whose committed offsets have not moved for this long is stalled.
    stall_after_seconds: float = Field(default=120.0, gt=0)
    poll_seconds: float = Field(default=5.0, gt=0)
    # Default: the four stages' groups and the sink's.
    groups: list[str] | None = None


class FaultSettings(Section):
    """Fault injection for crash tests. Never set in production."""

    sink_exit_after_inserts: int | None = None
    # Exit right after the stage's Kafka transaction commits and before faust commits the
    # source offsets: the window in which inputs are re-delivered but already applied.
    stage_exit_after_transactions: int | None = None
    # SIGKILL the stage after this many committed transactions, once the next one's records
    # reached the broker uncommitted: a crash mid-transaction, which leaves an aborted one.
    stage_kill_in_transaction: int | None = None


class Settings(BaseSettings):
    """Everything a Journeys process needs to know, in one place."""

    model_config = SettingsConfigDict(
        env_prefix="JOURNEYS_",
        env_nested_delimiter="__",
        extra="forbid",
    )

    data_dir: Path = Path(".local")
    kafka: KafkaSettings = KafkaSettings()
    topics: TopicSettings = TopicSettings()
    batch: BatchSettings = BatchSettings()
    clickhouse: ClickHouseSettings = ClickHouseSettings()
    local_broker: LocalBrokerSettings = LocalBrokerSettings()
    processor: ProcessorSettings = ProcessorSettings()
    sink: SinkSettings = SinkSettings()
    pii: PiiSettings = PiiSettings()
    privacy: PrivacySettings = PrivacySettings()
    collector: CollectorSettings = CollectorSettings()
    ui: UiSettings = UiSettings()
    faults: FaultSettings = FaultSettings()
    watch: WatchSettings = WatchSettings()
    journeys: JourneyStageSettings = JourneyStageSettings()
    friction: FrictionSettings = FrictionSettings()
    # Alert routing (owning teams, webhook targets) and webhook delivery; see schemas/alerting.py.
    alerts: WebhookSettings = WebhookSettings(routing_file=SHIPPED_ALERT_ROUTING)
    # The guards of identity stitching (denylist, caps, priorities); see its docstring.
    identity: IdentityRules = IdentityRules()
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "text"] = "json"

    @model_validator(mode="after")
    def _absolute_data_dir(self) -> Settings:
        self.data_dir = self.data_dir.expanduser().resolve()
        return self

    @property
    def clickhouse_dsn(self) -> str:
        return self.clickhouse.resolved_dsn(self.data_dir)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        toml_file = settings_file(os.environ)
        if toml_file is not None:
            sources.append(_SettingsFile(settings_cls, toml_file=toml_file))
        return tuple(sources)


class SettingsError(ValueError):
    """Settings that cannot be used, said in one line (pydantic's `ValidationError` says the
    rest: a bad value or a misspelt key inside a section)."""


def settings_file(environ: Mapping[str, str]) -> Path | None:
    """The TOML file to read: the one JOURNEYS_SETTINGS_FILE names, which must exist, else
    `journeys.toml` in the working directory if there is one."""
    named = environ.get(SETTINGS_FILE_VARIABLE)
    if named is None:
        default = Path(DEFAULT_SETTINGS_FILE)
        return default if default.is_file() else None
    path = Path(named).expanduser()
    if not path.is_file():
        what = "is not a file" if path.exists() else "does not exist"
        raise SettingsError(f"{SETTINGS_FILE_VARIABLE}: {path.resolve()} {what}")
    return path


class _SettingsFile(TomlConfigSettingsSource):
    """The settings file, whose syntax errors are one line with the file, line and column."""

    def _read_file(self, file_path: Any) -> dict[str, Any]:
        try:
            return TomlFile.read(Path(file_path), "settings file").doc
        except ConfigFileError as exc:
            raise SettingsError(f"invalid settings file {exc.problems[0]}") from None


def load_settings(**overrides: Any) -> Settings:
    """Read the settings at an entry point. A bad value fails with pydantic's field message;
    a `JOURNEYS_*` variable nobody reads, a named settings file that does not exist and a
    TOML syntax error are a one-line `SettingsError`."""
    try:
        settings = Settings(**overrides)
    except ValidationError:
        # A misspelt key inside a section: said with the nearest variable when it came from
        # the environment (pydantic's message would not suggest one).
        _refuse_unknown(os.environ, (), nested_only=True)
        raise
    _refuse_unknown(os.environ, _routing_references(settings.alerts.routing_file))
    return settings


def _refuse_unknown(
    environ: Mapping[str, str], allowed: Iterable[str], *, nested_only: bool = False
) -> None:
    for name in environ_names.unknown_variables(environ, Settings, allowed):
        if not nested_only or environ_names.DELIMITER in name:
            raise SettingsError(environ_names.unknown_message(name, Settings, allowed)) from None


def _routing_references(path: Path | None) -> frozenset[str]:
    """The secrets the alert routing file takes from the environment (`${NAME}`)."""
    if path is None:
        return frozenset()
    try:
        return environ_names.references(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):  # the stage that loads it says what is wrong
        return frozenset()
