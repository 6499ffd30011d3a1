"""A customer's churn risk as of their touchpoint: the quiet spell it ended, not how late
it was read; a return whose touchpoints arrive together still ends its lapse; and a
customer found high at once has crossed the threshold."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from agents.risk import ChurnRisk
from agents.risk_features import risk_features, risk_features_at
from agents.risk_watch import pending_snapshot, watch_risk
from feature_store.facts import ts_ms
from feature_store.features import CustomerFeatures, RecentTouchpoint
from schemas import WebClick

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SNAPSHOT = pending_snapshot({"experience": 0.5}, ts_ms(T0), "e0")


def click(event_id: str, at: datetime) -> WebClick:
    return WebClick(event_id=event_id, customer_id="c", ts=at, page="/")


def seen(*touchpoints: WebClick, **fields: object) -> CustomerFeatures:
    """A profile holding ``touchpoints`` (newest first, as the store reads them)."""
    recent = sorted(
        (RecentTouchpoint(t.ts, t.kind, t.event_id) for t in touchpoints),
        key=lambda r: r.ts,
        reverse=True,
    )
    return CustomerFeatures(events=len(recent), last_seen=recent[0].ts, recent=recent, **fields)  # type: ignore[arg-type]


class Recording:
    """A risk model that remembers what it was asked to score."""

    def __init__(self, risk: float = 0.1) -> None:
        self.risk = risk
        self.seen: list[dict[str, float]] = []

    def predict_one(self, x: dict[str, float]) -> float:
        self.seen.append(x)
        return self.risk


def test_a_touchpoint_is_scored_with_the_quiet_spell_it_ended_however_late_it_is_read() -> None:
    before, now = click("e1", T0), click("e2", T0 + timedelta(days=20))
    features = seen(now, before)
    for read_at in (now.ts, now.ts + timedelta(seconds=2), now.ts + timedelta(hours=6)):
        model = Recording()
        watch_risk(now, features, read_at, model, subject="s")  # type: ignore[arg-type]
        assert model.seen[0]["days_since_seen"] == 20.0
    # a profile looked at is quiet since the customer's last touchpoint
    assert risk_features(features, now.ts + timedelta(days=3))["days_since_seen"] == 3.0


def test_a_model_trained_on_touchpoints_scores_a_late_read_as_an_on_time_one() -> None:
    """Scored as of the wall clock, every snapshot held the processing lag (seconds): the
    scaler learned a spread of about 1e-5 days and a worker catching up saturated every
    customer's risk."""
    model = ChurnRisk(warmup=50)
    for i in range(400):
        at = T0 + timedelta(days=i % 40, seconds=i)
        gap = (i * 7) % 30
        features = seen(click(f"e{i}", at), click(f"p{i}", at - timedelta(days=gap)))
        model.learn_one(risk_features_at(features, at, f"e{i}"), y=gap > 20)
    event = click("late", T0 + timedelta(days=50))
    features = seen(event, click("p", event.ts - timedelta(days=2)))
    on_time = watch_risk(event, features, event.ts, model, subject="s")
    caught_up = watch_risk(event, features, event.ts + timedelta(hours=3), model, subject="s")
    assert on_time.risk == caught_up.risk


def test_a_return_whose_touchpoints_arrive_in_one_batch_labels_the_lapse() -> None:
    day5, day60 = T0 + timedelta(days=5), T0 + timedelta(days=60)
    old = [click("e0", T0), click("e5", day5)]
    first, second = click("c1", day60), click("c2", day60 + timedelta(seconds=20))
    alone = watch_risk(first, seen(first, *old, risk_snapshot=SNAPSHOT), day60, ChurnRisk(),
                       subject="s", alongside=[first])  # fmt: skip
    together = watch_risk(
        second, seen(second, first, *old, risk_snapshot=SNAPSHOT), second.ts, ChurnRisk(),
        subject="s", alongside=[first, second],
    )  # fmt: skip
    assert alone.example is not None and alone.example.y is True
    assert together.example is not None and together.example.y is True


def test_touchpoints_of_one_batch_that_kept_the_customer_active_label_no_lapse() -> None:
    """Read together after an outage: active on day 10 and 20, then day 40 (past the
    horizon): no quiet spell of 45 days, so negative."""
    old = click("e0", T0)
    batch = [click(f"b{d}", T0 + timedelta(days=d)) for d in (10, 20, 40)]
    features = seen(*batch, old, risk_snapshot=SNAPSHOT)
    watch = watch_risk(batch[-1], features, batch[-1].ts, ChurnRisk(), subject="s",
                       alongside=batch)  # fmt: skip
    assert watch.example is not None and watch.example.y is False


def test_a_customer_high_when_first_scored_has_crossed_the_threshold() -> None:
    event = click("e1", T0)
    first = watch_risk(event, seen(event), T0, Recording(0.9), 0.7, subject="s")  # type: ignore[arg-type]
    assert first.crossed and first.band == "high"
    again = seen(click("e2", T0 + timedelta(hours=1)), event, risk_band="high")
    later = watch_risk(click("e2", T0 + timedelta(hours=1)), again, T0, Recording(0.9), 0.7,
                       subject="s")  # type: ignore[arg-type]  # fmt: skip
    assert not later.crossed and later.band is None
    low = watch_risk(event, seen(event), T0, Recording(0.2), 0.7, subject="s")  # type: ignore[arg-type]
    assert not low.crossed and low.band == "low"


def test_a_risk_hovering_at_the_threshold_crosses_it_once() -> None:
    """A model reloaded every few seconds moves a score at 0.70 a little either way: each
    fall below and rise above was a crossing, and a retention call."""
    band: str | None = "low"
    crossings = 0
    for i, risk in enumerate((0.71, 0.69, 0.705, 0.68, 0.72, 0.66, 0.71, 0.64, 0.71)):
        event = click(f"e{i}", T0 + timedelta(minutes=i))
        watch = watch_risk(event, seen(event, risk_band=band), event.ts, Recording(risk), 0.7,
                           subject="s")  # type: ignore[arg-type]  # fmt: skip
        crossings += watch.crossed
        band = watch.band or band
    assert crossings == 2  # at 0.71, and again only after falling to 0.64


def test_a_late_touchpoint_in_a_batch_hides_no_touchpoint_between() -> None:
    """Snapshot on day 10, a click on day 30 (an earlier batch), then one batch with a
    late call record dated day 5 and a click on day 60: quiet for 30 days, not 50."""
    snapshot = pending_snapshot({"experience": 0.5}, ts_ms(T0 + timedelta(days=10)), "s")
    day30, late, day60 = (click(f"d{d}", T0 + timedelta(days=d)) for d in (30, 5, 60))
    features = seen(day60, day30, late, risk_snapshot=snapshot)
    watch = watch_risk(day60, features, day60.ts, ChurnRisk(), subject="s",
                       alongside=[late, day60])  # fmt: skip
    assert watch.example is not None and watch.example.y is False


def test_a_touchpoint_between_two_of_a_batch_that_is_not_watched_counts() -> None:
    """Clicks of a batch on days 20 and 70, and a touchpoint on day 30 between them that
    the batch did not watch: quiet for 40 days, no lapse."""
    old = click("e0", T0)
    first, between, last = (click(f"d{d}", T0 + timedelta(days=d)) for d in (20, 30, 70))
    features = seen(last, between, first, old, risk_snapshot=SNAPSHOT)
    watch = watch_risk(last, features, last.ts, ChurnRisk(), subject="s",
                       alongside=[first, last])  # fmt: skip
    assert watch.example is not None and watch.example.y is False
