"""Kafka client security options from settings."""

from __future__ import annotations

import re
import ssl
import subprocess
from pathlib import Path

import pytest

from streams.kafka_security import client_options, faust_credentials, kafka_options, use_settings
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


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        # credentials for a protocol that would not send them: it would connect without
        ({"kafka_sasl_username": "u", "kafka_sasl_password": "p"},
         "MOMENTS_KAFKA_SASL_PASSWORD, MOMENTS_KAFKA_SASL_USERNAME set, but "
         "MOMENTS_KAFKA_SECURITY_PROTOCOL=PLAINTEXT does not use them"),
        ({"kafka_security_protocol": "SSL", "kafka_sasl_username": "u"},
         "MOMENTS_KAFKA_SASL_USERNAME set, but MOMENTS_KAFKA_SECURITY_PROTOCOL=SSL"),
        ({"kafka_security_protocol": "SASL_PLAINTEXT", "kafka_sasl_username": "u",
          "kafka_ssl_cafile": "/etc/hostname"}, "MOMENTS_KAFKA_SSL_CAFILE set, but"),
        ({"kafka_security_protocol": "SSL", "kafka_ssl_keyfile": "/etc/hostname"},
         "MOMENTS_KAFKA_SSL_KEYFILE needs MOMENTS_KAFKA_SSL_CERTFILE"),
        ({"kafka_security_protocol": "SSL", "kafka_ssl_cafile": "/nowhere/ca.pem"},
         "MOMENTS_KAFKA_SSL_CAFILE: no such file: /nowhere/ca.pem"),
        # a name too long for the file system: a settings error, not a traceback
        ({"kafka_security_protocol": "SSL", "kafka_ssl_cafile": "/etc/" + "a" * 300},
         "MOMENTS_KAFKA_SSL_CAFILE: cannot read /etc/aaa"),
        ({"kafka_security_protocol": "SSL", "kafka_ssl_cafile": "/etc"},
         "MOMENTS_KAFKA_SSL_CAFILE: no such file: /etc"),
        ({"redis_url": "rediss://127.0.0.1:6380/0", "redis_ssl_ca_certs": "/etc/" + "b" * 300},
         "MOMENTS_REDIS_SSL_CA_CERTS: cannot read /etc/bbb"),
    ],
)  # fmt: skip
def test_security_settings_that_would_not_be_used_as_meant_are_refused(
    changes: dict[str, str], words: str
) -> None:
    with pytest.raises(SettingsError, match=re.escape(words)):
        Settings(**changes).validate()
    if "redis_url" not in changes:
        with pytest.raises(SettingsError, match=re.escape(words)):
            kafka_options(Settings(**changes))


def test_an_encrypted_key_without_its_password_is_a_settings_error_not_a_prompt(
    tmp_path: Path,
) -> None:
    key, cert = tmp_path / "client.key", tmp_path / "client.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-days", "1", "-subj", "/CN=moments",
         "-keyout", key, "-out", cert, "-passout", "pass:key-pw"],
        check=True, capture_output=True, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    settings = Settings(kafka_security_protocol="SSL", kafka_ssl_certfile=str(cert),
                        kafka_ssl_keyfile=str(key))  # fmt: skip
    with pytest.raises(SettingsError, match="MOMENTS_KAFKA_SSL_KEY_PASSWORD") as refused:
        kafka_options(settings)
    assert "key-pw" not in str(refused.value)
    opened = kafka_options(settings.replace(kafka_ssl_key_password="key-pw"))
    assert isinstance(opened["ssl_context"], ssl.SSLContext)


def test_every_client_of_a_process_uses_the_settings_it_runs_with() -> None:
    sasl = Settings(kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_username="u")
    try:
        use_settings(sasl)
        assert client_options()["security_protocol"] == "SASL_PLAINTEXT"
    finally:
        use_settings(Settings())
    assert client_options() == {}
