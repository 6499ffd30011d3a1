"""The worker's /metrics writes its text anew at most 10 times a second, as the API's:
it wrote it at every request, on the event loop the worker's batches need (a client
asking without end took that loop's time)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from streams.app import _register_pages
from streams.metrics import FRESH_BURST, Metrics


class CountedMetrics(Metrics):
    written = 0

    def exposition(self, now: Any = None) -> bytes:
        self.written += 1
        return super().exposition(now)


class Pages:
    """The worker's web app, as far as registering pages goes."""

    def __init__(self) -> None:
        self.pages: dict[str, Callable[..., Any]] = {}

    def page(self, path: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def register(handler: Callable[..., Any]) -> Callable[..., Any]:
            self.pages[path] = handler
            return handler

        return register


def test_the_workers_metrics_page_shares_its_texts_under_a_flood() -> None:
    metrics, app = CountedMetrics(), Pages()
    _register_pages(SimpleNamespace(app=app, metrics=metrics))  # type: ignore[arg-type]
    web = SimpleNamespace(bytes=lambda body, content_type: body)

    async def flood() -> list[bytes]:
        return [await app.pages["/metrics"](web, None) for _ in range(500)]

    texts = asyncio.run(flood())
    assert all(b"moments_dead_letters_total" in text for text in texts)
    assert metrics.written < FRESH_BURST + 20  # not 500 (the flood takes well under 2 s)
