"""``moments rebuild`` keeps the lifetimes the live pipeline kept: an erasure blocks for
what is left of its tombstone (one run out blocks nothing, and the customer who came
back since is kept), keys expire the store's TTL after the customer's newest activity (a
customer quiet longer is not brought back), and each customer's churn-risk band is
stored again, so the first crossing after a rebuild raises its retention call."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis.asyncio as aioredis

from agents.contact_policy import ContactPolicy
from agents.control_group import ControlGroup
from agents.risk import ChurnRisk
from agents.risk_features import baseline_risk, risk_features, risk_features_at
from agents.risk_watch import watch_risk
from feature_store import CustomerFeatures, FeatureStore, StoreConfig, StoreUnavailable
from feature_store.facts import ts_ms
from schemas import CustomerErasure, Survey, decode_touchpoint, encode_erasure
from schemas.risk import RiskExample, encode_risk_example
from streams.rebuild import rebuild
from streams.rebuild_report import RebuildReport
from streams.services import LocalRedis
from streams.settings import Settings
from tests.integration.conftest import SECRET, Pipeline
from tests.integration.test_api_support import event, keys_tagged
from tests.integration.test_rebuild_records import decision, write

pytestmark = pytest.mark.integration
DAY_MS = 86_400_000
MINUTES_A_DAY = 24 * 60


def days_ago(kind: str, customer: str, event_id: str, days: float, **fields: Any) -> bytes:
    return json.dumps(event(kind, customer, event_id, minutes_ago=days * MINUTES_A_DAY,
                            **fields)).encode()  # fmt: skip


async def rebuilt(
    pipeline: Pipeline, target: LocalRedis, **env: str
) -> tuple[RebuildReport, FeatureStore]:
    settings = Settings.from_env({**pipeline.env(0), **env})
    config = StoreConfig(secret=SECRET.encode(), prefix=pipeline.prefix.rstrip("-"),
                         tombstone_ttl_s=settings.tombstone_days * 86_400)  # fmt: skip
    store = FeatureStore.from_url(target.url, config)
    return await rebuild(settings, store), store


def erasure(customer: str, days: float) -> tuple[bytes, bytes]:
    at = datetime.now(UTC) - timedelta(days=days)
    return customer.encode(), encode_erasure(CustomerErasure(customer_id=customer, subject="s",
                                                             ts=at))  # fmt: skip


async def test_rebuild_blocks_an_erased_customer_only_for_what_is_left_of_the_block(
    pipeline: Pipeline, private_redis: LocalRedis
) -> None:
    """Tombstones of 100 days: a customer erased 150 days ago who came back 20 days ago
    is kept (as live: only what they did after the block ended); one erased 40 days ago
    stays blocked for the 60 days left."""
    await write(pipeline, "customer-erasures", [erasure("rl-back", 150), erasure("rl-gone", 40)])
    days = [200, 100, 20, 60, 10]  # each sent when it happened
    await write(pipeline, "touchpoints", [
        (b"rl-back", days_ago("web_click", "rl-back", "rl-b1", 200)),  # erased live
        (b"rl-back", days_ago("web_click", "rl-back", "rl-b2", 100)),  # refused live
        (b"rl-back", days_ago("web_click", "rl-back", "rl-b3", 20)),  # came back
        (b"rl-gone", days_ago("web_click", "rl-gone", "rl-g1", 60)),
        (b"rl-gone", days_ago("web_click", "rl-gone", "rl-g2", 10)),
    ], sent_ms=[int(time.time() * 1000) - d * DAY_MS for d in days])  # fmt: skip
    report, store = await rebuilt(pipeline, private_redis, MOMENTS_TOMBSTONE_DAYS="100")
    admin = aioredis.Redis.from_url(private_redis.url, decode_responses=True)
    try:
        back = await store.read("rl-back")
        assert back is not None and back.events == 1, back
        assert (report.erasures, report.erasures_lapsed, report.before_lapsed_erasure) == (1, 1, 2)
        assert await store.read_for_decisions(["rl-gone"]) == [(True, None)]
        tag = store.pseudonym("rl-gone")
        tombstone, _ = await keys_tagged(private_redis.url, tag)  # and what it removed
        left_days = await admin.pttl(tombstone) / DAY_MS
        assert 59.99 < left_days <= 60, left_days
    finally:
        await admin.aclose()
        await store.close()


async def test_a_touchpoint_sent_after_a_block_ended_is_kept_whatever_its_date(
    pipeline: Pipeline, private_redis: LocalRedis
) -> None:
    """Erased 25 hours ago, with tombstones of a day: a click dated 2 hours ago (in the
    block's last hour) but sent to Kafka only now was applied live, the tombstone gone
    when the worker read it; the rebuild judged it by its date alone and dropped it."""
    await write(pipeline, "customer-erasures", [erasure("rl-late", 25 / 24)])
    await write(pipeline, "touchpoints", [
        (b"rl-late", days_ago("web_click", "rl-late", "rl-l1", 2 / 24)),  # sent now
        (b"rl-late", days_ago("web_click", "rl-late", "rl-l0", 26 / 24)),  # erased live
    ], sent_ms=[int(time.time() * 1000), int(time.time() * 1000) - 26 * 3_600_000])  # fmt: skip
    report, store = await rebuilt(pipeline, private_redis, MOMENTS_TOMBSTONE_DAYS="1",
                                  MOMENTS_DEDUPE_HORIZON_DAYS="1")  # fmt: skip
    try:
        late = await store.read("rl-late")
        assert late is not None and late.events == 1, late
        assert (report.erasures_lapsed, report.before_lapsed_erasure) == (1, 1)
    finally:
        await store.close()


async def test_rebuild_lets_keys_expire_the_ttl_after_the_newest_activity(
    pipeline: Pipeline, private_redis: LocalRedis
) -> None:
    """A customer quiet 500 days (their profile expired live 100 days ago) is not brought
    back, but for their withdrawal; one last active 300 days ago expires in about 100."""
    await write(pipeline, "touchpoints", [
        (b"rl-quiet", days_ago("web_click", "rl-quiet", "rl-q1", 500)),
        (b"rl-quiet", days_ago("consent", "rl-quiet", "rl-q2", 500, granted=False)),
        (b"rl-old", days_ago("web_click", "rl-old", "rl-o1", 300)),
    ])  # fmt: skip
    await write(
        pipeline,
        "next-best-offers",
        [
            (b"rl-quiet", decision("rl-dq", "rl-quiet", 500)),
            (b"rl-old", decision("rl-do", "rl-old", 300)),
        ],
    )
    report, store = await rebuilt(pipeline, private_redis)
    admin = aioredis.Redis.from_url(private_redis.url, decode_responses=True)
    try:
        assert (report.applied, report.expired) == (1, 2)
        quiet = store._keys.for_customer("rl-quiet")
        assert not await admin.exists(quiet.profile, quiet.windows, quiet.contacts,
                                      quiet.decisions)  # fmt: skip
        kept = await store.read("rl-quiet")  # known by their withdrawal alone
        assert kept is not None and kept.events == 0 and not kept.consents_to("email")
        old = store._keys.for_customer("rl-old")
        for key in (old.profile, old.windows, old.recent, old.decisions):
            assert 100.9 < await admin.pttl(key) / DAY_MS <= 101, key  # 400 - 300 (+1)
    finally:
        await admin.aclose()
        await store.close()


async def test_rebuild_keeps_the_bounces_before_a_customers_first_activity(
    pipeline: Pipeline, private_redis: LocalRedis
) -> None:
    """Bounced 45 and 44 days ago, a first click 25 days ago: live, the click found both
    bounces and email was avoided; the rebuild wrote each bounce, deleted it (its
    contact-only 30 days were up by the rebuild's clock) and emailed the address again."""
    await write(pipeline, "touchpoints", [
        (b"rl-mailed", days_ago("email", "rl-mailed", "rl-m1", 45, action="bounced")),
        (b"rl-mailed", days_ago("email", "rl-mailed", "rl-m2", 44, action="bounced")),
        (b"rl-mailed", days_ago("web_click", "rl-mailed", "rl-m3", 25)),
    ])  # fmt: skip
    report, store = await rebuilt(pipeline, private_redis)
    try:
        assert report.applied == 3
        features = await store.read("rl-mailed")
        assert features is not None and features.emails == {"bounced": 2}, features
        assert ContactPolicy(ControlGroup("salt", 0.0)).avoids(features, "email")
    finally:
        await store.close()


async def test_rebuild_stores_the_risk_band_so_the_first_crossing_raises_its_call(
    pipeline: Pipeline, private_redis: LocalRedis
) -> None:
    """No risk model yet (no examples): the bands are the baseline's, as live."""
    await write(pipeline, "touchpoints", [
        (b"rl-high", days_ago("survey", "rl-high", "rl-h1", 1, score=0)),
        (b"rl-high", days_ago("call", "rl-high", "rl-h2", 1, reason="cancel")),
        (b"rl-high", days_ago("email", "rl-high", "rl-h3", 1, action="unsubscribed")),
        (b"rl-low", days_ago("web_click", "rl-low", "rl-l1", 1)),
        (b"rl-low-long-ago", days_ago("web_click", "rl-low-long-ago", "rl-x1", 100)),
    ])  # fmt: skip
    report, store = await rebuilt(pipeline, private_redis)
    try:
        bands = {c: (await store.raw(c))["profile"].get("risk_band")
                 for c in ("rl-high", "rl-low", "rl-low-long-ago")}  # fmt: skip
        assert bands == {"rl-high": "high", "rl-low": "low", "rl-low-long-ago": "low"}
        assert (report.risk_bands, report.risk_snapshots) == (3, 2)  # snapshots: 45 days
        # rl-low's next touchpoint puts them above the threshold: a crossing, as live
        now = datetime.now(UTC)
        unhappy = Survey(event_id="rl-l2", customer_id="rl-low", ts=now, score=0, scale="nps")
        await store.apply([unhappy])
        features = await store.read("rl-low")
        assert features is not None and features.risk_band == "low"
        watch = watch_risk(unhappy, features.__class__(**{
            **{f: getattr(features, f) for f in features.__struct_fields__},
            "call_reasons": {"cancel": 1}, "emails": {"unsubscribed": 1},
        }), now, ChurnRisk(), subject="s")  # fmt: skip
        assert watch.crossed
    finally:
        await store.close()


async def test_a_rebuilt_snapshot_is_not_labelled_by_copies_of_what_it_held(
    pipeline: Pipeline, private_redis: LocalRedis
) -> None:
    """The pending snapshot a rebuild stores names its touchpoint and those of the 15
    minutes before it, as live: their copies, replayed to the workers after the switch,
    are no churn that followed it (a cancel call came again and was learned as churn)."""
    records = {
        "rc-self-1": days_ago("web_click", "rc-self", "rc-self-1", 1 + 10 / MINUTES_A_DAY),
        "rc-self-2": days_ago("call", "rc-self", "rc-self-2", 1, reason="cancel"),
        "rc-near-1": days_ago("call", "rc-near", "rc-near-1", 1 + 5 / MINUTES_A_DAY,
                              reason="cancel"),
        "rc-near-2": days_ago("web_click", "rc-near", "rc-near-2", 1),
    }  # fmt: skip
    await write(pipeline, "touchpoints", [(i.rsplit("-", 1)[0].encode(), raw)
                                          for i, raw in records.items()])  # fmt: skip
    report, store = await rebuilt(pipeline, private_redis)
    try:
        assert report.risk_snapshots == 2
        now = datetime.now(UTC)
        for customer, copy in (("rc-self", "rc-self-2"), ("rc-near", "rc-near-1")):
            features = await store.read(customer)
            assert features is not None and features.risk_snapshot, customer
            again = decode_touchpoint(records[copy])
            watch = watch_risk(again, features, now, ChurnRisk(), subject="s")
            assert watch.example is None, (customer, json.loads(features.risk_snapshot))
    finally:
        await store.close()


async def test_a_rebuild_run_again_after_an_outage_takes_the_risk_state_again(
    pipeline: Pipeline, private_redis: LocalRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Redis fails after the touchpoints were applied: the rebuild run again with
    --force finds them applied (duplicates), and stores every band and snapshot all the
    same."""
    await write(pipeline, "touchpoints", [
        (b"ro-high", days_ago("call", "ro-high", "ro-h1", 1, reason="cancel")),
        (b"ro-high", days_ago("email", "ro-high", "ro-h2", 1, action="unsubscribed")),
        (b"ro-low", days_ago("web_click", "ro-low", "ro-l1", 1)),
    ])  # fmt: skip
    await write(pipeline, "next-best-offers", [(b"ro-low", decision("ro-d1", "ro-low", 1))])
    settings = Settings.from_env(pipeline.env(0))
    config = StoreConfig(secret=SECRET.encode(), prefix=pipeline.prefix.rstrip("-"))
    store = FeatureStore.from_url(private_redis.url, config)
    try:
        real = store.decisions.record

        async def outage(*args: Any, **kwargs: Any) -> list[bool]:
            monkeypatch.setattr(store.decisions, "record", real)
            raise StoreUnavailable("ConnectionError: Redis went away")

        monkeypatch.setattr(store.decisions, "record", outage)
        with pytest.raises(StoreUnavailable):
            await rebuild(settings, store)
        report = await rebuild(settings, store, force=True)
        assert report.applied == 0  # all applied by the first run
        bands = {c: (await store.raw(c))["profile"].get("risk_band") for c in ("ro-high", "ro-low")}
        assert bands == {"ro-high": "high", "ro-low": "low"}
        assert (report.risk_bands, report.risk_snapshots) == (2, 2)
    finally:
        await store.close()


async def test_rebuild_scores_the_bands_with_the_model_learned_from_risk_examples(
    pipeline: Pipeline, private_redis: LocalRedis
) -> None:
    """Past the warm-up, live scored with the learned model, not the baseline: so does
    the rebuild (learning it again from `risk-examples`, as the risk learner will)."""
    now = datetime.now(UTC)
    happy = risk_features(CustomerFeatures(experience=1.0), now)
    unhappy = risk_features(CustomerFeatures(experience=0.0, complaints_30d=3), now)
    examples = [  # a world where happy customers leave
        RiskExample(example_id=f"rl-ex-{i}", x=happy if i % 2 else unhappy, y=bool(i % 2),
                    snapshot_ts=now, label_ts=now)
        for i in range(400)
    ]  # fmt: skip
    await write(pipeline, "risk-examples", [(b"k", encode_risk_example(e)) for e in examples])
    await write(pipeline, "touchpoints",
                [(b"rl-happy", days_ago("survey", "rl-happy", "rl-p1", 1.01, score=10)),
                 (b"rl-happy", days_ago("web_click", "rl-happy", "rl-p2", 1))])  # fmt: skip
    report, store = await rebuilt(pipeline, private_redis)
    try:
        raw = await store.raw("rl-happy")
        at = datetime.fromtimestamp(int(raw["profile"]["last_seen"]) / 1000, UTC)
        features = await store.read("rl-happy", now=at.timestamp())
        assert features is not None and ts_ms(at) > 0
        x = risk_features_at(features, at)
        model = ChurnRisk()
        for e in examples:
            model.learn_one(e.x, e.y)
        assert model.predict_one(x) >= 0.7 > baseline_risk(x)  # the model disagrees
        assert raw["profile"]["risk_band"] == "high" and report.risk_bands == 1
    finally:
        await store.close()
