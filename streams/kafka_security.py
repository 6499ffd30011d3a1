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

from streams.kafka_bootstrap import SEEN, accepts, bootstrap_failed, said_of
from streams.settings import Settings, SettingsError
from streams.settings_checks import check_kafka_security


def ssl_context(settings: Settings) -> ssl.SSLContext:
    """The TLS context of the settings' files; a file that cannot be read, or a key its
    password does not open, is a :class:`SettingsError` naming the setting."""
    try:
        context = ssl.create_default_context(cafile=settings.kafka_ssl_cafile or None)
    except (OSError, ssl.SSLError) as exc:
        raise SettingsError(f"MOMENTS_KAFKA_SSL_CAFILE: cannot be read ({exc})") from None
    if settings.kafka_ssl_certfile:
        try:
            context.load_cert_chain(
                settings.kafka_ssl_certfile,
                settings.kafka_ssl_keyfile or None,
                # never a prompt on the terminal: an encrypted key without its password fails
                password=settings.kafka_ssl_key_password or (lambda: b""),
            )
        except (OSError, ssl.SSLError) as exc:
            raise SettingsError(
                "MOMENTS_KAFKA_SSL_CERTFILE / MOMENTS_KAFKA_SSL_KEYFILE / "
                f"MOMENTS_KAFKA_SSL_KEY_PASSWORD: the certificate and key cannot be used ({exc})"
            ) from None
    return context


def kafka_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for aiokafka producers, consumers and admin clients."""
    check_kafka_security(settings)
    protocol = settings.kafka_security_protocol.upper()
    if protocol == "PLAINTEXT":
        return {}
    options: dict[str, Any] = {"security_protocol": protocol}
    if protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = ssl_context(settings)
    if protocol.startswith("SASL"):
        options.update(
            sasl_mechanism=settings.kafka_sasl_mechanism.upper(),
            sasl_plain_username=settings.kafka_sasl_username,
            sasl_plain_password=settings.kafka_sasl_password,
        )
    return options


def connection_trouble(
    settings: Settings, error: Exception, seen: dict[str, BaseException] = SEEN
) -> str:
    """What to tell an operator when Kafka cannot be used at start: where, how, why, and
    which settings to check; and what the client saw of each bootstrap address (``seen``,
    :mod:`streams.kafka_bootstrap`) when it could use none of them, for aiokafka's error
    names none of it.

    >>> said = connection_trouble(Settings(kafka_security_protocol="SSL"), OSError("closed"),
    ...                           seen={})
    >>> said.split(". ")[0]
    'cannot use Kafka at 127.0.0.1:9092 over SSL (OSError: closed)'
    >>> "MOMENTS_KAFKA_SSL_CERTFILE" in said, "MOMENTS_KAFKA_SASL_PASSWORD" in said
    (True, False)
    >>> from aiokafka.errors import KafkaConnectionError
    >>> failed = KafkaConnectionError("Unable to bootstrap from [('k', 1)]")
    >>> connection_trouble(Settings(), failed, {"k:1": OSError("refused")})[-42:]
    'what the client saw: k:1: OSError: refused'
    """
    protocol = settings.kafka_security_protocol.upper()
    names = ["BOOTSTRAP", "SECURITY_PROTOCOL"]
    if protocol in ("SSL", "SASL_SSL"):
        names += ["SSL_CAFILE", "SSL_CERTFILE", "SSL_KEYFILE"]
    if protocol.startswith("SASL"):
        names += ["SASL_MECHANISM", "SASL_USERNAME", "SASL_PASSWORD"]
    kind, said = type(error).__name__, str(error)
    reason = said if kind in said else f"{kind}: {said}"  # aiokafka's errors name themselves
    # a timeout's address probed: it takes connections? Only when no address could be
    # used: another error (an ACL refusal) is not explained by a broker once down
    what = said_of(seen, accepts) if bootstrap_failed(error) else ""
    return (
        f"cannot use Kafka at {settings.kafka_bootstrap} over {protocol} ({reason}). "
        f"Check {', '.join('MOMENTS_KAFKA_' + n for n in names)}; "
        + (f"what the client saw: {what}" if what else
           "the log lines above give the reason the client saw.")
    )  # fmt: skip


_used: list[Settings] = []  # the settings this process runs with, once it says so


def use_settings(settings: Settings) -> None:
    """Make ``settings`` the ones :func:`client_options` gives every Kafka client of this
    process (the Faust app, the API and the commands call it with theirs). Raises
    :class:`SettingsError` if they cannot be used (a TLS file that cannot be read)."""
    _options.cache_clear()
    _options(settings)
    _used[:] = [settings]


@functools.cache
def _options(settings: Settings) -> dict[str, Any]:
    return kafka_options(settings)


def client_options() -> dict[str, Any]:
    """This process's options: those of the settings it runs with (see
    :func:`use_settings`), or of its environment."""
    return _options(_used[0] if _used else Settings.from_env())


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
