"""``MOMENTS_LOG_FORMAT=json``: a process's log is one JSON object per line, a
traceback included in its record rather than on lines of its own."""

from __future__ import annotations

import json
import subprocess
import sys

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
"""


def _logged(line_format: str) -> str:
    done = subprocess.run(
        [sys.executable, "-W", "always", "-c", "import sys\n" + PROCESS, line_format],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stderr


def test_json_lines_hold_each_record_and_its_traceback() -> None:
    lines = [json.loads(line) for line in _logged("json").splitlines()]
    assert [(r["level"], r["logger"], r["message"]) for r in lines[:2]] == [
        ("WARNING", "moments.test", "Redis unreachable for 3 s"),
        ("ERROR", "moments.test", "a batch failed"),
    ]
    assert lines[2]["logger"] == "py.warnings" and "a library's deprecation" in lines[2]["message"]
    assert len(lines) == 3
    assert "exception" not in lines[0]
    assert lines[1]["exception"].startswith("Traceback") and "KeyError" in lines[1]["exception"]
    assert all(r["time"].endswith("Z") and r["time"][10] == "T" for r in lines)


def test_text_lines_are_as_before() -> None:
    first = _logged("text").splitlines()[0]
    assert first.endswith(" WARNING moments.test: Redis unreachable for 3 s")
