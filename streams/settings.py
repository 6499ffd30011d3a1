"""One settings object, filled from ``MOMENTS_*`` environment variables.

Defaults work on a laptop. Every field's variable is ``MOMENTS_`` + its name in
upper case, e.g. ``MOMENTS_KAFKA_BOOTSTRAP``. A value that cannot be used is refused
(:mod:`streams.settings_checks`).

>>> settings = Settings.from_env({"MOMENTS_TOPIC_PREFIX": "dev-", "MOMENTS_BATCH_SIZE": "50"})
>>> settings.topic("touchpoints"), settings.batch_size
('dev-touchpoints', 50)
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from feature_store.money import Money
from streams.key_secret import DEV_SECRET

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CATALOGUE = str(REPO_ROOT / "deploy" / "catalogue" / "offers.toml")  # a checkout's


class SettingsError(ValueError):
    """A ``MOMENTS_*`` variable has a value that cannot be used."""


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
        """Raise :class:`SettingsError` for a value that cannot be used (the checks are
        :mod:`streams.settings_checks`'s)."""
        from streams.settings_checks import validate  # here: it imports SettingsError

        validate(self)

    @property
    def money(self) -> Money:
        """What purchases are counted in (raises :class:`ValueError` when it cannot be)."""
        return Money.parse(self.currency, self.exchange_rates)

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"

    @property
    def faust_broker(self) -> str:
        return ";".join(f"kafka://{host.strip()}" for host in self.kafka_bootstrap.split(","))
