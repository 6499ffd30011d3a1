"""A labelled metric's children, each looked up once: the series Moments touches on the
paths every request and touchpoint takes, and the per-offer ones that go with their offers."""

from __future__ import annotations

import contextlib
from collections.abc import Collection
from typing import Generic, TypeVar

from prometheus_client import Counter, Histogram

Labelled = TypeVar("Labelled", Counter, Histogram)


class Children(Generic[Labelled]):
    """A labelled metric's children, each looked up once (``labels()`` checks its values
    and takes a lock at every call: microseconds on the paths every request takes).

    >>> requests = Counter("requests", "Requests.", ["route"], registry=None)
    >>> by_route = Children(requests)
    >>> by_route("/healthz").inc()
    >>> by_route("/healthz").inc()
    >>> requests.labels("/healthz")._value.get()
    2.0
    """

    def __init__(self, metric: Labelled) -> None:
        self._metric: Labelled = metric
        self._children: dict[tuple[str, ...], Labelled] = {}

    def __call__(self, *labels: str) -> Labelled:
        child = self._children.get(labels)
        if child is None:
            child = self._children[labels] = self._metric.labels(*labels)
        return child

    def firsts(self) -> set[str]:
        """The first label of every child made (an offer id, say)."""
        return {labels[0] for labels in self._children}

    def forget(self, firsts: Collection[str]) -> None:
        """Drop every child whose first label is one of ``firsts``: its series leaves
        the exposition (a counter's series ends there; one made again starts from 0).

        >>> requests = Counter("requests", "Requests.", ["route"], registry=None)
        >>> by_route = Children(requests)
        >>> by_route("/healthz").inc(), by_route("/gone").inc()
        (None, None)
        >>> by_route.forget({"/gone"})
        >>> sorted(by_route.firsts()), [s.labels for s in requests.collect()[0].samples]
        (['/healthz'], [{'route': '/healthz'}])
        """
        for labels in [labels for labels in self._children if labels[0] in firsts]:
            del self._children[labels]
            with contextlib.suppress(KeyError):  # removed already by another way
                self._metric.remove(*labels)
