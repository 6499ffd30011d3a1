"""How Moments' Kafka clients authenticate: TLS and SASL from ``MOMENTS_KAFKA_*`` settings.

Every aiokafka client Moments makes takes ``**client_options()``; the Faust app takes
:func:`faust_credentials`. With the defaults (``PLAINTEXT``) both add nothing.

>>> from streams.settings import Settings
>>> kafka_options(Settings(kafka_security_protocol="SASL_PLAINTEXT",
...     kafka_sasl_username="moments", kafka_sasl_password="s3cret"))["sasl_mechanism"]
'PLAIN'
"""

from __future__ import annotations

import functools
import ssl
from typing import Any

from streams.settings import KAFKA_PROTOCOLS as PROTOCOLS
from streams.settings import SASL_MECHANISMS as MECHANISMS
from streams.settings import Settings, SettingsError


def ssl_context(settings: Settings) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=settings.kafka_ssl_cafile or None)
    if settings.kafka_ssl_certfile:
        context.load_cert_chain(settings.kafka_ssl_certfile, settings.kafka_ssl_keyfile or None)
    return context


def kafka_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for aiokafka producers, consumers and admin clients."""
    protocol = settings.kafka_security_protocol.upper()
    if protocol not in PROTOCOLS:
        raise SettingsError(f"MOMENTS_KAFKA_SECURITY_PROTOCOL must be one of {PROTOCOLS}")
    if protocol == "PLAINTEXT":
        return {}
    options: dict[str, Any] = {"security_protocol": protocol}
    if protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = ssl_context(settings)
    if protocol.startswith("SASL"):
        mechanism = settings.kafka_sasl_mechanism.upper()
        if mechanism not in MECHANISMS:
            raise SettingsError(f"MOMENTS_KAFKA_SASL_MECHANISM must be one of {MECHANISMS}")
        if not settings.kafka_sasl_username:
            raise SettingsError("SASL needs MOMENTS_KAFKA_SASL_USERNAME")
        options.update(
            sasl_mechanism=mechanism,
            sasl_plain_username=settings.kafka_sasl_username,
            sasl_plain_password=settings.kafka_sasl_password,
        )
    return options


def connection_trouble(settings: Settings, error: Exception) -> str:
    """What to tell an operator when Kafka cannot be used at start: where, how, why, and
    which settings to check.

    >>> said = connection_trouble(Settings(kafka_security_protocol="SSL"), OSError("closed"))
    >>> said.split(". ")[0]
    'cannot use Kafka at 127.0.0.1:9092 over SSL (OSError: closed)'
    >>> "MOMENTS_KAFKA_SSL_CERTFILE" in said, "MOMENTS_KAFKA_SASL_PASSWORD" in said
    (True, False)
    """
    protocol = settings.kafka_security_protocol.upper()
    names = ["BOOTSTRAP", "SECURITY_PROTOCOL"]
    if protocol in ("SSL", "SASL_SSL"):
        names += ["SSL_CAFILE", "SSL_CERTFILE", "SSL_KEYFILE"]
    if protocol.startswith("SASL"):
        names += ["SASL_MECHANISM", "SASL_USERNAME", "SASL_PASSWORD"]
    kind, said = type(error).__name__, str(error)
    reason = said if kind in said else f"{kind}: {said}"  # aiokafka's errors name themselves
    return (
        f"cannot use Kafka at {settings.kafka_bootstrap} over {protocol} ({reason}). "
        f"Check {', '.join('MOMENTS_KAFKA_' + n for n in names)}; "
        "the log lines above give the reason the client saw."
    )


@functools.cache
def client_options() -> dict[str, Any]:
    """This process's options, from its environment (read once)."""
    return kafka_options(Settings.from_env())


def faust_credentials(settings: Settings) -> Any:
    """The Faust ``broker_credentials`` for these settings, or ``None``."""
    import faust

    options = kafka_options(settings)
    if not options:
        return None
    if "sasl_mechanism" in options:
        return faust.SASLCredentials(
            username=settings.kafka_sasl_username,
            password=settings.kafka_sasl_password,
            mechanism=options["sasl_mechanism"],
            ssl_context=options.get("ssl_context"),
        )
    return faust.SSLCredentials(options["ssl_context"])
