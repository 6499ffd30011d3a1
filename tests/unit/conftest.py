"""Each unit test runs in an event loop of its own: a timer or task one test leaves
behind (a count told a few seconds later, a retry) is dropped with its loop instead of
running in the tests after it. (The integration tests share one loop, and the services'
clients with it.) An async fixture here says it runs in the test's loop:
``@pytest_asyncio.fixture(loop_scope="function")``."""

from __future__ import annotations

import inspect

import pytest


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makeitem(collector: pytest.Collector, name: str, obj: object) -> None:
    if inspect.iscoroutinefunction(obj) and not any(
        m.name == "asyncio" for m in getattr(obj, "pytestmark", [])
    ):
        pytest.mark.asyncio(loop_scope="function")(obj)
