"""An empty or blank ``MOMENTS_API_KEYS`` (a CI variable or Secret left blank) was taken as
unset, with a warning: an API listening on every interface (the image's
``MOMENTS_API_HOST=0.0.0.0``) then erased and exported anyone for ``moments-dev-key``. It
now refuses to start, before Kafka or Redis is asked anything, unless it listens on a
loopback host or ``MOMENTS_API_ALLOW_DEV_KEY`` says so."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from streams.api.auth import DEV_KEY
from streams.api.server import keyring
from streams.services.processes import free_port
from streams.settings import Settings, SettingsError

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("keys", ["", "   ", "\n"])
@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "api.internal"])
def test_no_keys_on_a_host_others_reach_gives_no_key_ring(keys: str, host: str) -> None:
    with pytest.raises(SettingsError, match=r"^MOMENTS_API_KEYS is empty") as refused:
        keyring(Settings(api_keys=keys, api_host=host))
    assert f"MOMENTS_API_HOST={host}," in str(refused.value)
    assert "MOMENTS_API_ALLOW_DEV_KEY" in str(refused.value)


@pytest.mark.parametrize(
    "settings",
    [
        Settings(api_host="127.0.0.1"),
        Settings(api_host="::1", api_keys=" "),
        Settings(api_host="localhost"),
        Settings(api_host="0.0.0.0", api_allow_dev_key=True),
    ],
    ids=["loopback", "ipv6-loopback", "localhost", "opted-in"],
)
def test_no_keys_on_a_loopback_host_or_opted_in_takes_the_development_key(
    settings: Settings,
) -> None:
    assert "erase" in keyring(settings).authorise(DEV_KEY, "erase").scopes


def _api(**env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MOMENTS_")}
    environ |= {"MOMENTS_KAFKA_BOOTSTRAP": "127.0.0.1:1", "MOMENTS_API_PORT": str(free_port()),
                "MOMENTS_API_PROBE_PORT": "0",  # not 6068, which another API may hold
                "MOMENTS_REDIS_URL": "redis://127.0.0.1:1/0", **env}  # nothing listens  # fmt: skip
    return subprocess.run([sys.executable, "-m", "streams.cli", "api"], cwd=ROOT, env=environ,
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def test_moments_api_without_keys_on_every_interface_exits_2_naming_the_variable() -> None:
    done = _api(MOMENTS_API_KEYS=" ", MOMENTS_API_HOST="0.0.0.0")
    assert done.returncode == 2, done.stderr[-2000:]
    said = [line for line in done.stderr.splitlines() if line.startswith("moments: ")]
    assert len(said) == 1 and said[0].startswith("moments: MOMENTS_API_KEYS is empty"), said
    assert "Traceback" not in done.stderr
    opted_in = _api(MOMENTS_API_HOST="0.0.0.0", MOMENTS_API_ALLOW_DEV_KEY="true")
    assert opted_in.returncode == 3, opted_in.stderr[-2000:]  # on to Kafka, which is not there


def test_a_probe_port_in_use_stops_the_start_with_one_line_before_kafka() -> None:
    """Checked with the clients' port, before Kafka and Redis are asked anything: not a
    traceback once the API had started up."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        done = _api(MOMENTS_API_PROBE_PORT=str(port))
    assert done.returncode == 2, done.stderr[-2000:]
    said = [line for line in done.stderr.splitlines() if line.startswith("moments: ")]
    assert said == [f"moments: MOMENTS_API_HOST / MOMENTS_API_PROBE_PORT: cannot listen on "
                    f"127.0.0.1:{port}: Address already in use"], done.stderr  # fmt: skip
