"""Decision contexts are kept without the customer's id and read back with it
(feature_store/decision_contexts.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from feature_store.decision_contexts import restored, stored
from schemas import (
    Intervention,
    InterventionContext,
    NextBestOffer,
    OfferScore,
    decode_intervention,
    decode_next_best_offer,
    encode_decision,
)

TS = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)
# ids as clients send them: quotes, backslashes, commas, braces, non-ASCII, controls
ODD_IDS = ["cust-1", 'a"b', 'a\\"b', "{x}", 'a,"customer_id":"b', "é ü\t\n", '"', "", "x" * 300]


def _offer(customer_id: str, decision_id: str = "d1") -> NextBestOffer:
    return NextBestOffer(
        decision_id=decision_id, customer_id=customer_id, ts=TS, channel="web",
        trigger_event_id=f"ev-of-{customer_id}", offers=[OfferScore(offer_id="o", score=0.5,
        propensity=0.2)], reasons=[f"context:category:{customer_id}"], context=[0.1, 2.0],
    )  # fmt: skip


def _alert(customer_id: str) -> Intervention:
    return Intervention(
        intervention_id="i1", customer_id=customer_id, ts=TS, kind="churn_risk", priority=2,
        trigger_event_id="e1", reasons=["risk"], suggested_action="call",
        context=InterventionContext(segment="vip", recent_touchpoints=["2026-12-06 07:00 call"]),
    )  # fmt: skip


def _fields(raw: bytes | str) -> dict[str, object]:
    decoded = msgspec.json.decode(raw)
    assert isinstance(decoded, dict)
    return decoded


def test_a_stored_offer_decision_holds_no_customer_id_and_reads_back_byte_for_byte() -> None:
    for customer_id in ODD_IDS:
        encoded = encode_decision(_offer(customer_id))
        kept = stored(encoded, customer_id)
        assert "customer_id" not in _fields(kept), customer_id
        assert b'"customer_id"' not in kept
        assert restored(kept.decode(), customer_id) == encoded.decode()
        assert decode_next_best_offer(restored(kept.decode(), customer_id)) == _offer(customer_id)


def test_a_stored_alert_holds_no_customer_id_and_reads_back_byte_for_byte() -> None:
    for customer_id in ODD_IDS:
        encoded = encode_decision(_alert(customer_id))
        kept = stored(encoded, customer_id)
        assert b'"customer_id"' not in kept
        assert decode_intervention(restored(kept.decode(), customer_id)) == _alert(customer_id)
        assert restored(kept.decode(), customer_id) == encoded.decode()


def test_a_context_stored_with_the_id_by_an_older_moments_reads_as_it_is() -> None:
    for decision in (_offer("c1"), _alert("c1")):
        old = encode_decision(decision).decode()
        assert restored(old, "c1") == old


def test_an_id_written_otherwise_than_moments_writes_it_is_taken_out_too() -> None:
    """Escaped where msgspec would not escape, or first: decoded and written again."""
    for raw in (b'{"decision_id":"d1","customer_id":"\\u00e9","ts":1}',
                b'{"customer_id":"\\u00e9","decision_id":"d1","ts":1}'):  # fmt: skip
        kept = stored(raw, "é")
        assert b"customer_id" not in kept
        assert _fields(restored(kept.decode(), "é")) == {"decision_id": "d1", "customer_id": "é",
                                                         "ts": 1}  # fmt: skip


def test_what_is_no_decision_is_kept_and_read_as_it_is() -> None:
    for raw in (b"{}", b"not json", b"[1]", b'{"x":1}', b'"c1"'):
        assert stored(raw, "c1") == raw
        assert restored(raw.decode(), "c1") == raw.decode()
    # a decision's id alone
    assert restored('{"decision_id":"d1"}', "c1") == '{"decision_id":"d1","customer_id":"c1"}'


@given(st.text(), st.text(min_size=1), st.booleans())
def test_any_customer_id_is_left_out_and_put_back(customer_id: str, decision_id: str,
                                                 alert: bool) -> None:  # fmt: skip
    decision = _alert(customer_id) if alert else _offer(customer_id, decision_id)
    encoded = encode_decision(decision)
    kept = stored(encoded, customer_id)
    assert "customer_id" not in _fields(kept)
    assert restored(kept.decode(), customer_id) == encoded.decode()
