"""``MOMENTS_LOG_FORMAT=json``: a process's log is one JSON object per line, a
traceback included in its record rather than on lines of its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

PROCESS = """
import logging
import warnings
from streams import logs
logs.configure("info", sys.argv[1])
log = logging.getLogger("moments.test")
log.debug("not asked for")
log.warning("Redis unreachable for %d s", 3)
try:
    {}["missing"]
except KeyError:
    log.exception("a batch failed")
warnings.warn("a library's deprecation", DeprecationWarning, stacklevel=1)
log.warning("catalogue %s", "/etc/caf\\udce9.toml")  # a path that is not UTF-8
log.warning("%d customers", "many")  # arguments that do not fit
class Unsayable:
    def __str__(self) -> str:
        raise ValueError("no")
log.warning(Unsayable(), 1)  # neither the message nor its arguments
import threading
def sweep():
    raise KeyError("jane" + "-doe-42")
def leave():
    sys.exit(0)
for step in (sweep, leave):
    thread = threading.Thread(target=step, name=step.__name__ + "er")
    thread.start()
    thread.join()
raise RuntimeError("unexpected")
"""


def _logged(line_format: str) -> str:
    done = subprocess.run(
        [sys.executable, "-W", "always", "-c", "import sys\n" + PROCESS, line_format],
        capture_output=True,
        text=True,
        errors="backslashreplace",
        env={**os.environ, "TZ": "Asia/Tokyo"},  # a machine's own time is not UTC
        timeout=60,
    )
    assert done.returncode == 1, done.stderr  # the error raised at the end
    return done.stderr


def _records(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


def test_json_lines_hold_each_record_and_its_traceback() -> None:
    lines = _records(_logged("json"))
    said = [(r["level"], r["logger"], r["message"]) for r in lines]
    assert said[:2] == [
        ("WARNING", "moments.test", "Redis unreachable for 3 s"),
        ("ERROR", "moments.test", "a batch failed"),
    ]
    assert "exception" not in lines[0]
    assert lines[1]["exception"].startswith("Traceback") and "KeyError" in lines[1]["exception"]
    assert lines[2]["logger"] == "py.warnings" and "a library's deprecation" in lines[2]["message"]
    assert said[3] == ("WARNING", "moments.test", "catalogue /etc/caf\\udce9.toml")
    assert said[4] == (
        "WARNING",
        "moments.test",
        "%d customers (its arguments could not be put in: TypeError)",
    )
    assert said[5][2].startswith("<__main__.Unsayable object at 0x")
    # a thread stopped by an error is a record, its message left out (one that left by
    # sys.exit() is not an error); then the error the process dies of
    assert said[6] == ("ERROR", "moments", "thread sweeper stopped by an error")
    assert "in sweep" in lines[6]["exception"], lines[6]["exception"]
    assert "KeyError (its message is left out" in lines[6]["exception"]
    assert said[7] == ("CRITICAL", "moments", "stopped by an error")
    assert "RuntimeError (its message is left out" in lines[7]["exception"]
    assert "unexpected" not in lines[7]["exception"]
    assert len(lines) == 8
    assert "jane-doe" not in "\n".join(map(str, lines))
    assert all(r["time"].endswith("Z") and r["time"][10] == "T" for r in lines)
    written = datetime.fromisoformat(lines[0]["time"])
    assert abs(datetime.now(UTC) - written) < timedelta(minutes=1), lines[0]["time"]


def test_text_lines_are_as_before() -> None:
    logged = _logged("text")
    first = logged.splitlines()[0]
    assert first.endswith(" WARNING moments.test: Redis unreachable for 3 s")
    # the error the process dies of is a record too, its message left out
    assert " CRITICAL moments: stopped by an error" in logged, logged
    assert "RuntimeError (its message is left out" in logged and "unexpected" not in logged
    assert " ERROR moments: thread sweeper stopped by an error" in logged, logged
    assert "jane-doe" not in logged and "leaver" not in logged, logged


@pytest.mark.parametrize(
    ("setting", "value", "args", "said"),
    [
        ("MOMENTS_CATALOGUE_PATH", "/nonexistent/offers.toml", ["check-catalogue"],
         "/nonexistent/offers.toml"),
        ("MOMENTS_TOMBSTONE_DAYS", "0", ["check-catalogue"],
         "MOMENTS_TOMBSTONE_DAYS"),  # refused before logs are set up
        ("MOMENTS_LOG_LEVEL", "info", ["dead-letters", "--again"], "--again goes with"),
        ("MOMENTS_LOG_LEVEL", "info", ["rebuild", "--redis-url", "ftp://x"], "--redis-url"),
        ("MOMENTS_LOG_LEVEL", "info", ["bench", "--only", "foo"], "invalid choice: 'foo'"),
        ("MOMENTS_LOG_LEVEL", "info", ["bench", "--only", "store", "--against", "."],
         "--against goes with the http section"),
        ("MOMENTS_LOG_LEVEL", "info", ["bench", "--against", "/nonexistent"],
         "/nonexistent holds no Moments source tree (no streams/cli.py)"),
        ("MOMENTS_LOG_LEVEL", "info", ["lift", "--days", "x"], "--days: invalid float value"),
        ("MOMENTS_LOG_LEVEL", "info", ["no-such-command"], "invalid choice"),
    ],
)  # fmt: skip
def test_why_a_command_stops_is_a_record_too(
    setting: str, value: str, args: list[str], said: str
) -> None:
    env = {**os.environ, "MOMENTS_LOG_FORMAT": "json", setting: value}
    done = subprocess.run(
        [sys.executable, "-m", "streams.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    [record] = _records(done.stderr)
    assert record["level"] == "CRITICAL"
    assert said in record["message"]
