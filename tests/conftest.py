"""Test reports that xdist can send: a test that fails with a lone surrogate in what it
captured (a header aiohttp decoded from bytes that were not UTF-8, logged) stopped the
whole run with an INTERNALERROR, naming no test, as execnet sends only UTF-8."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest


def _sendable(value: Any) -> Any:
    """``value`` with every string that UTF-8 cannot carry escaped (``\\udcff``)."""
    if isinstance(value, str):
        try:
            value.encode()
        except UnicodeEncodeError:
            return value.encode("utf-8", "backslashreplace").decode()
        return value
    if isinstance(value, dict):
        return {_sendable(k): _sendable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_sendable(v) for v in value)
    return value


@pytest.hookimpl(hookwrapper=True)
def pytest_report_to_serializable(report: Any) -> Generator[None, Any, None]:
    outcome = yield
    serialized = outcome.get_result()
    if serialized is not None:
        outcome.force_result(_sendable(serialized))
