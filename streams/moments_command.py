"""The ``moments`` console script: :func:`streams.cli.main`, imported only once the
script runs, so that a Ctrl-C while its modules still import (a second or two on a
busy machine) ends as quietly as one later does, with exit status 130 and no
traceback."""

from __future__ import annotations


def main() -> int:
    try:
        from streams.cli import main as run

        return run()
    except KeyboardInterrupt:
        return 130
