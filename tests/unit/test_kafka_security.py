"""Kafka client security options from settings."""

from __future__ import annotations

import ssl

import pytest

from streams.kafka_security import faust_credentials, kafka_options
from streams.settings import Settings, SettingsError


def test_plaintext_adds_nothing() -> None:
    assert kafka_options(Settings()) == {}
    assert faust_credentials(Settings()) is None


def test_sasl_ssl_gives_tls_and_credentials() -> None:
    settings = Settings(
        kafka_security_protocol="sasl_ssl",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="moments",
        kafka_sasl_password="s3cret",
    )
    options = kafka_options(settings)
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == ("moments", "s3cret")
    assert isinstance(options["ssl_context"], ssl.SSLContext)
    credentials = faust_credentials(settings)
    assert credentials.mechanism.value == "SCRAM-SHA-512"


def test_ssl_only_has_no_sasl() -> None:
    options = kafka_options(Settings(kafka_security_protocol="SSL"))
    assert set(options) == {"security_protocol", "ssl_context"}


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"kafka_security_protocol": "TLS"}, "MOMENTS_KAFKA_SECURITY_PROTOCOL"),
        ({"kafka_security_protocol": "SASL_PLAINTEXT"}, "MOMENTS_KAFKA_SASL_USERNAME"),
        (
            {"kafka_security_protocol": "SASL_PLAINTEXT", "kafka_sasl_mechanism": "GSSAPI",
             "kafka_sasl_username": "u"},
            "MOMENTS_KAFKA_SASL_MECHANISM",
        ),
    ],
)  # fmt: skip
def test_bad_settings_are_named(changes: dict[str, str], words: str) -> None:
    with pytest.raises(SettingsError, match=words):
        kafka_options(Settings(**changes))
