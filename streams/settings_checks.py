"""What each ``MOMENTS_*`` value must be for Moments to use it: the checks
:meth:`Settings.validate <streams.settings.Settings.validate>` runs as the settings are
read, in this order. A value that cannot work, would fall back to a default unseen, or
would fail late (a traceback once Kafka and Redis were set up) is refused with a
:class:`~streams.settings.SettingsError` naming its variable."""

from __future__ import annotations

import math
import os
import re
import ssl
from pathlib import Path
from typing import TYPE_CHECKING

from feature_store.money import Money
from feature_store.redis_url import check_redis_url
from feature_store.transport import RedisAddress
from streams.event_loop import CHOICES as EVENT_LOOPS
from streams.settings import SettingsError

if TYPE_CHECKING:
    from streams.settings import Settings

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
LOG_FORMATS = ("text", "json")
KAFKA_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
# Numbers that must be positive (and finite) to mean anything (a batch that waits 0 s
# for company would wait until it is full).
_POSITIVE = (
    "kafka_session_timeout_s", "batch_within_s", "experience_half_life_days",
    "risk_sweep_interval_s", "redis_timeout_s", "api_idle_timeout_s", "api_body_timeout_s",
    "api_kafka_timeout_s",
)  # fmt: skip
# ...and those where 0 means something (no event dated ahead; every paying customer
# valuable; alerts however late)
_NOT_NEGATIVE = (
    "max_future_skew_s", "high_value", "intervention_max_age_s", "offer_max_age_s",
)  # fmt: skip
_AT_LEAST_ONE = (
    "batch_size", "max_attempts", "topic_partitions", "topic_replication", "api_max_batch",
    "api_max_items", "api_max_body_bytes", "api_max_streams_per_key", "api_body_budget_bytes",
)  # fmt: skip
# Brokers refuse a consumer group session shorter than their group.min.session.timeout.ms
# (6 s by default): the worker's join fails once, and it never consumes. Longer than the
# Kafka request timeout (90 s) stops the worker at start.
KAFKA_SESSION_TIMEOUT_S = (6.0, 90.0)
MAX_FUTURE_SKEW_S = 366 * 86400  # beyond a year, "now plus the skew" leaves the calendar
MAX_DAYS = 36_525  # a century: Redis expiry times stay within its range
MAX_ERASURE_REPLICAS = 1000  # more than any one Redis server has (WAIT takes an int64)

_NAME = re.compile(r"[A-Za-z0-9._-]*")  # Kafka's topic characters, safe in key patterns
_BROKER = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):([0-9]{1,5})")  # host:port
# what Kafka's protocol holds (partitions: int32, replicas: int16) and what a body can be
_AT_MOST = {"topic_partitions": 2**31 - 1, "topic_replication": 2**15 - 1,
            "api_max_body_bytes": 2**30}  # fmt: skip
# (least, most): durations (and a share) that below or above these cannot work
_BETWEEN = {"redis_timeout_s": (0.05, 3600.0), "redis_start_wait_s": (1.0, 3600.0),
            "api_idle_timeout_s": (0.5, 86_400.0),
            "api_head_timeout_s": (0.5, 3600.0),
            "api_kafka_timeout_s": (0.1, 3600.0), "api_alert_keepalive_s": (1.0, 40.0),
            "api_producer_timeout_s": (1.0, 3600.0),
            "api_publish_linger_ms": (0.0, 60_000.0),
            # under a half, an offer would be judged on its last few thousand outcomes
            "offer_model_kept_per_1000": (0.5, 1.0)}  # fmt: skip


def _host_name(host: str) -> bool:
    """Whether ``host`` can be looked up: no empty label (``kafka..svc``) and none over 63
    characters, which the resolver refuses with a traceback, not a clear error.

    >>> [_host_name(h) for h in ("kafka-0.kafka.svc", "0.0.0.0", "[::1]", "::1", "a..b")]
    [True, True, True, True, False]
    """
    if host.startswith("["):  # an IPv6 address, as a broker's
        return True
    try:
        host.encode("idna")
    except UnicodeError:
        return False
    return True


def _check_file(variable: str, path: str) -> None:
    """A file the process can read, named by ``variable``: one it may not (a directory
    closed to its user) or a name too long is refused as one that is not there.

    >>> _check_file("MOMENTS_KAFKA_SSL_CAFILE", "/nowhere/ca.pem")
    Traceback (most recent call last):
    ...
    streams.settings.SettingsError: MOMENTS_KAFKA_SSL_CAFILE: no such file: /nowhere/ca.pem
    """
    try:
        found = Path(path).is_file()
    except OSError as exc:  # a directory on the way it may not search, a name too long
        raise SettingsError(f"{variable}: cannot read {path} ({exc.strerror})") from None
    if not found:
        raise SettingsError(f"{variable}: no such file: {path}")
    if not os.access(path, os.R_OK):
        raise SettingsError(f"{variable}: cannot read {path} (permission denied)")


def validate(settings: Settings) -> None:
    """Raise :class:`SettingsError` for the first value that cannot be used."""
    _check_numbers(settings)
    check_kafka_security(settings)
    if not 0 <= settings.control_percent <= 100:
        raise SettingsError("MOMENTS_CONTROL_PERCENT must be between 0 and 100")
    if not 0 <= settings.intervention_control_percent <= 100:
        raise SettingsError("MOMENTS_INTERVENTION_CONTROL_PERCENT must be between 0 and 100")
    for name in _AT_LEAST_ONE:
        if getattr(settings, name) < 1:
            raise SettingsError(f"MOMENTS_{name.upper()} must be at least 1")
    if settings.api_max_connections < 0:
        raise SettingsError(
            "MOMENTS_API_MAX_CONNECTIONS must be 0 (as the limit on open files allows) or more"
        )
    if settings.event_loop not in EVENT_LOOPS:
        raise SettingsError(f"MOMENTS_EVENT_LOOP must be one of {', '.join(EVENT_LOOPS)}")
    if settings.policy not in ("learned", "rules"):
        raise SettingsError("MOMENTS_POLICY must be 'learned' or 'rules'")
    if settings.model_snapshot_figures not in ("packed", "lists"):
        raise SettingsError("MOMENTS_MODEL_SNAPSHOT_FIGURES must be 'packed' or 'lists'")
    if settings.api_alert_event not in ("", "intervention"):
        raise SettingsError("MOMENTS_API_ALERT_EVENT must be 'intervention' or empty")
    if not settings.catalogue_path.strip():  # a blank ConfigMap key: read as the folder "."
        raise SettingsError("MOMENTS_CATALOGUE_PATH must name the offer catalogue (a TOML file)")
    if not settings.data_dir.strip():  # likewise: the worker's tables in its working folder
        raise SettingsError("MOMENTS_DATA_DIR must name a folder (not be empty or blank)")
    if not settings.key_secret.strip():  # a template's blank: as good as none
        raise SettingsError("MOMENTS_KEY_SECRET must not be empty or blank")
    if settings.api_budget_ms <= 0:
        raise SettingsError("MOMENTS_API_BUDGET_MS must be positive")
    for name in ("api_gather_ms", "api_publish_linger_ms"):
        if getattr(settings, name) < 0:
            raise SettingsError(f"MOMENTS_{name.upper()} must not be negative")

    # a request a day at the least (a 429's wait, in whole seconds, stays a number)
    for rate, burst in (("api_rate_per_s", "api_burst"),
                        ("api_visitor_rate_per_s", "api_visitor_burst")):  # fmt: skip
        unset = 0 if rate.startswith("api_visitor") else None  # 0: the key's
        if getattr(settings, rate) != unset and not 1 / 86_400 <= getattr(settings, rate) <= 1e9:
            raise SettingsError(f"MOMENTS_{rate.upper()} must be a number of requests a "
                                "second from 1/86400 (one a day) to 1e9"
                                + (", or 0 (the key's)" if unset == 0 else ""))  # fmt: skip
        if getattr(settings, burst) != unset and not 1 <= getattr(settings, burst) <= 10**9:
            raise SettingsError(f"MOMENTS_{burst.upper()} must be from 1 to 1000000000"
                                + (", or 0 (the key's)" if unset == 0 else ""))  # fmt: skip
    for name in ("api_budget_ms", "api_gather_ms", "api_publish_linger_ms"):
        if not math.isfinite(getattr(settings, name)):
            raise SettingsError(f"MOMENTS_{name.upper()} must be a finite number")
    if settings.api_gather_ms >= settings.api_budget_ms:  # under load, every answer a fallback
        raise SettingsError(
            f"MOMENTS_API_GATHER_MS ({settings.api_gather_ms:g}) must be shorter than "
            f"MOMENTS_API_BUDGET_MS ({settings.api_budget_ms:g})"
        )
    for name in ("api_port", "web_port"):  # 0 (any free port) would go unannounced:
        if not 1 <= getattr(settings, name) <= 65535:  # Faust refuses it, the API says ":0"
            raise SettingsError(f"MOMENTS_{name.upper()} must be a port, 1 to 65535")
    if not 0 <= settings.api_probe_port <= 65535:
        raise SettingsError("MOMENTS_API_PROBE_PORT must be a port, 1 to 65535, or 0 (none)")
    if settings.api_probe_port and settings.api_probe_port == settings.api_port:
        raise SettingsError(
            f"MOMENTS_API_PROBE_PORT must differ from MOMENTS_API_PORT ({settings.api_port}), "
            "or be 0 (none)"
        )
    if settings.log_level.lower() not in LOG_LEVELS:
        raise SettingsError(f"MOMENTS_LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}")
    if settings.log_format not in LOG_FORMATS:
        raise SettingsError(f"MOMENTS_LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}")
    try:
        Money.parse(settings.currency, settings.exchange_rates)
    except ValueError as exc:
        raise SettingsError(f"MOMENTS_CURRENCY / MOMENTS_EXCHANGE_RATES: {exc}") from exc
    _check_api_access(settings)
    _check_names(settings)
    _check_services(settings)


def _check_services(settings: Settings) -> None:
    """Where Kafka and Redis are and how the processes listen: values that would fail
    late (a traceback at start), fall back to a default unseen, or hold work for ever."""
    for broker in (b.strip() for b in settings.kafka_bootstrap.split(",")):
        found = _BROKER.fullmatch(broker)
        if found is None:
            raise SettingsError(
                f"MOMENTS_KAFKA_BOOTSTRAP must be host:port, comma-separated, with no "
                f"scheme ({broker!r} is not)"
            )
        if not 1 <= int(found[2]) <= 65535:
            raise SettingsError(
                f"MOMENTS_KAFKA_BOOTSTRAP: the port of {broker!r} must be from 1 to 65535"
            )
        if not _host_name(found[1]):
            raise SettingsError(
                f"MOMENTS_KAFKA_BOOTSTRAP: the host of {broker!r} has an empty label or "
                "one over 63 characters"
            )
    for name, largest in _AT_MOST.items():
        if getattr(settings, name) > largest:
            raise SettingsError(f"MOMENTS_{name.upper()} must be at most {largest}")
    for name, (least, most) in _BETWEEN.items():
        if not least <= getattr(settings, name) <= most:
            raise SettingsError(f"MOMENTS_{name.upper()} must be from {least:g} to {most:g}")
    for name in ("api_host", "web_host"):
        host = getattr(settings, name)
        if not host or host != host.strip() or not _host_name(host):
            raise SettingsError(
                f"MOMENTS_{name.upper()}={host!r} must be a host name or address "
                "(0.0.0.0 for every interface)"
            )
    if settings.redis_ssl_ca_certs:
        if not settings.redis_url.lower().startswith("rediss://"):
            raise SettingsError(
                "MOMENTS_REDIS_SSL_CA_CERTS set, but MOMENTS_REDIS_URL is not rediss:// "
                "(no TLS, so it would not be used)"
            )
        _check_file("MOMENTS_REDIS_SSL_CA_CERTS", settings.redis_ssl_ca_certs)
        try:  # loaded now, as the Kafka files are: not at Redis's first connection
            ssl.create_default_context(cafile=settings.redis_ssl_ca_certs)
        except (OSError, ssl.SSLError) as exc:
            raise SettingsError(f"MOMENTS_REDIS_SSL_CA_CERTS: cannot be read ({exc})") from None


def _check_names(settings: Settings) -> None:
    """Prefixes and the app id: only characters every key pattern and topic name takes
    as they are (a ``*``, ``?``, ``[`` or ``{`` would match or tag another deployment's
    keys, a ``:`` look like a key's own separator)."""
    for name, empty in (("redis_prefix", False), ("topic_prefix", True), ("app_id", False)):
        value = getattr(settings, name)
        if not (value or empty) or not _NAME.fullmatch(value) or len(value) > 100:
            raise SettingsError(
                f"MOMENTS_{name.upper()}={value!r} must be up to 100 letters, digits, "
                f"'.', '_' or '-'{'' if empty else ', and not empty'}"
            )


def _check_numbers(settings: Settings) -> None:
    """Every duration, threshold and horizon is a finite number that can work."""
    for name in _POSITIVE:
        if not 0 < getattr(settings, name) < math.inf:
            raise SettingsError(f"MOMENTS_{name.upper()} must be a positive number")
    for name in _NOT_NEGATIVE:
        if not 0 <= getattr(settings, name) < math.inf:
            raise SettingsError(f"MOMENTS_{name.upper()} must be a number, not negative")
    if settings.batch_within_s > 60:  # a touchpoint would wait that long for company
        raise SettingsError("MOMENTS_BATCH_WITHIN_S must be above 0 and at most 60 seconds")
    for name in ("offer_max_age_s", "intervention_max_age_s"):
        if getattr(settings, name) > MAX_DAYS * 86400:
            raise SettingsError(
                f"MOMENTS_{name.upper()} must be at most {MAX_DAYS * 86400} s (a century; "
                "0: never too late)"
            )
    shortest, longest = KAFKA_SESSION_TIMEOUT_S
    if not shortest <= settings.kafka_session_timeout_s <= longest:
        raise SettingsError(
            f"MOMENTS_KAFKA_SESSION_TIMEOUT_S must be between {shortest:g} and {longest:g} seconds"
        )
    if settings.max_future_skew_s > MAX_FUTURE_SKEW_S:
        raise SettingsError(
            f"MOMENTS_MAX_FUTURE_SKEW_S must be at most {MAX_FUTURE_SKEW_S} (a year)"
        )
    if not 0 <= settings.catalogue_check_s < math.inf:
        raise SettingsError(
            "MOMENTS_CATALOGUE_CHECK_S must be a number of seconds, not negative "
            "(0: check only on SIGHUP)"
        )
    _check_redis_url(settings)
    for name in ("good_experience", "risk_threshold"):
        if not 0 <= getattr(settings, name) <= 1:
            raise SettingsError(f"MOMENTS_{name.upper()} must be between 0 and 1")
    for name in ("store_ttl_days", "dedupe_horizon_days", "tombstone_days"):
        if not 1 <= getattr(settings, name) <= MAX_DAYS:
            raise SettingsError(f"MOMENTS_{name.upper()} must be from 1 to {MAX_DAYS} days")
    if not 8 <= settings.contact_only_ttl_days <= MAX_DAYS:  # the store takes the shorter
        raise SettingsError(  # of it and MOMENTS_STORE_TTL_DAYS
            f"MOMENTS_CONTACT_ONLY_TTL_DAYS must be from 8 (the weekly caps count up to 8 "
            f"UTC days of contacts) to {MAX_DAYS} days"
        )
    if not 1 <= settings.stranger_ttl_days <= settings.contact_only_ttl_days:
        raise SettingsError(
            "MOMENTS_STRANGER_TTL_DAYS must be from 1 (a day's caps count a day of "
            f"contacts) to MOMENTS_CONTACT_ONLY_TTL_DAYS ({settings.contact_only_ttl_days})"
        )
    _check_erasure_replicas(settings)
    # an event id must be remembered, and an erased customer blocked, as long as a
    # replay or re-drive within the dedupe horizon can bring the event back
    for name in ("store_ttl_days", "tombstone_days"):
        if getattr(settings, name) < settings.dedupe_horizon_days:
            raise SettingsError(
                f"MOMENTS_{name.upper()} ({getattr(settings, name)}) must not be shorter than "
                f"MOMENTS_DEDUPE_HORIZON_DAYS ({settings.dedupe_horizon_days})"
            )


def _check_erasure_replicas(settings: Settings) -> None:
    if settings.erasure_replicas < 0:
        raise SettingsError("MOMENTS_ERASURE_REPLICAS must be 0 (do not wait) or more")
    if settings.erasure_replicas and settings.redis_cluster:  # its WAIT counts other primaries'
        raise SettingsError(
            "MOMENTS_ERASURE_REPLICAS needs a single Redis server (with replicas), not "
            "a Redis Cluster"
        )
    if settings.erasure_replicas > MAX_ERASURE_REPLICAS:
        raise SettingsError(
            f"MOMENTS_ERASURE_REPLICAS must be at most {MAX_ERASURE_REPLICAS} (the "
            "replicas of one Redis server)"
        )
    if settings.erasure_replica_wait_ms < 1:
        raise SettingsError("MOMENTS_ERASURE_REPLICA_WAIT_MS must be 1 or more")
    longest = settings.redis_timeout_s * 1000  # the wait's reply comes within it
    if settings.erasure_replicas and not settings.erasure_replica_wait_ms < longest:
        raise SettingsError(
            f"MOMENTS_ERASURE_REPLICA_WAIT_MS ({settings.erasure_replica_wait_ms}) must be less "
            f"than MOMENTS_REDIS_TIMEOUT_S ({longest:g} ms) while MOMENTS_ERASURE_REPLICAS "
            "is set"
        )


def _check_redis_url(settings: Settings) -> None:
    """A URL the store can use, with no option it would not honour (on a cluster too:
    its TLS checks cannot be turned off from the URL)."""
    if settings.redis_cluster and settings.redis_url.partition("://")[0] == "unix":
        raise SettingsError("MOMENTS_REDIS_CLUSTER needs a redis:// or rediss:// URL")
    try:
        check_redis_url(settings.redis_url, cluster=settings.redis_cluster)
    except ValueError as exc:
        raise SettingsError(f"MOMENTS_REDIS_URL: {exc}") from None
    if not settings.redis_url.startswith("unix") and not _host_name(
        RedisAddress.from_url(settings.redis_url).host
    ):
        raise SettingsError("MOMENTS_REDIS_URL: its host has an empty label or one over 63 "
                            "characters")  # fmt: skip


def check_kafka_security(settings: Settings) -> None:
    """The protocol and SASL mechanism are ones Moments' Kafka clients speak, and no
    TLS or SASL setting is given that the protocol would leave unused (credentials
    set for a protocol that does not send them would connect without them)."""
    protocol = settings.kafka_security_protocol.upper()
    if protocol not in KAFKA_PROTOCOLS:
        raise SettingsError(
            f"MOMENTS_KAFKA_SECURITY_PROTOCOL must be one of {', '.join(KAFKA_PROTOCOLS)}"
        )
    tls = {"kafka_ssl_cafile", "kafka_ssl_certfile", "kafka_ssl_keyfile",
           "kafka_ssl_key_password"}  # fmt: skip
    sasl = {"kafka_sasl_username", "kafka_sasl_password"}
    used = (tls if protocol in ("SSL", "SASL_SSL") else set()) | (
        sasl if protocol.startswith("SASL") else set()
    )
    unused = sorted(n for n in tls | sasl if getattr(settings, n) and n not in used)
    if unused:
        raise SettingsError(
            f"{', '.join('MOMENTS_' + n.upper() for n in unused)} set, but "
            f"MOMENTS_KAFKA_SECURITY_PROTOCOL={protocol} does not use "
            f"{'it' if len(unused) == 1 else 'them'}"
        )
    if settings.kafka_ssl_keyfile and not settings.kafka_ssl_certfile:
        raise SettingsError("MOMENTS_KAFKA_SSL_KEYFILE needs MOMENTS_KAFKA_SSL_CERTFILE")
    if settings.kafka_ssl_key_password and not settings.kafka_ssl_certfile:
        raise SettingsError("MOMENTS_KAFKA_SSL_KEY_PASSWORD needs MOMENTS_KAFKA_SSL_CERTFILE")
    for name in ("kafka_ssl_cafile", "kafka_ssl_certfile", "kafka_ssl_keyfile"):
        if path := getattr(settings, name):
            _check_file(f"MOMENTS_{name.upper()}", path)
    if not protocol.startswith("SASL"):  # the SASL settings are not read
        return
    if settings.kafka_sasl_mechanism.upper() not in SASL_MECHANISMS:
        raise SettingsError(
            f"MOMENTS_KAFKA_SASL_MECHANISM must be one of {', '.join(SASL_MECHANISMS)}"
        )
    if not settings.kafka_sasl_username:
        raise SettingsError("SASL needs MOMENTS_KAFKA_SASL_USERNAME")


def _check_api_access(settings: Settings) -> None:
    """The trusted proxies, API keys and CORS origins parse, and a key bound to web
    pages' origins is bound only to origins the browser will be let in from."""
    from streams.api.auth import KeyRing
    from streams.api.origins import parse_origins
    from streams.api.visitors import trusted_proxies

    try:
        trusted_proxies(settings.api_trusted_proxies)
    except ValueError as exc:
        raise SettingsError(f"MOMENTS_API_TRUSTED_PROXIES: {exc}") from exc
    try:
        allowed = parse_origins(settings.api_cors_origins)
    except ValueError as exc:
        raise SettingsError(f"MOMENTS_API_CORS_ORIGINS: {exc}") from exc
    try:
        bound = KeyRing.parse(settings.api_keys).bound_origins()
    except ValueError as exc:
        raise SettingsError(f"MOMENTS_API_KEYS: {exc}") from exc
    shut_out = sorted(bound - allowed) if "*" not in allowed else []
    if shut_out:
        raise SettingsError(
            f"MOMENTS_API_KEYS binds keys to {', '.join(shut_out)}, which "
            "MOMENTS_API_CORS_ORIGINS does not allow: browsers there could not call"
        )
