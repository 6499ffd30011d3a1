"""Settings that could only fail later (or quietly do harm) are refused at start-up."""

from __future__ import annotations

import pytest

from streams.settings import Settings, SettingsError


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("STORE_TTL_DAYS", "0"),  # every profile would expire at its next write
        ("STORE_TTL_DAYS", "-5"),
        ("STORE_TTL_DAYS", "100000"),
        ("DEDUPE_HORIZON_DAYS", "-1"),
        ("DEDUPE_HORIZON_DAYS", "0"),
        ("TOMBSTONE_DAYS", "0"),  # an erased customer would come back with their next event
        ("TOMBSTONE_DAYS", "-1"),
        ("TOMBSTONE_DAYS", "100000"),
        ("EXPERIENCE_HALF_LIFE_DAYS", "0"),  # reads would divide by it
        ("EXPERIENCE_HALF_LIFE_DAYS", "inf"),
        ("MAX_FUTURE_SKEW_S", "nan"),  # every POST /v1/events would fail
        ("MAX_FUTURE_SKEW_S", "1e30"),
        ("MAX_FUTURE_SKEW_S", "-1"),
        ("RISK_SWEEP_INTERVAL_S", "0"),
        ("RISK_SWEEP_INTERVAL_S", "nan"),
        ("RISK_THRESHOLD", "nan"),
        ("RISK_THRESHOLD", "1.5"),
        ("RISK_THRESHOLD", "-0.1"),
        ("GOOD_EXPERIENCE", "2"),
        ("HIGH_VALUE", "nan"),
        ("HIGH_VALUE", "-10"),
        ("CATALOGUE_CHECK_S", "nan"),
        ("CATALOGUE_CHECK_S", "inf"),
        ("CATALOGUE_CHECK_S", "-1"),
        ("KAFKA_SESSION_TIMEOUT_S", "-3"),
        ("KAFKA_SESSION_TIMEOUT_S", "0.2"),
        ("KAFKA_SESSION_TIMEOUT_S", "5.9"),  # brokers refuse it by default: no join
        ("KAFKA_SESSION_TIMEOUT_S", "91"),  # longer than a request may take
        ("KAFKA_SESSION_TIMEOUT_S", "nan"),
        ("BATCH_WITHIN_S", "0"),
        ("BATCH_WITHIN_S", "nan"),
        ("CONTACT_ONLY_TTL_DAYS", "7"),  # a visitor's weekly caps would forget contacts (a
        # week with a 25-hour day, counted from the UTC day of its first local midnight)
        ("CONTACT_ONLY_TTL_DAYS", "100000"),
        ("STRANGER_TTL_DAYS", "0"),  # a day's caps would forget the day's contacts
        ("STRANGER_TTL_DAYS", "31"),  # beyond the contact-only TTL (30)
        ("ERASURE_REPLICAS", "-1"),
        ("API_MAX_CONNECTIONS", "-1"),
        ("ERASURE_REPLICA_WAIT_MS", "0"),
        ("ERASURE_REPLICAS", "99999999999999999999999"),  # Redis's WAIT refused it, after
        ("REDIS_TIMEOUT_S", "1e308"),  # a traceback (OverflowError) before the range check
        ("REDIS_TIMEOUT_S", "0.01"),
        ("OFFER_MAX_AGE_S", "1e14"),  # every decision failed, past timedelta's range
        ("INTERVENTION_MAX_AGE_S", "1e14"),
        ("API_ALERT_KEEPALIVE_S", "0.5"),  # a write a second per screen, at the least
        ("API_ALERT_KEEPALIVE_S", "41"),  # the console would take every quiet stream as
        # stalled (45 s without a word) and open it anew
        ("API_ALERT_KEEPALIVE_S", "nan"),
    ],
)
def test_numbers_that_cannot_work_are_refused_naming_the_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=f"MOMENTS_{name}"):
        Settings.from_env({f"MOMENTS_{name}": value})


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CATALOGUE_CHECK_S", "0"),  # only on SIGHUP
        ("RISK_THRESHOLD", "0"),
        ("RISK_THRESHOLD", "1"),
        ("GOOD_EXPERIENCE", "0"),
        ("MAX_FUTURE_SKEW_S", "0.5"),
        ("STORE_TTL_DAYS", "1"),
        ("STORE_TTL_DAYS", "36525"),
        ("DEDUPE_HORIZON_DAYS", "1"),
        ("TOMBSTONE_DAYS", "1"),
        ("TOMBSTONE_DAYS", "36525"),
        ("CONTACT_ONLY_TTL_DAYS", "8"),
        ("STRANGER_TTL_DAYS", "1"),
        ("STRANGER_TTL_DAYS", "30"),
        ("KAFKA_SESSION_TIMEOUT_S", "6"),
        ("KAFKA_SESSION_TIMEOUT_S", "90"),
        # refused for the erasures' replica wait (1000 ms), which is not used by default
        ("REDIS_TIMEOUT_S", "0.05"),
        ("REDIS_TIMEOUT_S", "1"),
        ("REDIS_TIMEOUT_S", "3600"),
        ("OFFER_MAX_AGE_S", "3155760000"),
        ("ERASURE_REPLICAS", "1000"),
        ("API_ALERT_KEEPALIVE_S", "1"),
        ("API_ALERT_KEEPALIVE_S", "40"),
    ],
)
def test_numbers_at_their_limits_are_taken(name: str, value: str) -> None:
    # a day-long lifetime needs a dedupe horizon no longer
    env = {"MOMENTS_DEDUPE_HORIZON_DAYS": "1", f"MOMENTS_{name}": value}
    assert getattr(Settings.from_env(env), name.lower()) == float(value)


@pytest.mark.parametrize("name", ["STORE_TTL_DAYS", "TOMBSTONE_DAYS"])
def test_a_lifetime_shorter_than_the_dedupe_horizon_is_refused_naming_both(name: str) -> None:
    """A customer's keys (with the ids of the events applied) and an erased customer's
    tombstone must outlive the dedupe horizon: a replay or re-drive within it would
    otherwise be applied again, or bring an erased customer back."""
    both = f"MOMENTS_{name} .*MOMENTS_DEDUPE_HORIZON_DAYS"
    with pytest.raises(SettingsError, match=both):
        Settings.from_env({f"MOMENTS_{name}": "7"})  # the horizon is 8 days by default
    with pytest.raises(SettingsError, match=both):
        Settings.from_env({f"MOMENTS_{name}": "30", "MOMENTS_DEDUPE_HORIZON_DAYS": "31"})
    with pytest.raises(SettingsError, match=both):
        Settings().replace(**{name.lower(): 5}).validate()
    equal = Settings.from_env({f"MOMENTS_{name}": "30", "MOMENTS_DEDUPE_HORIZON_DAYS": "30"})
    assert getattr(equal, name.lower()) == 30


def test_a_catalogue_check_of_zero_is_described_as_sighup_only() -> None:
    with pytest.raises(SettingsError, match="0: check only on SIGHUP"):
        Settings.from_env({"MOMENTS_CATALOGUE_CHECK_S": "-1"})


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"MOMENTS_KAFKA_SECURITY_PROTOCOL": "TLS"}, "MOMENTS_KAFKA_SECURITY_PROTOCOL must be"),
        (
            {
                "MOMENTS_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                "MOMENTS_KAFKA_SASL_MECHANISM": "GSSAPI",
            },
            "MOMENTS_KAFKA_SASL_MECHANISM must be",
        ),
        ({"MOMENTS_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}, "MOMENTS_KAFKA_SASL_USERNAME"),
    ],
)
def test_kafka_security_is_checked_with_the_other_settings(env: dict[str, str], words: str) -> None:
    with pytest.raises(SettingsError, match=words):
        Settings.from_env(env)


def test_kafka_security_names_are_taken_in_any_case() -> None:
    settings = Settings.from_env({
        "MOMENTS_KAFKA_SECURITY_PROTOCOL": "sasl_ssl",
        "MOMENTS_KAFKA_SASL_MECHANISM": "scram-sha-512",
        "MOMENTS_KAFKA_SASL_USERNAME": "moments",
    })  # fmt: skip
    assert settings.kafka_security_protocol == "sasl_ssl"


@pytest.mark.parametrize(
    "env",
    [
        # a template's unused SASL entry, without SASL
        {"MOMENTS_KAFKA_SASL_MECHANISM": ""},
        {"MOMENTS_KAFKA_SECURITY_PROTOCOL": "SSL", "MOMENTS_KAFKA_SASL_MECHANISM": "GSSAPI"},
        {"MOMENTS_MAX_FUTURE_SKEW_S": "0"},  # no event dated ahead of the clock
        {"MOMENTS_HIGH_VALUE": "0"},
    ],
)
def test_settings_that_mean_something_at_zero_or_are_not_read_are_taken(
    env: dict[str, str],
) -> None:
    assert Settings.from_env(env)


def test_erasures_wait_for_a_single_servers_replicas_only() -> None:
    """A cluster's WAIT goes to every primary and adds up what their replicas confirmed,
    whatever the erasure's own node's did."""
    with pytest.raises(SettingsError, match="MOMENTS_ERASURE_REPLICAS needs a single Redis"):
        Settings.from_env({"MOMENTS_ERASURE_REPLICAS": "1", "MOMENTS_REDIS_CLUSTER": "true"})
    waiting = Settings.from_env({"MOMENTS_ERASURE_REPLICAS": "2",
                                 "MOMENTS_ERASURE_REPLICA_WAIT_MS": "250"})  # fmt: skip
    assert (waiting.erasure_replicas, waiting.erasure_replica_wait_ms) == (2, 250)


@pytest.mark.parametrize(("timeout_s", "wait_ms"), [("5", "5000"), ("1", "1000"), ("0.5", "1000")])
def test_the_replica_wait_must_end_before_the_redis_timeout(timeout_s: str, wait_ms: str) -> None:
    """Its reply would come after the call had failed as an outage; checked only where
    erasures wait for replicas (the default wait, 1000 ms, refused a timeout of 1 s)."""
    env = {"MOMENTS_REDIS_TIMEOUT_S": timeout_s, "MOMENTS_ERASURE_REPLICA_WAIT_MS": wait_ms}
    assert Settings.from_env(env)
    with pytest.raises(SettingsError, match=r"MOMENTS_ERASURE_REPLICA_WAIT_MS .* less than"):
        Settings.from_env({**env, "MOMENTS_ERASURE_REPLICAS": "1"})


def test_a_replica_wait_a_millisecond_short_of_the_timeout_is_taken() -> None:
    """1.001 s was rounded down to 1000 ms, and a wait of 1000 ms refused against it."""
    env = {"MOMENTS_REDIS_TIMEOUT_S": "1.001", "MOMENTS_ERASURE_REPLICAS": "1"}
    assert Settings.from_env(env).erasure_replica_wait_ms == 1000


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("API_HOST", "0.0.0..0"),  # an empty label: the resolver's traceback, not a line
        ("WEB_HOST", "x" * 64),  # a label over 63 characters
        ("KAFKA_BOOTSTRAP", "kafka..svc:9092"),
        ("KAFKA_BOOTSTRAP", "kafka-0:9092,kafka..svc:9092"),
    ],
)
def test_host_names_that_cannot_be_looked_up_are_refused(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=f"MOMENTS_{name}"):
        Settings.from_env({f"MOMENTS_{name}": value})


@pytest.mark.parametrize("secret", ["", " ", "\t\n"])
def test_a_blank_key_secret_is_refused(secret: str) -> None:
    """The secret keys every customer's pseudonym and tombstone: a template's blank one
    would be as guessable as none."""
    with pytest.raises(SettingsError, match="MOMENTS_KEY_SECRET must not be empty or blank"):
        Settings.from_env({"MOMENTS_KEY_SECRET": secret})


def test_the_alert_keepalive_out_of_bounds_says_its_bounds() -> None:
    with pytest.raises(SettingsError, match="MOMENTS_API_ALERT_KEEPALIVE_S must be from 1 to 40"):
        Settings.from_env({"MOMENTS_API_ALERT_KEEPALIVE_S": "60"})
    assert Settings.from_env({}).api_alert_keepalive_s == 15.0
