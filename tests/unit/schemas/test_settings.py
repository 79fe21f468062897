"""schemas.settings: environment, TOML file and keyword sources, secrets and Kafka config."""

from __future__ import annotations

import logging
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from deploy.cli import main
from schemas.environment import OTHER_VARIABLES
from schemas.settings import KafkaSettings, SettingsError, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No JOURNEYS_ variable from the caller, and a working directory without journeys.toml."""
    for name in list(os.environ):
        if name.upper().startswith("JOURNEYS_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write_toml(path: Path, text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    path.write_text(text)
    monkeypatch.setenv("JOURNEYS_SETTINGS_FILE", str(path))


def test_defaults(tmp_path: Path) -> None:
    settings = load_settings()
    assert settings.kafka.bootstrap_servers == "127.0.0.1:19092"
    assert settings.topics.partitions == 12
    assert settings.data_dir == (tmp_path / ".local").resolve()
    assert settings.data_dir.is_absolute()


def test_clickhouse_dsn_defaults_to_chdb_under_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOURNEYS_DATA_DIR", "state")
    settings = load_settings()
    assert settings.clickhouse_dsn == f"chdb://{(tmp_path / 'state' / 'clickhouse').resolve()}"


def test_clickhouse_dsn_when_set_is_used_as_is(monkeypatch: pytest.MonkeyPatch) -> None:
    dsn = "https://user:dsn-s3cr3t@clickhouse.example:8443/journeys"
    monkeypatch.setenv("JOURNEYS_CLICKHOUSE__DSN", dsn)
    settings = load_settings()
    assert settings.clickhouse_dsn == dsn
    assert "dsn-s3cr3t" not in repr(settings)


@pytest.mark.parametrize(
    ("name", "value", "path", "expected"),
    [
        ("JOURNEYS_LOG_LEVEL", "DEBUG", ("log_level",), "DEBUG"),
        (
            "JOURNEYS_KAFKA__BOOTSTRAP_SERVERS",
            "b1:9092,b2:9092",
            ("kafka", "bootstrap_servers"),
            "b1:9092,b2:9092",
        ),
        ("JOURNEYS_TOPICS__PARTITIONS", "3", ("topics", "partitions"), 3),
        (
            "JOURNEYS_PROCESSOR__DEDUP_HORIZON",
            "PT1H",
            ("processor", "dedup_horizon"),
            timedelta(hours=1),
        ),
        ("journeys_batch__max_events", "7", ("batch", "max_events"), 7),
    ],
)
def test_environment_variables(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, path: tuple[str, ...], expected: Any
) -> None:
    monkeypatch.setenv(name, value)
    got: Any = load_settings()
    for part in path:
        got = getattr(got, part)
    assert got == expected


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("JOURNEYS_TOPICS__PARTITIONS", "0"),
        ("JOURNEYS_LOG_LEVEL", "CHATTY"),
        ("JOURNEYS_KAFKA__SECURITY_PROTOCOL", "TLS"),
    ],
)
def test_bad_environment_values_fail(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        load_settings()


def test_toml_file_named_by_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "conf").mkdir()
    write_toml(
        tmp_path / "conf" / "site.toml",
        'log_level = "WARNING"\n[kafka]\nbootstrap_servers = "file:9092"\n'
        "[topics]\npartitions = 4\n",
        monkeypatch,
    )
    settings = load_settings()
    assert settings.log_level == "WARNING"
    assert settings.kafka.bootstrap_servers == "file:9092"
    assert settings.topics.partitions == 4


def test_journeys_toml_in_the_working_directory_is_read_by_default(tmp_path: Path) -> None:
    (tmp_path / "journeys.toml").write_text('log_format = "text"\n')
    assert load_settings().log_format == "text"


@pytest.mark.parametrize("make", ["nothing", "folder"])
def test_a_named_settings_file_that_is_not_there_is_an_error(
    make: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    named = tmp_path / "absent.toml"
    if make == "folder":
        named.mkdir()
    monkeypatch.setenv("JOURNEYS_SETTINGS_FILE", str(named))
    with pytest.raises(SettingsError) as caught:
        load_settings()
    what = "does not exist" if make == "nothing" else "is not a file"
    assert str(caught.value) == f"JOURNEYS_SETTINGS_FILE: {named} {what}"


def test_a_toml_syntax_error_is_one_line_with_file_line_and_column(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site.toml"
    write_toml(site, '[kafka]\nbootstrap_servers = "a:1"\npartitions 3\n', monkeypatch)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    message = str(caught.value)
    assert message.startswith(f"invalid settings file {site}:3:12: not valid TOML: ")
    assert "\n" not in message


@pytest.mark.parametrize(
    ("name", "nearest"),
    [
        ("JOURNEYS_CLICKHOUS__DSN", "JOURNEYS_CLICKHOUSE__DSN"),
        ("JOURNEYS_PROCESSOR__WORKERID", "JOURNEYS_PROCESSOR__WORKER_ID"),
        ("JOURNEYS_KAFKA_BOOTSTRAP_SERVERS", "JOURNEYS_KAFKA__BOOTSTRAP_SERVERS"),
        ("journeys_loglevel", "JOURNEYS_LOG_LEVEL"),
        ("JOURNEYS_SETTINGS", "JOURNEYS_SETTINGS_FILE"),
    ],
)
def test_an_unknown_variable_is_an_error_naming_the_nearest_known_one(
    name: str, nearest: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(name, "x")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert str(caught.value) == f"unknown environment variable {name}: did you mean {nearest}?"


def test_an_unknown_variable_near_nothing_says_where_the_known_ones_are(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("JOURNEYS_XYZZY", "1")
    with pytest.raises(SettingsError, match="JOURNEYS_XYZZY: the settings are listed in"):
        load_settings()


@pytest.mark.parametrize(
    "name",
    [
        *OTHER_VARIABLES,
        "JOURNEYS_KAFKA",  # a whole section, as JSON
        "JOURNEYS_PII__KEYS__DEV",  # a key of a mapping
        "JOURNEYS_COLLECTOR__SOURCES",
    ],
)
def test_the_documented_other_variables_are_accepted(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    values = {
        "JOURNEYS_SETTINGS_FILE": str(tmp_path / "s.toml"),
        "JOURNEYS_KAFKA": '{"bootstrap_servers": "k:1"}',
        "JOURNEYS_PII__KEYS__DEV": "another-key",
        "JOURNEYS_COLLECTOR__SOURCES": "{}",
    }
    (tmp_path / "s.toml").write_text("")
    monkeypatch.setenv(name, values.get(name, "x"))
    load_settings()


def test_secrets_the_routing_file_references_are_accepted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    routing = tmp_path / "routing.toml"
    routing.write_text(
        'version = 1\n[default]\nteam = "oncall"\nslack = "${JOURNEYS_SLACK_ONCALL}"\n'
    )
    monkeypatch.setenv("JOURNEYS_ALERTS__ROUTING_FILE", str(routing))
    monkeypatch.setenv("JOURNEYS_SLACK_ONCALL", "https://hooks.example/T1")
    load_settings()
    monkeypatch.setenv("JOURNEYS_SLACK_ONCAL", "https://hooks.example/T1")
    with pytest.raises(SettingsError, match="did you mean JOURNEYS_SLACK_ONCALL"):
        load_settings()


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("JOURNEYS_CLICKHOUS__DSN", "chdb:x", "did you mean JOURNEYS_CLICKHOUSE__DSN?"),
        ("JOURNEYS_SETTINGS_FILE", "absent.toml", "absent.toml does not exist"),
    ],
)
def test_the_command_says_a_settings_mistake_in_one_line(
    name: str,
    value: str,
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv(name, value)
    assert main(["topics"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("journeys: error: ") and message in err
    assert len(err.strip().splitlines()) == 1


def test_env_beats_file_and_keywords_beat_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_toml(
        tmp_path / "s.toml",
        'log_level = "WARNING"\nlog_format = "text"\n'
        '[kafka]\nbootstrap_servers = "file:9092"\nsasl_username = "from-file"\n',
        monkeypatch,
    )
    monkeypatch.setenv("JOURNEYS_KAFKA__BOOTSTRAP_SERVERS", "env:9092")
    monkeypatch.setenv("JOURNEYS_LOG_LEVEL", "DEBUG")
    settings = load_settings(log_level="ERROR")
    assert settings.log_level == "ERROR"
    assert settings.kafka.bootstrap_servers == "env:9092"
    # Nested sections merge: the file's other kafka keys survive an env override.
    assert settings.kafka.sasl_username == "from-file"
    assert settings.log_format == "text"


def test_secrets_are_not_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOURNEYS_KAFKA__SASL_PASSWORD", "hunter2-secret")
    settings = load_settings()
    assert isinstance(settings.kafka.sasl_password, SecretStr)
    assert settings.kafka.sasl_password.get_secret_value() == "hunter2-secret"
    for shown in (repr(settings), str(settings), repr(settings.kafka), settings.model_dump_json()):
        assert "hunter2-secret" not in shown


def test_librdkafka_dict_plaintext() -> None:
    conf = KafkaSettings().as_librdkafka_dict()
    # librdkafka logs through our logging (deploy/logs.py), not to stderr.
    assert conf.pop("logger") is logging.getLogger("librdkafka")
    assert conf == {"bootstrap.servers": "127.0.0.1:19092", "security.protocol": "plaintext"}


def test_librdkafka_dict_with_sasl_and_ssl(tmp_path: Path) -> None:
    kafka = KafkaSettings(
        bootstrap_servers="b1:9093,b2:9093",
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="svc-journeys",
        sasl_password=SecretStr("s3cret"),
        ssl_cafile=tmp_path / "ca.pem",
        ssl_certfile=tmp_path / "client.pem",
        ssl_keyfile=tmp_path / "client.key",
    )
    conf = kafka.as_librdkafka_dict()
    conf.pop("logger")
    assert conf == {
        "bootstrap.servers": "b1:9093,b2:9093",
        "security.protocol": "sasl_ssl",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "svc-journeys",
        "sasl.password": "s3cret",
        "ssl.ca.location": str(tmp_path / "ca.pem"),
        "ssl.certificate.location": str(tmp_path / "client.pem"),
        "ssl.key.location": str(tmp_path / "client.key"),
    }


def test_librdkafka_dict_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOURNEYS_KAFKA__SECURITY_PROTOCOL", "SSL")
    monkeypatch.setenv("JOURNEYS_KAFKA__SSL_CAFILE", "/etc/kafka/ca.pem")
    conf = load_settings().kafka.as_librdkafka_dict()
    assert conf["security.protocol"] == "ssl"
    assert conf["ssl.ca.location"] == "/etc/kafka/ca.pem"
    assert "sasl.password" not in conf


def test_unknown_top_level_keyword_is_rejected() -> None:
    with pytest.raises(ValidationError) as caught:
        load_settings(kafka_servers="x")
    assert caught.value.errors()[0]["type"] == "extra_forbidden"


def test_unknown_top_level_key_in_the_file_is_rejected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_toml(tmp_path / "s.toml", 'log_levle = "DEBUG"\n', monkeypatch)
    with pytest.raises(ValidationError) as caught:
        load_settings()
    assert caught.value.errors()[0]["loc"] == ("log_levle",)


# A misspelt nested key (a missing "s", a typo in a password key) must fail loudly rather
# than silently leave the default in place, exactly as a misspelt top-level key does.
@pytest.mark.parametrize("source", ["keyword", "file", "env"])
def test_unknown_nested_key_is_rejected(
    source: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    overrides: dict[str, Any] = {}
    if source == "keyword":
        overrides["kafka"] = {"bootstrap_server": "typo:9092"}
    elif source == "file":
        write_toml(tmp_path / "s.toml", '[kafka]\nbootstrap_server = "typo:9092"\n', monkeypatch)
    else:
        # From the environment it is said with the variable meant.
        monkeypatch.setenv("JOURNEYS_KAFKA__BOOTSTRAP_SERVER", "typo:9092")
        with pytest.raises(SettingsError, match="did you mean JOURNEYS_KAFKA__BOOTSTRAP_SERVERS"):
            load_settings()
        return
    with pytest.raises(ValidationError) as caught:
        load_settings(**overrides)
    assert caught.value.errors()[0]["loc"] == ("kafka", "bootstrap_server")


def test_settings_object_is_independent_per_call(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOURNEYS_TOPICS__PREFIX", "a.")
    first = load_settings()
    monkeypatch.setenv("JOURNEYS_TOPICS__PREFIX", "b.")
    assert (first.topics.name("raw"), load_settings().topics.name("raw")) == ("a.raw", "b.raw")
