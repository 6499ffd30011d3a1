"""Keeping watch on a customer's churn risk as their touchpoints arrive (pure).

For each touchpoint: score the risk, settle the pending feature snapshot's delayed label
if this touchpoint decides it, take a new snapshot when there is none pending, and say
whether the risk just crossed its threshold.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated

import msgspec

from agents.risk_features import risk_features_at
from agents.risk_labels import (
    SIGNAL_LEAD_MS,
    PendingSnapshot,
    churn_signal,
    label_for,
    lapse_among,
)
from agents.risk_scorer import RiskScorer
from feature_store import CustomerFeatures
from feature_store.facts import ts_ms
from schemas import TouchpointEvent
from schemas.risk import RiskExample

# the times a datetime can hold (a day within either end): a snapshot stored with another
# (by a tool, or a bug) cannot be read, as one that is no JSON; converted to a datetime,
# such a time raised OSError or ValueError, and every churn-risk sweep failed on it
FIRST_MS, LAST_MS = -62_135_510_400_000, 253_402_128_000_000


class _Snapshot(msgspec.Struct, omit_defaults=True):
    x: dict[str, float]
    ts_ms: Annotated[int, msgspec.Meta(ge=FIRST_MS, le=LAST_MS)]
    event_id: str = ""  # the touchpoint it was taken at (absent in older snapshots)
    held: list[str] = msgspec.field(default_factory=list)  # see PendingSnapshot.held


HELD_KEPT = 50  # the touchpoints a snapshot names as held at most (15 minutes' worth)
_HEX = re.compile(r"[0-9a-f]+")  # a keyed hash, as the store writes it (lower-case hex)


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(_Snapshot).decode


def decode_snapshot(raw: str) -> PendingSnapshot:
    """A stored pending snapshot; raises ``msgspec.DecodeError`` if it is not one (its
    time too: one no datetime can hold).

    >>> decode_snapshot('{"x": {}, "ts_ms": -100000000000000000000}')
    Traceback (most recent call last):
    msgspec.ValidationError: Expected `int` >= -62135510400000 - at `$.ts_ms`
    """
    stored = _decode(raw)
    return PendingSnapshot(stored.x, stored.ts_ms, stored.event_id, tuple(stored.held))


class RiskHolder:
    """The risk model a process scores with; replaced when a newer snapshot is loaded."""

    def __init__(self) -> None:
        self.model = RiskScorer()
        self.version = 0


@dataclass(frozen=True, slots=True)
class RiskWatch:
    risk: float
    crossed: bool  # from below the threshold to at or above it
    example: RiskExample | None  # a labelled example to learn from
    snapshot: str | None  # a new pending snapshot to store
    band: str | None  # the new band to store, when it changed
    # the customer's band once it is stored: this touchpoint's, or the stored one where
    # that is newer (a touchpoint read late does not move it)
    held_band: str | None = None


def example_id(subject: str, snapshot_ms: int) -> str:
    """The id of the example a pending snapshot becomes, whoever labels it (a touchpoint
    or the sweep, see :mod:`agents.risk_sweep`), however often: the learner learns it once.

    >>> example_id("3f2a", 1_700_000_000_000)
    'risk:3f2a:1700000000000'
    """
    return f"risk:{subject}:{snapshot_ms}"


def example_subject(example_id: str) -> str | None:
    """The customer an example is of, by their keyed hash (see :func:`example_id`); None
    for an id not named so (one an older Moments named after the touchpoint that
    labelled it, or a foreign writer's): it names no customer.

    >>> example_subject("risk:3f2a:1700000000000"), example_subject("risk:ev-1")
    ('3f2a', None)
    >>> example_subject("risk:{x}:1"), example_subject("risk:3F2A:1"), example_subject("risk:3f2a:")
    (None, None, None)
    """
    kind, _, rest = example_id.partition(":")
    subject, _, at = rest.partition(":")
    if kind != "risk" or not _HEX.fullmatch(subject) or not at.isascii() or not at.isdigit():
        return None
    return subject


def pending_snapshot(
    x: dict[str, float], at_ms: int, event_id: str = "", held: Sequence[str] = ()
) -> str:
    """A feature snapshot taken at touchpoint ``event_id``, as stored while it waits for
    its delayed label; ``held``: see :class:`~agents.risk_labels.PendingSnapshot`."""
    return _encode(_Snapshot(x, at_ms, event_id, list(held[:HELD_KEPT]))).decode()


BAND_MARGIN = 0.05  # how far below its threshold a high risk must fall to be low again


def risk_band(risk: float, threshold: float, was: str | None = None) -> str:
    """``"high"`` at or above ``threshold``; a risk that was high stays so until it falls
    :data:`BAND_MARGIN` below it, so that one hovering at the threshold (a model reloaded,
    a feature drifting) does not cross it again and again, each time a retention call.

    >>> risk_band(0.68, 0.7), risk_band(0.68, 0.7, was="high"), risk_band(0.64, 0.7, "high")
    ('low', 'high', 'low')
    """
    if risk >= threshold or (was == "high" and risk >= threshold - BAND_MARGIN):
        return "high"
    return "low"


def held_at(touchpoints: Iterable[tuple[str, datetime]], at: datetime, event_id: str) -> list[str]:
    """The ids of ``touchpoints`` (id and time) a snapshot taken at ``at``, at touchpoint
    ``event_id``, holds within :data:`SIGNAL_LEAD_MS` before it (see
    :class:`~agents.risk_labels.PendingSnapshot`), sorted.

    >>> from datetime import UTC
    >>> t = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    >>> held_at([("a", t - timedelta(minutes=20)), ("b", t - timedelta(minutes=5)),
    ...          ("c", t)], t, "c")
    ['b']
    """
    lead_from = at - timedelta(milliseconds=SIGNAL_LEAD_MS)
    return sorted({i for i, ts in touchpoints if lead_from <= ts <= at} - {event_id})


def _label(
    pending: PendingSnapshot,
    features: CustomerFeatures,
    event: TouchpointEvent,
    alongside: Sequence[TouchpointEvent],
) -> bool | None:
    """The label the customer's touchpoints of a batch give ``pending``: each in turn, in
    time order, with the customer's touchpoint just before it (``features.recent`` holds
    the batch's and those before), until one decides. Two touchpoints of a return in one
    batch still end the quiet spell they end; a late one of the batch hides none.

    The touchpoint a snapshot was taken at does not label it, when it comes again (a
    producer's retry, a re-drive, a batch redone after a crash): its features hold it.
    A lapse that a touchpoint nobody watched ended (a survey answer, an email clicked:
    see :func:`~agents.risk_labels.lapse_among`) labels it too, between touchpoints the
    store lists (and the batch's, down to the oldest listed before the batch: a late one
    older than that has no known neighbour, the ones between them having left the list).

    A churn signal dated a little before the snapshot labels it unless the snapshot
    held it already (``PendingSnapshot.held``: one come again was there when it was taken).
    """
    batch = sorted({e.event_id: e for e in (*alongside, event)}.values(), key=lambda e: e.ts)
    ids = {e.event_id for e in batch}
    oldest = min((r.ts for r in features.recent if r.event_id not in ids), default=None)
    listed = {r.event_id: ts_ms(r.ts) for r in features.recent if r.event_id not in ids} | {
        e.event_id: ts_ms(e.ts) for e in batch if oldest is None or e.ts >= oldest
    }
    if lapse_among(pending, listed.values()):
        return True
    for e in batch:
        if pending.event_id and pending.event_id == e.event_id:
            continue
        before = [r.ts for r in features.recent if r.ts < e.ts and r.event_id != e.event_id]
        previous = ts_ms(max(before)) if before else None
        lead = 0 if e.event_id in pending.held else SIGNAL_LEAD_MS
        label = label_for(pending, ts_ms(e.ts), previous, churn=churn_signal(e),
                          signal_lead_ms=lead)  # fmt: skip
        if label is not None:
            return label
    return None


def watch_risk(
    event: TouchpointEvent,
    features: CustomerFeatures,
    now: datetime,
    model: RiskScorer,
    threshold: float = 0.7,
    *,
    subject: str,
    alongside: Sequence[TouchpointEvent] = (),
) -> RiskWatch:
    """Watch the customer's risk at ``event``, their newest touchpoint of a batch.
    ``subject``: the keyed hash of their id (see :func:`example_id`); ``alongside``: their
    touchpoints of the batch, whose churn signals label the pending snapshot too
    (``features`` already hold them). A pending snapshot that cannot be read is none: the
    touchpoint takes a new one (it failed every watch of the customer, and stayed)."""
    x = risk_features_at(features, event.ts, event.event_id)
    risk = model.predict_one(x)
    event_ms = ts_ms(event.ts)
    pending = None
    if features.risk_snapshot:
        try:
            pending = decode_snapshot(features.risk_snapshot)
        except msgspec.DecodeError:  # another's (a tool's, a bug's): a new one replaces it
            pending = None
    label = None if pending is None else _label(pending, features, event, alongside)
    example = None
    if pending is not None and label is not None:
        example = RiskExample(
            example_id=example_id(subject, pending.ts_ms),
            x=pending.x,
            y=label,
            snapshot_ts=datetime.fromtimestamp(pending.ts_ms / 1000, tz=now.tzinfo),
            label_ts=event.ts,
        )
    snapshot = None
    if pending is None or example:  # with what it holds of the touchpoints just before it
        near = [*((r.event_id, r.ts) for r in features.recent),
                *((e.event_id, e.ts) for e in alongside)]  # fmt: skip
        held = held_at(near, event.ts, event.event_id)
        snapshot = pending_snapshot(x, event_ms, event.event_id, held)
    band = risk_band(risk, threshold, features.risk_band)
    newest = features.risk_band_ms is None or event_ms >= features.risk_band_ms
    return RiskWatch(
        risk=risk,
        # no band yet (a customer's first touchpoint, a profile made again after it
        # expired) is below the threshold: one high at once has crossed it. A touchpoint
        # older than the one the band was seen at (a late call record) cannot cross it:
        # its band is not stored either (the newer one wins), and the crossing would be
        # raised again at the next touchpoint
        crossed=band == "high" and features.risk_band != "high" and newest,
        example=example,
        snapshot=snapshot,
        band=band if band != features.risk_band else None,
        held_band=band if newest else features.risk_band,
    )
