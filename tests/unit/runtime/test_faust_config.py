"""The same Kafka connection settings reach faust (aiokafka) as reach confluent-kafka."""

from __future__ import annotations

import faust

from schemas.settings import KafkaSettings
from stream_processors.runtime.app import faust_broker_kwargs


def test_plaintext_brokers_become_faust_urls() -> None:
    kwargs = faust_broker_kwargs(KafkaSettings(bootstrap_servers="a:1, b:2"))
    assert kwargs == {"broker": ["kafka://a:1", "kafka://b:2"]}


def test_sasl_credentials_reach_faust() -> None:
    kafka = KafkaSettings(
        bootstrap_servers="k:9092",
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="journeys",
        sasl_password="s3cret",
    )
    creds = faust_broker_kwargs(kafka)["broker_credentials"]
    assert isinstance(creds, faust.SASLCredentials)
    assert creds.username == "journeys" and creds.password == "s3cret"
    assert str(creds.mechanism.value) == "SCRAM-SHA-512"
    assert kafka.as_librdkafka_dict()["sasl.mechanism"] == "SCRAM-SHA-512"
