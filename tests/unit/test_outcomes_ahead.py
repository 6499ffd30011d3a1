"""An outcome dated more than ``MOMENTS_MAX_FUTURE_SKEW_S`` ahead is refused as a
touchpoint is: ``POST /v1/outcomes`` answers 422 naming the item and its ``ts``, and the
offer learner dead-letters it with that reason, unlearned (one dated 9998-12-31 was
learned and counted)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from agents.learned_policy import ModelHolder
from streams.metrics import Metrics
from streams.offer_learner import OfferLearner
from streams.settings import Settings
from tests.unit.api_app import KEYS, SHOP, api_app
from tests.unit.learner_acceptances import Acceptances
from tests.unit.test_ingest_erased_routes import Publisher, outcome, post
from tests.unit.test_outcome_letters import Decisions, Tombstones

NOW = datetime(2026, 12, 6, 12, tzinfo=UTC)


def iso(ts: datetime) -> str:
    return ts.isoformat().replace("+00:00", "Z")


async def test_an_outcome_dated_too_far_ahead_is_a_422_naming_it_and_nothing_is_written() -> None:
    publisher = Publisher()
    app = api_app(publisher=publisher)
    soon = iso(datetime.now(UTC) + timedelta(minutes=10))  # within the skew allowed
    body = [outcome("c1", "d1", "shown") | {"ts": soon},
            outcome("c1", "d2", "accepted") | {"ts": "9998-12-31T23:59:59-23:59"}]  # fmt: skip
    status, answer = await post(app, "/v1/outcomes", body)
    assert (status, answer["error"]) == (422, "invalid_outcomes")
    (detail,) = answer["details"]
    assert detail["index"] == 1
    assert detail["reason"].endswith("is more than 0:15:00 in the future - at `$.ts`")
    assert publisher.records == []


async def test_the_skew_outcomes_are_allowed_is_the_setting() -> None:
    settings = Settings(api_keys=KEYS, api_cors_origins=SHOP, max_future_skew_s=3600)
    publisher = Publisher()
    app = api_app(settings, publisher=publisher)
    later = iso(datetime.now(UTC) + timedelta(minutes=50))
    status, _ = await post(app, "/v1/outcomes", [outcome("c1", "d1", "shown") | {"ts": later}])
    assert status == 202 and len(publisher.records) == 1


def _record(offset: int, ts: datetime | str) -> SimpleNamespace:
    stamp = ts if isinstance(ts, str) else iso(ts)
    value = (f'{{"decision_id": "d-{offset}", "customer_id": "c-1", "offer_id": "o", '
             f'"outcome": "accepted", "ts": "{stamp}"}}').encode()  # fmt: skip
    return SimpleNamespace(topic="offer-outcomes", partition=0, offset=offset, key=b"c-1",
                           value=value, headers=[])  # fmt: skip


async def test_the_learner_dead_letters_an_outcome_dated_too_far_ahead() -> None:
    sent: list[dict[str, Any]] = []

    async def dead_letter(**letter: Any) -> Awaitable[None]:
        sent.append(letter)
        return asyncio.sleep(0)  # delivered

    metrics = Metrics()
    store = SimpleNamespace(
        decisions=Decisions("skip"), erased=Tombstones(set()), acceptances=Acceptances()
    )
    learner = OfferLearner(store, ModelHolder(), metrics, "", "offer-outcomes",  # type: ignore[arg-type]
                           dead_letter, max_future=timedelta(minutes=15),
                           clock=lambda: NOW)  # fmt: skip
    learner._start(None, 0)
    records = [_record(1, NOW + timedelta(minutes=14)), _record(2, "9998-12-31T23:59:59-23:59"),
               _record(3, NOW + timedelta(minutes=16))]  # fmt: skip
    await learner._learn(0, records)
    reasons = {dict(x["headers"])["source-offset"]: dict(x["headers"])["error"] for x in sent}
    assert set(reasons) == {b"2", b"3"}  # the first is let by (claimed: a copy here)
    assert reasons[b"2"] == (
        b"invalid: ts 9998-12-31T23:59:59-23:59 is more than 0:15:00 in the future - at `$.ts`"
    )
    assert reasons[b"3"].startswith(b"invalid: ts 2026-12-06T12:16:00+00:00 is more than")
    counted = metrics.registry.get_sample_value
    assert not counted("moments_outcomes_total", {"outcome": "accepted"})
