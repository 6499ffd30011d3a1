"""Every process's /metrics shows when it started: MomentsDeadLettersRefused and
MomentsLearnerRewound count a series born above 0 only in a process younger than their
window, so that scrapes missing for longer (Prometheus restarted, a worker unreachable)
do not make old counts fire again."""

from __future__ import annotations

import sys
import time

import pytest

from streams.metrics import Metrics


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="read from /proc")
def test_the_exposition_shows_the_process_start_time() -> None:
    text = Metrics().exposition().decode()
    line = next(x for x in text.splitlines() if x.startswith("process_start_time_seconds "))
    started = float(line.split()[1])
    assert time.time() - 7 * 86400 < started <= time.time()
