"""One settings object, filled from ``MOMENTS_*`` environment variables.

Defaults work on a laptop. Every field's variable is ``MOMENTS_`` + its name in
upper case, e.g. ``MOMENTS_KAFKA_BOOTSTRAP``.

>>> settings = Settings.from_env({"MOMENTS_TOPIC_PREFIX": "dev-", "MOMENTS_BATCH_SIZE": "50"})
>>> settings.topic("touchpoints"), settings.batch_size
('dev-touchpoints', 50)
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from feature_store.money import Money
from feature_store.redis_url import check_redis_url
from feature_store.transport import RedisAddress
from streams.event_loop import CHOICES as EVENT_LOOPS

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

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CATALOGUE = str(REPO_ROOT / "deploy" / "catalogue" / "offers.toml")  # a checkout's
DEV_SECRET = "moments-dev-only-secret"
SHORTEST_SECRET = 16  # characters: a shorter key secret is warned of


def secret_weakness(secret: str) -> str | None:
    """What makes ``secret`` (``MOMENTS_KEY_SECRET``) weak, for a warning; ``None`` when
    nothing does. It keys the hashes that name customers in Redis and on screens: with
    one anyone can guess, a hash or a ``customer_ref`` gives the customer's id away.

    >>> secret_weakness(DEV_SECRET + chr(10))  # read from a file, with its newline
    'is the development default'
    >>> secret_weakness("x"), secret_weakness("a-long-random-secret-0f3b9c")
    ('is shorter than 16 characters', None)
    >>> secret_weakness(" a-long-random-secret-0f3b9c ")
    'begins or ends with white space (a file read with its newline?)'
    """
    if secret.strip() == DEV_SECRET:
        return "is the development default"
    if len(secret.strip()) < SHORTEST_SECRET:
        return f"is shorter than {SHORTEST_SECRET} characters"
    if secret != secret.strip():
        return "begins or ends with white space (a file read with its newline?)"
    return None


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


class SettingsError(ValueError):
    """A ``MOMENTS_*`` variable has a value that cannot be used."""


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


def _boolean(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(raw)


@dataclass(frozen=True)
class Settings:
    kafka_bootstrap: str = "127.0.0.1:9092"
    # secrets (and a URL that may hold one) are left out of the settings' repr
    redis_url: str = field(default="redis://127.0.0.1:6379/0", repr=False)
    redis_cluster: bool = False
    redis_prefix: str = "m"
    topic_prefix: str = ""
    topic_partitions: int = 4
    topic_replication: int = 1
    kafka_session_timeout_s: float = 10.0
    kafka_security_protocol: str = "PLAINTEXT"  # SSL, SASL_PLAINTEXT or SASL_SSL
    kafka_sasl_mechanism: str = "PLAIN"  # or SCRAM-SHA-256, SCRAM-SHA-512
    kafka_sasl_username: str = ""
    kafka_sasl_password: str = field(default="", repr=False)
    kafka_ssl_cafile: str = ""
    kafka_ssl_certfile: str = ""
    kafka_ssl_keyfile: str = ""
    kafka_ssl_key_password: str = field(default="", repr=False)  # of an encrypted key file
    redis_ssl_ca_certs: str = ""  # for rediss:// URLs with a private CA
    redis_timeout_s: float = 5.0  # nothing heard from Redis this long: an outage
    # a worker, at start, waits this long for Redis to answer its layout and key-secret
    # check, then starts without it (made once Redis answers); the API waits 5 s
    redis_start_wait_s: float = 60.0
    app_id: str = "moments"
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    data_dir: str = str(Path.home() / ".local" / "share" / "moments")
    catalogue_path: str = DEFAULT_CATALOGUE
    catalogue_check_s: float = 5.0  # how often the file is checked for changes; 0: on SIGHUP only
    key_secret: str = field(default=DEV_SECRET, repr=False)
    policy: str = "learned"  # or "rules"
    # how the offer learner writes its snapshot's matrices: "packed" (base64), or "lists"
    # (JSON numbers, which a Moments from before 2026-12-05 reads: for a rolling upgrade)
    model_snapshot_figures: str = "packed"
    # the share of an offer's evidence the offer model keeps at each 1,000 outcomes of the
    # offer (the learner's: a memory of about 1000 / (1 - it) outcomes; 1: never forgets)
    offer_model_kept_per_1000: float = 0.95
    control_percent: float = 5.0
    control_salt: str = "moments-control-v1"
    # customers whose interventions are held out (raised for the measurement, not shown):
    # none by default; drawn apart from the offers' control group
    intervention_control_percent: float = 0.0
    # an alert comes too late to raise when its touchpoint is older than this (re-driven,
    # or read by a worker catching up after an outage): the caller has hung up
    intervention_max_age_s: float = 3600.0
    # likewise, offers for a touchpoint older than this are not decided: the visit, the
    # call or the email open is long over, and they would spend its caps and budgets
    offer_max_age_s: float = 3600.0
    batch_size: int = 200
    batch_within_s: float = 0.002  # the longest a touchpoint waits for its batch to fill
    max_attempts: int = 3
    max_future_skew_s: float = 900.0
    store_ttl_days: int = 400
    # a customer with no activity of their own (someone only mailed): their keys expire
    # this long after the latest offer shown or email sent to them
    contact_only_ttl_days: int = 30
    # a stranger, whom Moments knows only by its own decisions (a recommendation asked for
    # an id no touchpoint named): their keys, decision contexts included, expire this long
    # after the latest decision for them (feature_store/strangers.py)
    stranger_ttl_days: int = 1
    dedupe_horizon_days: int = 8
    # how long an erased customer stays blocked (the tombstone's lifetime)
    tombstone_days: int = 400
    # an erasure is answered once this many of Redis's replicas confirm it (a failover to
    # one that had not would bring the customer back), or 503 after the wait below
    erasure_replicas: int = 0
    erasure_replica_wait_ms: int = 1000
    # purchases in other currencies count converted by these rates (USD=0.92,...), or are
    # kept apart; no currency: one is assumed, amounts summed as they come
    currency: str = ""
    exchange_rates: str = ""
    high_value: float = 500.0
    good_experience: float = 0.5
    experience_half_life_days: float = 14.0
    risk_threshold: float = 0.7  # crossing it raises a retention call
    risk_sweep_interval_s: float = 3600.0  # how often the leader labels quiet customers
    log_level: str = "info"
    log_format: str = "text"  # or json: one JSON object per line
    event_loop: str = "auto"  # uvloop where installed, else asyncio's own (or: uvloop, asyncio)
    api_host: str = "127.0.0.1"
    api_port: int = 6067
    # /healthz, /readyz and /metrics also on this port, which the connection cap does not
    # count (streams/api/probe_port.py): for an orchestrator's probes and Prometheus; 0: none
    api_probe_port: int = 6068
    api_keys: str = ""  # name:scope+scope:sha256hex;... (empty: the development key only)
    # without keys, the development key is taken on a loopback api_host only, unless this
    # (a container's demo, its port published on the host's loopback only)
    api_allow_dev_key: bool = False
    api_rate_per_s: float = 200.0  # per key (a key bound to origins: per visitor, below)
    api_burst: int = 400
    # a key bound to web pages' origins (which every visitor can read) is limited per
    # visitor, not per key; 0: at the key's rate and burst (those above), so that an API
    # behind a proxy not yet trusted (every visitor one) keeps the rate its key had
    api_visitor_rate_per_s: float = 0.0
    api_visitor_burst: int = 0
    # proxies (addresses or CIDRs, comma-separated) whose X-Forwarded-For names the visitor;
    # empty: the connection's peer is the visitor (streams/api/visitors.py)
    api_trusted_proxies: str = ""
    api_budget_ms: float = 50.0  # recommendations answer within this, falling back if need be
    api_max_body_bytes: int = 1_048_576
    api_max_items: int = 500
    api_max_streams_per_key: int = 500  # alert streams (screens) one key may hold open
    # bytes of request bodies one API process receives at once (a key a quarter of them);
    # past them a 503 too_many_uploads (each is held in memory until it has all come)
    api_body_budget_bytes: int = 64 * 2**20
    # client connections one API process holds at once (a JSON 503 to the next ones); 0:
    # as many as its limit on open files leaves (less 256 it keeps for itself) and its
    # memory holds (streams/api/connection_cap.py)
    api_max_connections: int = 0
    # the SSE event name alerts carry when a screen does not ask (?alert_event=): none
    # (EventSource's onmessage hears them), or "intervention", as before 2026-12-05
    api_alert_event: str = ""
    # an alert stream with nothing written this long writes a keep-alive (a `position`
    # event): under the idle timeout of proxies in front, and under the console's 45 s
    # without a word after which it takes its stream as stalled and opens it anew
    api_alert_keepalive_s: float = 15.0
    # a connection that sends no request this long (after connecting, between requests,
    # or part way through its headers) is closed; keep it longer than the idle timeout
    # of the load balancer in front (AWS's ALB: 60 s; Google's: 600 s), which then
    # closes first
    api_idle_timeout_s: float = 75.0
    # a request's head (its request line and headers) not all received by then is closed
    # unanswered: from the connection's opening for its first request, from the head's
    # first byte for later ones (streams/api/head_deadline.py)
    api_head_timeout_s: float = 10.0
    api_body_timeout_s: float = 30.0  # a request body not all received by then: a 408
    # a write to Kafka (events, outcomes, an erasure record) not acknowledged by then: a
    # 503 to retry (the records may still be written: the retry is safe)
    api_kafka_timeout_s: float = 5.0
    # a batch the API's producer could not hand to a broker by then, no leader of its
    # partition known, fails (as a send waiting that long for room in its buffer); the
    # decisions in it are sent again (streams/api/decision_delivery.py): aiokafka's
    # request timeout
    api_producer_timeout_s: float = 40.0
    api_gather_ms: float = 0.0  # under load, recommendations may wait this long to share a batch
    api_max_batch: int = 32  # recommendations per batch at most
    api_publish_linger_ms: float = 50.0  # decisions wait this long to share a Kafka request
    api_cors_origins: str = ""  # web pages that may call from the browser: https://a.example,...

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(f"MOMENTS_{f.name.upper()}")
            if raw is None:
                continue
            kind: type[Any] = type(f.default)
            try:
                if kind is bool:
                    values[f.name] = _boolean(raw)
                else:
                    values[f.name] = kind(raw) if kind is not str else raw
            except ValueError as exc:
                raise SettingsError(
                    f"MOMENTS_{f.name.upper()}={raw!r} is not a valid {kind.__name__}"
                ) from exc
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        self._check_numbers()
        self.check_kafka_security()
        if not 0 <= self.control_percent <= 100:
            raise SettingsError("MOMENTS_CONTROL_PERCENT must be between 0 and 100")
        if not 0 <= self.intervention_control_percent <= 100:
            raise SettingsError("MOMENTS_INTERVENTION_CONTROL_PERCENT must be between 0 and 100")
        for name in _AT_LEAST_ONE:
            if getattr(self, name) < 1:
                raise SettingsError(f"MOMENTS_{name.upper()} must be at least 1")
        if self.api_max_connections < 0:
            raise SettingsError(
                "MOMENTS_API_MAX_CONNECTIONS must be 0 (as the limit on open files allows) or more"
            )
        if self.event_loop not in EVENT_LOOPS:
            raise SettingsError(f"MOMENTS_EVENT_LOOP must be one of {', '.join(EVENT_LOOPS)}")
        if self.policy not in ("learned", "rules"):
            raise SettingsError("MOMENTS_POLICY must be 'learned' or 'rules'")
        if self.model_snapshot_figures not in ("packed", "lists"):
            raise SettingsError("MOMENTS_MODEL_SNAPSHOT_FIGURES must be 'packed' or 'lists'")
        if self.api_alert_event not in ("", "intervention"):
            raise SettingsError("MOMENTS_API_ALERT_EVENT must be 'intervention' or empty")
        if not self.catalogue_path.strip():  # a blank ConfigMap key: read as the folder "."
            raise SettingsError(
                "MOMENTS_CATALOGUE_PATH must name the offer catalogue (a TOML file)"
            )
        if not self.data_dir.strip():  # likewise: the worker's tables in its working folder
            raise SettingsError("MOMENTS_DATA_DIR must name a folder (not be empty or blank)")
        if not self.key_secret.strip():  # a template's blank: as good as none
            raise SettingsError("MOMENTS_KEY_SECRET must not be empty or blank")
        if self.api_budget_ms <= 0:
            raise SettingsError("MOMENTS_API_BUDGET_MS must be positive")
        for name in ("api_gather_ms", "api_publish_linger_ms"):
            if getattr(self, name) < 0:
                raise SettingsError(f"MOMENTS_{name.upper()} must not be negative")

        # a request a day at the least (a 429's wait, in whole seconds, stays a number)
        for rate, burst in (("api_rate_per_s", "api_burst"),
                            ("api_visitor_rate_per_s", "api_visitor_burst")):  # fmt: skip
            unset = 0 if rate.startswith("api_visitor") else None  # 0: the key's
            if getattr(self, rate) != unset and not 1 / 86_400 <= getattr(self, rate) <= 1e9:
                raise SettingsError(f"MOMENTS_{rate.upper()} must be a number of requests a "
                                    "second from 1/86400 (one a day) to 1e9"
                                    + (", or 0 (the key's)" if unset == 0 else ""))  # fmt: skip
            if getattr(self, burst) != unset and not 1 <= getattr(self, burst) <= 10**9:
                raise SettingsError(f"MOMENTS_{burst.upper()} must be from 1 to 1000000000"
                                    + (", or 0 (the key's)" if unset == 0 else ""))  # fmt: skip
        for name in ("api_budget_ms", "api_gather_ms", "api_publish_linger_ms"):
            if not math.isfinite(getattr(self, name)):
                raise SettingsError(f"MOMENTS_{name.upper()} must be a finite number")
        if self.api_gather_ms >= self.api_budget_ms:  # under load, every answer a fallback
            raise SettingsError(
                f"MOMENTS_API_GATHER_MS ({self.api_gather_ms:g}) must be shorter than "
                f"MOMENTS_API_BUDGET_MS ({self.api_budget_ms:g})"
            )
        for name in ("api_port", "web_port"):  # 0 (any free port) would go unannounced:
            if not 1 <= getattr(self, name) <= 65535:  # Faust refuses it, the API says ":0"
                raise SettingsError(f"MOMENTS_{name.upper()} must be a port, 1 to 65535")
        if not 0 <= self.api_probe_port <= 65535:
            raise SettingsError("MOMENTS_API_PROBE_PORT must be a port, 1 to 65535, or 0 (none)")
        if self.api_probe_port and self.api_probe_port == self.api_port:
            raise SettingsError(
                f"MOMENTS_API_PROBE_PORT must differ from MOMENTS_API_PORT ({self.api_port}), "
                "or be 0 (none)"
            )
        if self.log_level.lower() not in LOG_LEVELS:
            raise SettingsError(f"MOMENTS_LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}")
        if self.log_format not in LOG_FORMATS:
            raise SettingsError(f"MOMENTS_LOG_FORMAT must be one of {', '.join(LOG_FORMATS)}")
        try:
            Money.parse(self.currency, self.exchange_rates)
        except ValueError as exc:
            raise SettingsError(f"MOMENTS_CURRENCY / MOMENTS_EXCHANGE_RATES: {exc}") from exc
        self._check_api_access()
        self._check_names()
        self._check_services()

    def _check_services(self) -> None:
        """Where Kafka and Redis are and how the processes listen: values that would fail
        late (a traceback at start), fall back to a default unseen, or hold work for ever."""
        for broker in (b.strip() for b in self.kafka_bootstrap.split(",")):
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
            if getattr(self, name) > largest:
                raise SettingsError(f"MOMENTS_{name.upper()} must be at most {largest}")
        for name, (least, most) in _BETWEEN.items():
            if not least <= getattr(self, name) <= most:
                raise SettingsError(f"MOMENTS_{name.upper()} must be from {least:g} to {most:g}")
        for name in ("api_host", "web_host"):
            host = getattr(self, name)
            if not host or host != host.strip() or not _host_name(host):
                raise SettingsError(
                    f"MOMENTS_{name.upper()}={host!r} must be a host name or address "
                    "(0.0.0.0 for every interface)"
                )
        if self.redis_ssl_ca_certs:
            if not self.redis_url.lower().startswith("rediss://"):
                raise SettingsError(
                    "MOMENTS_REDIS_SSL_CA_CERTS set, but MOMENTS_REDIS_URL is not rediss:// "
                    "(no TLS, so it would not be used)"
                )
            _check_file("MOMENTS_REDIS_SSL_CA_CERTS", self.redis_ssl_ca_certs)
            try:  # loaded now, as the Kafka files are: not at Redis's first connection
                ssl.create_default_context(cafile=self.redis_ssl_ca_certs)
            except (OSError, ssl.SSLError) as exc:
                raise SettingsError(f"MOMENTS_REDIS_SSL_CA_CERTS: cannot be read ({exc})") from None

    def _check_names(self) -> None:
        """Prefixes and the app id: only characters every key pattern and topic name takes
        as they are (a ``*``, ``?``, ``[`` or ``{`` would match or tag another deployment's
        keys, a ``:`` look like a key's own separator)."""
        for name, empty in (("redis_prefix", False), ("topic_prefix", True), ("app_id", False)):
            value = getattr(self, name)
            if not (value or empty) or not _NAME.fullmatch(value) or len(value) > 100:
                raise SettingsError(
                    f"MOMENTS_{name.upper()}={value!r} must be up to 100 letters, digits, "
                    f"'.', '_' or '-'{'' if empty else ', and not empty'}"
                )

    def _check_numbers(self) -> None:
        """Every duration, threshold and horizon is a finite number that can work."""
        for name in _POSITIVE:
            if not 0 < getattr(self, name) < math.inf:
                raise SettingsError(f"MOMENTS_{name.upper()} must be a positive number")
        for name in _NOT_NEGATIVE:
            if not 0 <= getattr(self, name) < math.inf:
                raise SettingsError(f"MOMENTS_{name.upper()} must be a number, not negative")
        if self.batch_within_s > 60:  # a touchpoint would wait that long for company
            raise SettingsError("MOMENTS_BATCH_WITHIN_S must be above 0 and at most 60 seconds")
        for name in ("offer_max_age_s", "intervention_max_age_s"):
            if getattr(self, name) > MAX_DAYS * 86400:
                raise SettingsError(
                    f"MOMENTS_{name.upper()} must be at most {MAX_DAYS * 86400} s (a century; "
                    "0: never too late)"
                )
        shortest, longest = KAFKA_SESSION_TIMEOUT_S
        if not shortest <= self.kafka_session_timeout_s <= longest:
            raise SettingsError(
                f"MOMENTS_KAFKA_SESSION_TIMEOUT_S must be between {shortest:g} and {longest:g}"
                " seconds"
            )
        if self.max_future_skew_s > MAX_FUTURE_SKEW_S:
            raise SettingsError(
                f"MOMENTS_MAX_FUTURE_SKEW_S must be at most {MAX_FUTURE_SKEW_S} (a year)"
            )
        if not 0 <= self.catalogue_check_s < math.inf:
            raise SettingsError(
                "MOMENTS_CATALOGUE_CHECK_S must be a number of seconds, not negative "
                "(0: check only on SIGHUP)"
            )
        self._check_redis_url()
        for name in ("good_experience", "risk_threshold"):
            if not 0 <= getattr(self, name) <= 1:
                raise SettingsError(f"MOMENTS_{name.upper()} must be between 0 and 1")
        for name in ("store_ttl_days", "dedupe_horizon_days", "tombstone_days"):
            if not 1 <= getattr(self, name) <= MAX_DAYS:
                raise SettingsError(f"MOMENTS_{name.upper()} must be from 1 to {MAX_DAYS} days")
        if not 8 <= self.contact_only_ttl_days <= MAX_DAYS:  # the store takes the shorter
            raise SettingsError(  # of it and MOMENTS_STORE_TTL_DAYS
                f"MOMENTS_CONTACT_ONLY_TTL_DAYS must be from 8 (the weekly caps count up to 8 "
                f"UTC days of contacts) to {MAX_DAYS} days"
            )
        if not 1 <= self.stranger_ttl_days <= self.contact_only_ttl_days:
            raise SettingsError(
                "MOMENTS_STRANGER_TTL_DAYS must be from 1 (a day's caps count a day of "
                f"contacts) to MOMENTS_CONTACT_ONLY_TTL_DAYS ({self.contact_only_ttl_days})"
            )
        self._check_erasure_replicas()
        # an event id must be remembered, and an erased customer blocked, as long as a
        # replay or re-drive within the dedupe horizon can bring the event back
        for name in ("store_ttl_days", "tombstone_days"):
            if getattr(self, name) < self.dedupe_horizon_days:
                raise SettingsError(
                    f"MOMENTS_{name.upper()} ({getattr(self, name)}) must not be shorter than "
                    f"MOMENTS_DEDUPE_HORIZON_DAYS ({self.dedupe_horizon_days})"
                )

    def _check_erasure_replicas(self) -> None:
        if self.erasure_replicas < 0:
            raise SettingsError("MOMENTS_ERASURE_REPLICAS must be 0 (do not wait) or more")
        if self.erasure_replicas and self.redis_cluster:  # its WAIT counts other primaries'
            raise SettingsError(
                "MOMENTS_ERASURE_REPLICAS needs a single Redis server (with replicas), not "
                "a Redis Cluster"
            )
        if self.erasure_replicas > MAX_ERASURE_REPLICAS:
            raise SettingsError(
                f"MOMENTS_ERASURE_REPLICAS must be at most {MAX_ERASURE_REPLICAS} (the "
                "replicas of one Redis server)"
            )
        if self.erasure_replica_wait_ms < 1:
            raise SettingsError("MOMENTS_ERASURE_REPLICA_WAIT_MS must be 1 or more")
        longest = self.redis_timeout_s * 1000  # the wait's reply comes within it
        if self.erasure_replicas and not self.erasure_replica_wait_ms < longest:
            raise SettingsError(
                f"MOMENTS_ERASURE_REPLICA_WAIT_MS ({self.erasure_replica_wait_ms}) must be less "
                f"than MOMENTS_REDIS_TIMEOUT_S ({longest:g} ms) while MOMENTS_ERASURE_REPLICAS "
                "is set"
            )

    def _check_redis_url(self) -> None:
        """A URL the store can use, with no option it would not honour (on a cluster too:
        its TLS checks cannot be turned off from the URL)."""
        if self.redis_cluster and self.redis_url.partition("://")[0] == "unix":
            raise SettingsError("MOMENTS_REDIS_CLUSTER needs a redis:// or rediss:// URL")
        try:
            check_redis_url(self.redis_url, cluster=self.redis_cluster)
        except ValueError as exc:
            raise SettingsError(f"MOMENTS_REDIS_URL: {exc}") from None
        if not self.redis_url.startswith("unix") and not _host_name(
            RedisAddress.from_url(self.redis_url).host
        ):
            raise SettingsError("MOMENTS_REDIS_URL: its host has an empty label or one over 63 "
                                "characters")  # fmt: skip

    def check_kafka_security(self) -> None:
        """The protocol and SASL mechanism are ones Moments' Kafka clients speak, and no
        TLS or SASL setting is given that the protocol would leave unused (credentials
        set for a protocol that does not send them would connect without them)."""
        protocol = self.kafka_security_protocol.upper()
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
        unused = sorted(n for n in tls | sasl if getattr(self, n) and n not in used)
        if unused:
            raise SettingsError(
                f"{', '.join('MOMENTS_' + n.upper() for n in unused)} set, but "
                f"MOMENTS_KAFKA_SECURITY_PROTOCOL={protocol} does not use "
                f"{'it' if len(unused) == 1 else 'them'}"
            )
        if self.kafka_ssl_keyfile and not self.kafka_ssl_certfile:
            raise SettingsError("MOMENTS_KAFKA_SSL_KEYFILE needs MOMENTS_KAFKA_SSL_CERTFILE")
        if self.kafka_ssl_key_password and not self.kafka_ssl_certfile:
            raise SettingsError("MOMENTS_KAFKA_SSL_KEY_PASSWORD needs MOMENTS_KAFKA_SSL_CERTFILE")
        for name in ("kafka_ssl_cafile", "kafka_ssl_certfile", "kafka_ssl_keyfile"):
            if path := getattr(self, name):
                _check_file(f"MOMENTS_{name.upper()}", path)
        if not protocol.startswith("SASL"):  # the SASL settings are not read
            return
        if self.kafka_sasl_mechanism.upper() not in SASL_MECHANISMS:
            raise SettingsError(
                f"MOMENTS_KAFKA_SASL_MECHANISM must be one of {', '.join(SASL_MECHANISMS)}"
            )
        if not self.kafka_sasl_username:
            raise SettingsError("SASL needs MOMENTS_KAFKA_SASL_USERNAME")

    @property
    def money(self) -> Money:
        """What purchases are counted in (raises :class:`ValueError` when it cannot be)."""
        return Money.parse(self.currency, self.exchange_rates)

    def _check_api_access(self) -> None:
        """The trusted proxies, API keys and CORS origins parse, and a key bound to web
        pages' origins is bound only to origins the browser will be let in from."""
        from streams.api.auth import KeyRing
        from streams.api.origins import parse_origins
        from streams.api.visitors import trusted_proxies

        try:
            trusted_proxies(self.api_trusted_proxies)
        except ValueError as exc:
            raise SettingsError(f"MOMENTS_API_TRUSTED_PROXIES: {exc}") from exc
        try:
            allowed = parse_origins(self.api_cors_origins)
        except ValueError as exc:
            raise SettingsError(f"MOMENTS_API_CORS_ORIGINS: {exc}") from exc
        try:
            bound = KeyRing.parse(self.api_keys).bound_origins()
        except ValueError as exc:
            raise SettingsError(f"MOMENTS_API_KEYS: {exc}") from exc
        shut_out = sorted(bound - allowed) if "*" not in allowed else []
        if shut_out:
            raise SettingsError(
                f"MOMENTS_API_KEYS binds keys to {', '.join(shut_out)}, which "
                "MOMENTS_API_CORS_ORIGINS does not allow: browsers there could not call"
            )

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"

    @property
    def faust_broker(self) -> str:
        return ";".join(f"kafka://{host.strip()}" for host in self.kafka_bootstrap.split(","))
