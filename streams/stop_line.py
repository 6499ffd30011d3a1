"""The line a ``moments`` command stops with: why, on stderr, the command named first (a
log record, where logs are JSON lines)."""

from __future__ import annotations

import logging
import sys

from streams.settings import Settings


def stopped(
    why: str, settings: Settings, who: str = "moments", level: int = logging.CRITICAL
) -> None:
    """Why the command stops (or, at a lower ``level``, what it warns of): one line on
    stderr, ``who`` first (a record of logger ``who``, where logs are JSON lines)."""
    if settings.log_format == "json":
        logging.getLogger(who.replace(" ", ".")).log(level, "%s", why)
    else:
        print(f"{who}: {why}", file=sys.stderr)
