"""What one logger said in a test: the unit tests share one event loop, and a timer another
test left in it (a count of decisions given up, told a few seconds later) may log while
this test runs."""

from __future__ import annotations

import logging

import pytest


def said_by(caplog: pytest.LogCaptureFixture, logger: str) -> list[logging.LogRecord]:
    """The records ``logger``, or a logger under it, wrote during the test."""
    return [r for r in caplog.records if r.name == logger or r.name.startswith(logger + ".")]
