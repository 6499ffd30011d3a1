"""The ``moments`` console script: :func:`streams.cli.main`, imported only once the
script runs, so that a Ctrl-C while its modules still import (a second or two on a
busy machine) ends as quietly as one later does, with exit status 130 and no
traceback; so does SIGTERM then (an orchestrator's stop of a worker or an API that
has only just started ended it at once, with 143 and no word)."""

from __future__ import annotations

import signal
from typing import Any

_before: Any = signal.SIG_DFL  # SIGTERM's handler when the script began


def _interrupted(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main() -> int:
    global _before
    try:
        # until the command is under way (:func:`started`): while the modules import
        _before = signal.signal(signal.SIGTERM, _interrupted)
        from streams.cli import main as run

        return run()
    except KeyboardInterrupt:
        return 130


def started() -> None:
    """SIGTERM as it was before the script began, now that its command is under way
    (a worker or the API handles it as Ctrl-C until they take it over themselves)."""
    if signal.getsignal(signal.SIGTERM) is _interrupted:
        signal.signal(signal.SIGTERM, _before)
