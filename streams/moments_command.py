"""The ``moments`` console script: :func:`streams.cli.main`, imported only once the
script runs, so that a Ctrl-C while its modules still import (a second or two on a
busy machine) ends as quietly as one later does, with exit status 130 and no
traceback; so does SIGTERM then (an orchestrator's stop of a worker or an API that
has only just started ended it at once, with 143 and no word)."""

from __future__ import annotations

import signal
from typing import Any


def _interrupted(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main() -> int:
    try:
        previous = signal.signal(signal.SIGTERM, _interrupted)  # while the modules import
        try:
            from streams.cli import main as run
        finally:
            signal.signal(signal.SIGTERM, previous)
        return run()
    except KeyboardInterrupt:
        return 130
