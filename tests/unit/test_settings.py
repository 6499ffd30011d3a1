"""Settings from MOMENTS_* environment variables."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import certifi
import pytest

from streams.key_secret import DEV_SECRET
from streams.settings import Settings, SettingsError

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_defaults_from_empty_environment() -> None:
    settings = Settings.from_env({})
    assert settings == Settings()
    assert settings.kafka_bootstrap == "127.0.0.1:9092"
    assert settings.redis_url == "redis://127.0.0.1:6379/0"
    assert settings.topic_prefix == ""
    assert settings.topic_partitions == 4
    assert settings.topic_replication == 1
    assert settings.app_id == "moments"
    assert settings.web_host == "127.0.0.1"
    assert settings.web_port == 6066
    assert settings.key_secret == DEV_SECRET
    assert settings.control_percent == 5.0
    assert settings.control_salt == "moments-control-v1"
    assert settings.batch_size == 200
    assert settings.batch_within_s == 0.002
    assert settings.max_attempts == 3
    assert settings.store_ttl_days == 400
    assert settings.dedupe_horizon_days == 8
    assert settings.tombstone_days == 400
    assert settings.log_level == "info"
    assert Path(settings.catalogue_path) == REPO_ROOT / "deploy" / "catalogue" / "offers.toml"
    assert Path(settings.catalogue_path).is_file()
    assert settings.faust_broker == "kafka://127.0.0.1:9092"


def test_unrelated_variables_are_ignored() -> None:
    env = {"KAFKA_BOOTSTRAP": "elsewhere:1", "MOMENTS_NO_SUCH_SETTING": "x", "PATH": "/bin"}
    assert Settings.from_env(env) == Settings()


def test_overrides_with_types() -> None:
    env = {
        "MOMENTS_KAFKA_BOOTSTRAP": "kafka-0:9092,kafka-1:9092",
        "MOMENTS_REDIS_URL": "redis://redis:6380/2",
        "MOMENTS_TOPIC_PREFIX": "staging.",
        "MOMENTS_TOPIC_PARTITIONS": "12",
        "MOMENTS_WEB_PORT": "8080",
        "MOMENTS_CONTROL_PERCENT": "7.5",
        "MOMENTS_BATCH_WITHIN_S": "0.25",
        "MOMENTS_BATCH_SIZE": "50",
        "MOMENTS_KEY_SECRET": "prod-secret",
        "MOMENTS_LOG_LEVEL": "debug",
        "MOMENTS_CATALOGUE_PATH": "/etc/moments/offers.toml",
    }
    settings = Settings.from_env(env)
    assert settings.kafka_bootstrap == "kafka-0:9092,kafka-1:9092"
    assert settings.redis_url == "redis://redis:6380/2"
    assert settings.topic_prefix == "staging."
    assert settings.topic_partitions == 12
    assert type(settings.topic_partitions) is int
    assert settings.web_port == 8080
    assert type(settings.web_port) is int
    assert settings.control_percent == 7.5
    assert type(settings.control_percent) is float
    assert settings.batch_within_s == 0.25
    assert settings.batch_size == 50
    assert type(settings.batch_size) is int
    assert settings.key_secret == "prod-secret"
    assert settings.log_level == "debug"
    assert settings.catalogue_path == "/etc/moments/offers.toml"
    # untouched fields keep their defaults
    assert settings.max_attempts == 3
    assert settings.app_id == "moments"


def test_float_setting_accepts_integer_text() -> None:
    settings = Settings.from_env({"MOMENTS_CONTROL_PERCENT": "10"})
    assert settings.control_percent == 10.0
    assert isinstance(settings.control_percent, float)


def test_every_field_has_a_moments_variable(tmp_path: Path) -> None:
    """Each field is read from MOMENTS_<NAME>; set them all and see each one arrive."""
    env: dict[str, str] = {}
    expected: dict[str, object] = {}
    for f in dataclasses.fields(Settings):
        if isinstance(f.default, bool):
            continue
        if f.name == "policy":  # a choice: the other one
            value: object = "rules"
        elif f.name == "event_loop":
            value = "asyncio"
        elif f.name == "api_alert_event":
            value = "intervention"
        elif f.name == "model_snapshot_figures":
            value = "lists"
        elif f.name == "api_trusted_proxies":
            value = "10.0.0.0/8, ::1"
        elif f.name == "api_cors_origins":
            value = "https://shop.example"
        elif f.name == "api_keys":
            value = "web:recommend:" + "0" * 64 + "@https://shop.example"
        elif f.name == "log_level":
            value = "debug"
        elif f.name == "log_format":
            value = "json"
        elif f.name == "kafka_security_protocol":  # one that uses every TLS and SASL setting
            value = "SASL_SSL"
        elif f.name == "kafka_bootstrap":
            value = "broker-1:9093,[::1]:9094"
        elif f.name == "redis_url":  # TLS, which the CA certificates below are for
            value = "rediss://127.0.0.1:6380/1"
        elif f.name in ("kafka_ssl_cafile", "kafka_ssl_certfile", "kafka_ssl_keyfile"):
            (tmp_path / f.name).write_text("")  # files that are there (not read here)
            value = str(tmp_path / f.name)
        elif f.name == "redis_ssl_ca_certs":  # read as the settings are: certificates
            value = certifi.where()
        elif f.name == "kafka_sasl_mechanism":
            value = "SCRAM-SHA-256"
        elif f.name == "risk_threshold":  # a threshold from 0 to 1
            value = 0.8
        elif f.name == "offer_model_kept_per_1000":  # a share from 0.5 to 1
            value = 0.9
        elif f.name == "currency":
            value = "EUR"
        elif f.name == "exchange_rates":
            value = "USD=0.92"
        elif isinstance(f.default, int):
            value = f.default + 1
        elif isinstance(f.default, float):
            value = f.default + 0.5
        else:
            value = f"{f.default}-x"
        env[f"MOMENTS_{f.name.upper()}"] = str(value)
        expected[f.name] = value
    settings = Settings.from_env(env)
    for name, value in expected.items():
        assert getattr(settings, name) == value, name


def test_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOMENTS_TOPIC_PREFIX", "env-")
    monkeypatch.setenv("MOMENTS_MAX_ATTEMPTS", "5")
    settings = Settings.from_env()
    assert settings.topic("touchpoints") == "env-touchpoints"
    assert settings.max_attempts == 5


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("MOMENTS_BATCH_SIZE", "fifty"),
        ("MOMENTS_BATCH_SIZE", "2.5"),
        ("MOMENTS_WEB_PORT", ""),
        ("MOMENTS_TOPIC_PARTITIONS", "4 partitions"),
        ("MOMENTS_CONTROL_PERCENT", "five"),
        ("MOMENTS_BATCH_WITHIN_S", "10ms"),
    ],
)
def test_bad_number_raises_settings_error_naming_the_variable(variable: str, value: str) -> None:
    with pytest.raises(SettingsError) as info:
        Settings.from_env({variable: value})
    message = str(info.value)
    assert variable in message
    assert repr(value) in message
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("percent", ["-0.1", "100.5", "1000", "nan"])
def test_control_percent_out_of_range_raises(percent: str) -> None:
    with pytest.raises(SettingsError, match="MOMENTS_CONTROL_PERCENT"):
        Settings.from_env({"MOMENTS_CONTROL_PERCENT": percent})


@pytest.mark.parametrize("percent", ["0", "100", "0.0", "100.0", "5"])
def test_control_percent_bounds_are_inclusive(percent: str) -> None:
    assert Settings.from_env({"MOMENTS_CONTROL_PERCENT": percent}).control_percent == float(percent)


@pytest.mark.parametrize(
    "env",
    [
        {"MOMENTS_BATCH_SIZE": "0"},
        {"MOMENTS_MAX_ATTEMPTS": "0"},
        {"MOMENTS_TOPIC_PARTITIONS": "-1"},
        {"MOMENTS_API_MAX_BATCH": "0"},
        {"MOMENTS_KEY_SECRET": ""},
    ],
)
def test_other_invalid_values_raise(env: dict[str, str]) -> None:
    with pytest.raises(SettingsError):
        Settings.from_env(env)


def test_validate_catches_invalid_replace() -> None:
    settings = Settings().replace(control_percent=150.0)
    assert settings.control_percent == 150.0
    with pytest.raises(SettingsError, match="MOMENTS_CONTROL_PERCENT"):
        settings.validate()


def test_replace_returns_a_new_settings() -> None:
    base = Settings()
    changed = base.replace(topic_prefix="x-", batch_size=10)
    assert changed.topic_prefix == "x-" and changed.batch_size == 10
    assert base.topic_prefix == "" and base.batch_size == 200
    with pytest.raises(dataclasses.FrozenInstanceError):
        base.batch_size = 1  # type: ignore[misc]


def test_topic_prefix() -> None:
    assert Settings().topic("touchpoints") == "touchpoints"
    settings = Settings.from_env({"MOMENTS_TOPIC_PREFIX": "dev-"})
    assert settings.topic("offer-outcomes") == "dev-offer-outcomes"
    assert settings.topic("touchpoints-dlq") == "dev-touchpoints-dlq"


@pytest.mark.parametrize(
    ("bootstrap", "broker"),
    [
        ("h1:9092,h2:9093", "kafka://h1:9092;kafka://h2:9093"),
        ("h1:9092, h2:9093", "kafka://h1:9092;kafka://h2:9093"),
        ("localhost:29092", "kafka://localhost:29092"),
        ("a:1,b:2,c:3", "kafka://a:1;kafka://b:2;kafka://c:3"),
    ],
)
def test_faust_broker(bootstrap: str, broker: str) -> None:
    settings = Settings.from_env({"MOMENTS_KAFKA_BOOTSTRAP": bootstrap})
    assert settings.faust_broker == broker


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("API_RATE_PER_S", "0", "MOMENTS_API_RATE_PER_S"),
        ("API_RATE_PER_S", "nan", "MOMENTS_API_RATE_PER_S"),
        ("API_BURST", "0", "MOMENTS_API_BURST"),
        ("API_VISITOR_RATE_PER_S", "-1", "MOMENTS_API_VISITOR_RATE_PER_S"),
        ("API_VISITOR_RATE_PER_S", "nan", "MOMENTS_API_VISITOR_RATE_PER_S"),
        ("API_VISITOR_BURST", "-1", "MOMENTS_API_VISITOR_BURST"),
        ("API_VISITOR_BURST", "1" + "0" * 10, "MOMENTS_API_VISITOR_BURST"),
        ("API_TRUSTED_PROXIES", "10.0.0.0/8, lb.internal", "MOMENTS_API_TRUSTED_PROXIES"),
        ("API_TRUSTED_PROXIES", "10.0.0.300", "MOMENTS_API_TRUSTED_PROXIES"),
        ("API_TRUSTED_PROXIES", "10.0.0.0/33", "MOMENTS_API_TRUSTED_PROXIES"),
        ("API_PORT", "70000", "MOMENTS_API_PORT"),
        ("WEB_PORT", "-1", "MOMENTS_WEB_PORT"),
        ("API_PROBE_PORT", "70000", "MOMENTS_API_PROBE_PORT"),
        ("API_PROBE_PORT", "-1", "MOMENTS_API_PROBE_PORT"),
        ("API_BUDGET_MS", "nan", "MOMENTS_API_BUDGET_MS must be a finite"),
        ("API_BUDGET_MS", "0", "MOMENTS_API_BUDGET_MS"),
        ("API_GATHER_MS", "inf", "MOMENTS_API_GATHER_MS"),
        ("API_PUBLISH_LINGER_MS", "-1", "MOMENTS_API_PUBLISH_LINGER_MS"),
        ("API_MAX_ITEMS", "0", "MOMENTS_API_MAX_ITEMS"),
        ("API_MAX_BODY_BYTES", "0", "MOMENTS_API_MAX_BODY_BYTES"),
        ("API_MAX_BATCH", "0", "MOMENTS_API_MAX_BATCH"),
        ("BATCH_SIZE", "0", "MOMENTS_BATCH_SIZE"),
        ("MAX_ATTEMPTS", "0", "MOMENTS_MAX_ATTEMPTS"),
        ("TOPIC_PARTITIONS", "0", "MOMENTS_TOPIC_PARTITIONS"),
        ("TOPIC_REPLICATION", "0", "MOMENTS_TOPIC_REPLICATION"),
        ("LOG_LEVEL", "verbose", "MOMENTS_LOG_LEVEL"),
        ("LOG_FORMAT", "yaml", "MOMENTS_LOG_FORMAT"),
        ("LOG_FORMAT", "JSON", "MOMENTS_LOG_FORMAT"),
        ("REDIS_TIMEOUT_S", "0", "MOMENTS_REDIS_TIMEOUT_S"),
        ("REDIS_TIMEOUT_S", "inf", "MOMENTS_REDIS_TIMEOUT_S"),
        ("MODEL_SNAPSHOT_FIGURES", "base64", "MOMENTS_MODEL_SNAPSHOT_FIGURES"),
    ],
)
def test_values_that_cannot_work_are_refused_at_start(name: str, value: str, words: str) -> None:
    """The message names the variable that is wrong, and no other."""
    with pytest.raises(SettingsError, match=words) as refused:
        Settings.from_env({f"MOMENTS_{name}": value})
    assert set(re.findall(r"MOMENTS_[A-Z0-9_]+", str(refused.value))) == {f"MOMENTS_{name}"}


def test_the_probe_port_is_apart_from_the_client_port_or_none() -> None:
    """The probes must not share the capped listener's port (nor could both bind it);
    0 serves none apart (the probes then hit the capped listener, as before)."""
    with pytest.raises(SettingsError, match="MOMENTS_API_PROBE_PORT must differ from MOMENTS_AP"):
        Settings.from_env({"MOMENTS_API_PORT": "7000", "MOMENTS_API_PROBE_PORT": "7000"})
    assert Settings.from_env({}).api_probe_port == 6068
    assert Settings.from_env({"MOMENTS_API_PROBE_PORT": "0"}).api_probe_port == 0
    no_probes = {"MOMENTS_API_PORT": "7000", "MOMENTS_API_PROBE_PORT": "0"}  # none apart
    assert Settings.from_env(no_probes).api_probe_port == 0


@pytest.mark.parametrize("name", ["MOMENTS_API_PORT", "MOMENTS_WEB_PORT"])
def test_a_listening_port_of_0_is_refused_by_name(name: str) -> None:
    """0 was taken: the worker then died in a 45-line Faust traceback (its ports are 1 to
    65535), and the API listened on a port picked at random while saying ":0"."""
    with pytest.raises(SettingsError, match=f"^{name} must be a port, 1 to 65535$"):
        Settings.from_env({name: "0"})
    assert getattr(Settings.from_env({name: "1"}), name[8:].lower()) == 1


def test_log_levels_are_taken_in_any_case() -> None:
    assert Settings.from_env({"MOMENTS_LOG_LEVEL": "WARNING"}).log_level == "WARNING"


def test_a_redis_url_option_the_store_cannot_honour_is_refused_at_start() -> None:
    with pytest.raises(SettingsError, match="MOMENTS_REDIS_URL: Redis URL option ssl_cert_reqs"):
        Settings.from_env({"MOMENTS_REDIS_URL": "rediss://cache:6380/0?ssl_cert_reqs=none"})
    found = Settings.from_env({"MOMENTS_REDIS_URL": "redis://cache/?db=3&password=pw"})
    assert found.redis_url.endswith("?db=3&password=pw")
    # on a cluster too: its TLS checks cannot be turned off from the URL
    with pytest.raises(SettingsError, match="option ssl_check_hostname is not supported"):
        Settings.from_env({"MOMENTS_REDIS_URL": "rediss://c:7000?ssl_check_hostname=false",
                           "MOMENTS_REDIS_CLUSTER": "true"})  # fmt: skip
    # and on a unix socket, where a socket_timeout would override MOMENTS_REDIS_TIMEOUT_S
    with pytest.raises(SettingsError, match="option socket_timeout is not supported"):
        Settings.from_env({"MOMENTS_REDIS_URL": "unix:///run/redis.sock?socket_timeout=99"})
    on_socket = Settings.from_env({"MOMENTS_REDIS_URL": "unix:///run/r.sock?db=2&password=pw"})
    assert on_socket.redis_url.endswith("?db=2&password=pw")


@pytest.mark.parametrize(
    "url",
    [  # a password with a '/', '?' or '#' not percent-encoded: part of the path, or a port
        "unix://app:pa/ss@/run/redis.sock", "unix://:pa?ss@/run/redis.sock",
        "unix://:pa#ss@/run/redis.sock", "unix://app/pw@/run/redis.sock",
    ],
)  # fmt: skip
def test_a_socket_url_whose_password_would_be_read_as_its_path_is_refused(url: str) -> None:
    """It connected to the wrong path, and the startup line showed the password."""
    with pytest.raises(SettingsError, match="percent-encode") as refused:
        Settings.from_env({"MOMENTS_REDIS_URL": url})
    assert "pa" not in str(refused.value).replace("path", "").replace("password", "")


@pytest.mark.parametrize(
    "url",
    ["unix://app:p%2Fss@/run/redis.sock", "unix://localhost/run/redis.sock",
     "unix:///run/redis.sock?password=a@b"],
)  # fmt: skip
def test_socket_urls_written_right_are_taken(url: str) -> None:
    assert Settings.from_env({"MOMENTS_REDIS_URL": url}).redis_url == url


@pytest.mark.parametrize(
    ("url", "cluster", "words"),
    [
        ("app:s3cret@cache:6379", "false", "one without a scheme"),
        ("http://cache:6379", "false", "not http://"),
        ("redis://c:7000/2", "true", "only database 0"),
        ("unix:///run/redis.sock", "true", "MOMENTS_REDIS_CLUSTER needs"),
        ("REDIS://:s3cret@cache:6379/0", "false", "in lower case"),
        # a template whose host was left empty: read as localhost:6379, quietly
        ("redis://:s3cret@:6379/0", "false", "must name a host"),
        ("redis:///0", "false", "must name a host"),
        ("redis://:s3cret@ca che:6379/0", "false", "must name a host"),
        ("redis://:s3cret@cache:0/0", "false", "port must be from 1"),
    ],
)
def test_a_redis_url_the_store_cannot_use_is_refused_without_its_secret(
    url: str, cluster: str, words: str
) -> None:
    env = {"MOMENTS_REDIS_URL": url, "MOMENTS_REDIS_CLUSTER": cluster}
    with pytest.raises(SettingsError, match=words) as refused:
        Settings.from_env(env)
    assert "s3cret" not in str(refused.value)
    Settings.from_env({"MOMENTS_REDIS_URL": "unix:///run/redis.sock"})  # one node: fine


@pytest.mark.parametrize(
    ("url", "words"),
    [  # a password with a '/', '?' or '#' not percent-encoded: read as another host or port
        ("redis://app:s3cret#more@cache:6379/0", "no #fragment"),
        ("redis://app:4711#s3cret@cache:6379/0", "no #fragment"),  # read as app:4711, no AUTH
        ("rediss://app:s3cret/more@cache:6380/0", "unescaped / or ?"),
        ("redis://:s3cret?more@cache:6379", "unescaped / or ?"),
        ("redis://app:pw@cache:s3cret/0", "cannot be read"),  # the parser's own message quoted it
        ("redis://app:s3cret[x@cache:6379/0", "cannot be read"),
    ],
)
def test_a_redis_url_whose_password_would_be_misread_is_refused_without_it(
    url: str, words: str
) -> None:
    with pytest.raises(SettingsError, match=words) as refused:
        Settings.from_env({"MOMENTS_REDIS_URL": url})
    assert "s3cret" not in str(refused.value)


@pytest.mark.parametrize(
    "url", ["redis://app:p%2Fw%23x@cache:6379/0", "redis://cache:6379/0?username=a@b&password=x"]
)
def test_redis_urls_written_right_are_taken(url: str) -> None:
    assert Settings.from_env({"MOMENTS_REDIS_URL": url}).redis_url == url


def test_secrets_stay_out_of_the_settings_repr() -> None:
    settings = Settings(
        redis_url="rediss://app:redis-pw@cache:6380/0", kafka_sasl_password="sasl-pw",
        kafka_ssl_key_password="key-pw", key_secret="hash-secret",
    )  # fmt: skip
    shown = repr(settings)
    assert "kafka_bootstrap=" in shown
    assert not any(s in shown for s in ("redis-pw", "sasl-pw", "key-pw", "hash-secret"))


def test_a_gather_wait_as_long_as_the_latency_budget_is_refused() -> None:
    """Under load every request would wait out its budget for company: all fallbacks."""
    with pytest.raises(SettingsError, match=r"MOMENTS_API_GATHER_MS \(50\) must be shorter"):
        Settings.from_env({"MOMENTS_API_GATHER_MS": "50"})
    Settings.from_env({"MOMENTS_API_GATHER_MS": "5"})


@pytest.mark.parametrize(
    ("variable", "value"),
    [*(("MOMENTS_REDIS_PREFIX", p) for p in ("m?", "m*", "{eu}", "m:model", "m[0]", "", "m" * 101)),
     ("MOMENTS_TOPIC_PREFIX", "eu/"), ("MOMENTS_TOPIC_PREFIX", "a b-"), ("MOMENTS_APP_ID", ""),
     ("MOMENTS_APP_ID", "moments:eu")],
)  # fmt: skip
def test_a_prefix_that_could_reach_another_deployment_is_refused(variable: str, value: str) -> None:
    """Two deployments share one Redis and one Kafka apart by their prefixes: a glob
    character would match the other's keys in a scan, a ``{}`` tag its keys, a ``:``
    name another deployment's own keys (``m:model`` holds deployment ``m``'s model)."""
    with pytest.raises(SettingsError, match=variable):
        Settings.from_env({variable: value})


def test_prefixes_of_letters_digits_dots_dashes_and_underscores_are_taken() -> None:
    taken = Settings.from_env({"MOMENTS_REDIS_PREFIX": "eu.prod_2-a", "MOMENTS_TOPIC_PREFIX": "",
                               "MOMENTS_APP_ID": "moments-eu.1"})  # fmt: skip
    assert (taken.redis_prefix, taken.topic_prefix, taken.app_id) == (
        "eu.prod_2-a",
        "",
        "moments-eu.1",
    )


@pytest.mark.parametrize(
    ("bootstrap", "reason"),
    [
        ("kafka://h:9092", "must be host:port, comma-separated, with no scheme"),
        ("h:0", "the port of 'h:0' must be from 1 to 65535"),
        ("h:65536", "must be from 1 to 65535"),
        # it said "must be host:port ... with no scheme" of a host:port with no scheme
        (f"{'a' * 64}.com:9092", "has an empty label or one over 63 characters"),
        ("kafka..svc:9092, b:9092", "the host of 'kafka..svc:9092' has an empty label"),
    ],
)
def test_a_bootstrap_refused_is_refused_for_its_own_reason(bootstrap: str, reason: str) -> None:
    with pytest.raises(SettingsError) as refused:
        Settings.from_env({"MOMENTS_KAFKA_BOOTSTRAP": bootstrap})
    assert str(refused.value).startswith("MOMENTS_KAFKA_BOOTSTRAP")
    assert reason in str(refused.value)
    if "no scheme" not in reason:
        assert "no scheme" not in str(refused.value)


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"MOMENTS_KAFKA_BOOTSTRAP": "a:abc"}, "MOMENTS_KAFKA_BOOTSTRAP"),  # a traceback
        ({"MOMENTS_KAFKA_BOOTSTRAP": ""}, "MOMENTS_KAFKA_BOOTSTRAP"),
        ({"MOMENTS_KAFKA_BOOTSTRAP": "kafka://h:9092"}, "MOMENTS_KAFKA_BOOTSTRAP"),
        ({"MOMENTS_KAFKA_BOOTSTRAP": "a:9092;b:9092"}, "MOMENTS_KAFKA_BOOTSTRAP"),
        # Faust read the empty entry as its default, 127.0.0.1:9092: another broker
        ({"MOMENTS_KAFKA_BOOTSTRAP": "h:9092,"}, "MOMENTS_KAFKA_BOOTSTRAP"),
        ({"MOMENTS_KAFKA_BOOTSTRAP": "h:0"}, "MOMENTS_KAFKA_BOOTSTRAP"),
        ({"MOMENTS_TOPIC_REPLICATION": "32768"}, "MOMENTS_TOPIC_REPLICATION"),
        ({"MOMENTS_TOPIC_PARTITIONS": str(10**30)}, "MOMENTS_TOPIC_PARTITIONS"),
        ({"MOMENTS_API_MAX_BODY_BYTES": str(10**30)}, "MOMENTS_API_MAX_BODY_BYTES"),  # 500s
        ({"MOMENTS_REDIS_TIMEOUT_S": "1e-6"}, "MOMENTS_REDIS_TIMEOUT_S"),  # every call failed
        ({"MOMENTS_API_IDLE_TIMEOUT_S": "1e-9"}, "MOMENTS_API_IDLE_TIMEOUT_S"),
        ({"MOMENTS_API_PUBLISH_LINGER_MS": "1e308"}, "MOMENTS_API_PUBLISH_LINGER_MS"),
        ({"MOMENTS_API_HOST": ""}, "MOMENTS_API_HOST"),  # every interface, unsaid
        ({"MOMENTS_WEB_HOST": " 127.0.0.1"}, "MOMENTS_WEB_HOST"),
        ({"MOMENTS_REDIS_SSL_CA_CERTS": "/nonexistent",
          "MOMENTS_REDIS_URL": "rediss://h:6380/0"}, "MOMENTS_REDIS_SSL_CA_CERTS"),
        ({"MOMENTS_REDIS_SSL_CA_CERTS": __file__}, "MOMENTS_REDIS_SSL_CA_CERTS"),  # no TLS
        ({"MOMENTS_REDIS_URL": "redis://h/1/5"}, "MOMENTS_REDIS_URL"),  # was database 15
        ({"MOMENTS_REDIS_URL": "redis://h/abc"}, "MOMENTS_REDIS_URL"),  # was database 0
        ({"MOMENTS_REDIS_URL": "redis://h/-1"}, "MOMENTS_REDIS_URL"),
        # SELECT refused it: the API kept trying, never ready
        ({"MOMENTS_REDIS_URL": "redis://h/2147483648"}, "MOMENTS_REDIS_URL"),
        ({"MOMENTS_REDIS_URL": "redis://a..b:6379/0"}, "MOMENTS_REDIS_URL"),  # a traceback a call
        ({"MOMENTS_API_BURST": "1" + "0" * 400}, "MOMENTS_API_BURST"),  # every keyed call a 500
        ({"MOMENTS_API_RATE_PER_S": "1e-310"}, "MOMENTS_API_RATE_PER_S"),  # a 500 past the burst
        ({"MOMENTS_BATCH_WITHIN_S": "1e300"}, "MOMENTS_BATCH_WITHIN_S"),  # events left unapplied
    ],
)  # fmt: skip
def test_values_that_would_fail_late_or_unseen_are_refused_at_start(
    env: dict[str, str], variable: str
) -> None:
    with pytest.raises(SettingsError, match=variable):
        Settings.from_env(env)


def test_brokers_may_be_named_by_name_ipv4_or_ipv6_with_spaces_between() -> None:
    taken = Settings.from_env(
        {"MOMENTS_KAFKA_BOOTSTRAP": "kafka-1.example:9092, 10.0.0.2:9092,[::1]:9093"}
    )
    assert taken.kafka_bootstrap.count(":9092") == 2


def test_a_redis_ca_file_that_holds_no_certificate_is_refused_at_start(tmp_path: Path) -> None:
    """It was read at Redis's first connection, a configuration fault taken for an
    outage (moments rebuild said to run it again once Redis answers)."""
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate\n")
    env = {"MOMENTS_REDIS_URL": "rediss://cache:6380/0", "MOMENTS_REDIS_SSL_CA_CERTS": str(bad)}
    with pytest.raises(SettingsError, match="MOMENTS_REDIS_SSL_CA_CERTS: cannot be read"):
        Settings.from_env(env)


def test_a_refused_origin_is_quoted_on_the_line_that_names_it() -> None:
    with pytest.raises(SettingsError) as refused:
        Settings.from_env({"MOMENTS_API_CORS_ORIGINS": "a\nb"})
    assert "\n" not in str(refused.value) and "'a\\nb'" in str(refused.value)
