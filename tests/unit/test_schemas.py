"""Wire formats against the contract in DESIGN.md section 4 (golden JSON, errors, catalogue)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import msgspec
import pytest

from feature_store.facts import touchpoint_fact, ts_ms
from feature_store.reference import CustomerState
from schemas import (
    EVENT_TYPES,
    Call,
    CatalogueError,
    Consent,
    ContactRules,
    Email,
    Intervention,
    InterventionContext,
    InvalidEvent,
    NextBestOffer,
    Offer,
    OfferCatalogue,
    OfferScore,
    Outcome,
    Purchase,
    SocialMention,
    Survey,
    WebClick,
    decode_erasure,
    decode_intervention,
    decode_next_best_offer,
    decode_outcome,
    decode_redrive,
    decode_touchpoint,
    decode_touchpoints,
    encode_decision,
    encode_outcome,
    encode_touchpoint,
    load_catalogue,
)
from schemas.contact_rules import DAILY_CAPS
from schemas.risk import decode_risk_example

REPO_ROOT = Path(__file__).resolve().parents[2]
CATALOGUE_PATH = REPO_ROOT / "deploy" / "catalogue" / "offers.toml"

TS = datetime(2026, 11, 23, 14, 5, 0, 123000, tzinfo=UTC)
COMMON = '"event_id": "evt-1", "customer_id": "cust-42", "ts": "2026-11-23T14:05:00.123Z"'
COMMON_KW = {"event_id": "evt-1", "customer_id": "cust-42", "ts": TS}


MANY_BOOKS = ", ".join(['"books"'] * 1001)


def doc(type_: str, extra: str = "") -> str:
    """A touchpoint JSON document as a producer writes it."""
    tail = f", {extra}" if extra else ""
    return f'{{"type": "{type_}", {COMMON}{tail}}}'


def reason_of(raw: str | bytes) -> str:
    with pytest.raises(InvalidEvent) as info:
        decode_touchpoint(raw)
    assert isinstance(info.value, ValueError)
    assert str(info.value) == info.value.reason
    return info.value.reason


# --------------------------------------------------------------------------------------
# Golden JSON: every touchpoint type, every field, exactly as a producer sends it.
# --------------------------------------------------------------------------------------

GOLDEN: list[tuple[str, object]] = [
    (
        """{"type": "web_click", "event_id": "evt-1", "customer_id": "cust-42",
            "ts": "2026-11-23T14:05:00.123Z", "page": "/products/tv-55",
            "category": "electronics", "product_id": "sku-55", "session_id": "s-9"}""",
        WebClick(
            **COMMON_KW,
            page="/products/tv-55",
            category="electronics",
            product_id="sku-55",
            session_id="s-9",
        ),
    ),
    (
        """{"type": "call", "event_id": "evt-1", "customer_id": "cust-42",
            "ts": "2026-11-23T14:05:00.123Z", "status": "ended", "direction": "inbound",
            "reason": "complaint", "duration_s": 312.5, "sentiment": -0.4,
            "queue": "retention", "agent_id": "agent-7"}""",
        Call(
            **COMMON_KW,
            status="ended",
            direction="inbound",
            reason="complaint",
            duration_s=312.5,
            sentiment=-0.4,
            queue="retention",
            agent_id="agent-7",
        ),
    ),
    (
        """{"type": "email", "event_id": "evt-1", "customer_id": "cust-42",
            "ts": "2026-11-23T14:05:00.123Z", "action": "opened", "campaign_id": "bf-2026"}""",
        Email(**COMMON_KW, action="opened", campaign_id="bf-2026"),
    ),
    (
        """{"type": "social_mention", "event_id": "evt-1", "customer_id": "cust-42",
            "ts": "2026-11-23T14:05:00.123Z", "platform": "x", "sentiment": -0.75,
            "reach": 12000}""",
        SocialMention(**COMMON_KW, platform="x", sentiment=-0.75, reach=12000),
    ),
    (
        """{"type": "purchase", "event_id": "evt-1", "customer_id": "cust-42",
            "ts": "2026-11-23T14:05:00.123Z", "order_id": "ord-1001", "amount": 129.99,
            "currency": "EUR", "categories": ["electronics", "home"]}""",
        Purchase(
            **COMMON_KW,
            order_id="ord-1001",
            amount=129.99,
            currency="EUR",
            categories=["electronics", "home"],
        ),
    ),
    (
        """{"type": "survey", "event_id": "evt-1", "customer_id": "cust-42",
            "ts": "2026-11-23T14:05:00.123Z", "score": 9, "scale": "nps"}""",
        Survey(**COMMON_KW, score=9.0, scale="nps"),
    ),
    (
        """{"type": "consent", "event_id": "evt-1", "customer_id": "cust-42",
            "ts": "2026-11-23T14:05:00.123Z", "channel": "sms", "granted": false}""",
        Consent(**COMMON_KW, channel="sms", granted=False),
    ),
]
GOLDEN_IDS = [type(expected).__name__ for _, expected in GOLDEN]


def test_event_types_are_the_seven_contract_types() -> None:
    assert set(EVENT_TYPES) == {
        "web_click",
        "call",
        "email",
        "social_mention",
        "purchase",
        "survey",
        "consent",
    }
    assert len(EVENT_TYPES) == 7
    assert sorted(type(e).__name__ for _, e in GOLDEN) == sorted(
        ["WebClick", "Call", "Email", "SocialMention", "Purchase", "Survey", "Consent"]
    )


@pytest.mark.parametrize(("raw", "expected"), GOLDEN, ids=GOLDEN_IDS)
def test_golden_json_decodes_to_expected_struct(raw: str, expected: object) -> None:
    event = decode_touchpoint(raw)
    assert type(event) is type(expected)
    assert event == expected
    assert event.kind == json.loads(raw)["type"]
    # the timestamp is aware and is exactly the instant on the wire
    assert event.ts.utcoffset() == timedelta(0)
    assert event.ts == TS
    # bytes and str input decode the same
    assert decode_touchpoint(raw.encode()) == expected


def test_golden_field_values_spot_checks() -> None:
    click = decode_touchpoint(GOLDEN[0][0])
    assert isinstance(click, WebClick)
    assert (click.page, click.category, click.product_id, click.session_id) == (
        "/products/tv-55",
        "electronics",
        "sku-55",
        "s-9",
    )
    call = decode_touchpoint(GOLDEN[1][0])
    assert isinstance(call, Call)
    assert call.duration_s == 312.5
    assert call.sentiment == -0.4
    purchase = decode_touchpoint(GOLDEN[4][0])
    assert isinstance(purchase, Purchase)
    assert purchase.amount == 129.99
    assert purchase.categories == ["electronics", "home"]
    survey = decode_touchpoint(GOLDEN[5][0])
    assert isinstance(survey, Survey)
    assert isinstance(survey.score, float)  # an int on the wire is a float score
    consent = decode_touchpoint(GOLDEN[6][0])
    assert isinstance(consent, Consent)
    assert consent.granted is False


def test_timestamp_with_non_utc_offset_keeps_the_instant() -> None:
    event = decode_touchpoint(
        '{"type": "web_click", "event_id": "e", "customer_id": "c",'
        ' "ts": "2026-11-23T16:05:00.123+02:00", "page": "/"}'
    )
    assert event.ts == TS
    assert event.ts.utcoffset() == timedelta(hours=2)


@pytest.mark.parametrize(("raw", "expected"), GOLDEN, ids=GOLDEN_IDS)
def test_unknown_extra_fields_are_ignored(raw: str, expected: object) -> None:
    obj = json.loads(raw)
    obj["x_tracking"] = {"nested": [1, 2, 3]}
    obj["schema_version"] = 7
    obj["page_title"] = None
    assert decode_touchpoint(json.dumps(obj)) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (doc("web_click", '"page": "/"'), WebClick(**COMMON_KW, page="/")),
        (
            doc("call", '"status": "started", "direction": "outbound", "reason": "sales"'),
            Call(**COMMON_KW, status="started", direction="outbound", reason="sales"),
        ),
        (doc("email", '"action": "sent"'), Email(**COMMON_KW, action="sent")),
        (
            doc("social_mention", '"platform": "reddit", "sentiment": 0.2'),
            SocialMention(**COMMON_KW, platform="reddit", sentiment=0.2),
        ),
        (
            doc("purchase", '"order_id": "o1", "amount": 0, "currency": "USD"'),
            Purchase(**COMMON_KW, order_id="o1", amount=0.0, currency="USD"),
        ),
    ],
    ids=["web_click", "call", "email", "social_mention", "purchase"],
)
def test_missing_optional_fields_take_defaults(raw: str, expected: object) -> None:
    event = decode_touchpoint(raw)
    assert event == expected


def test_a_currency_is_three_letters_in_any_case_and_categories_may_be_null() -> None:
    """The contract says "3 letters": ``eur`` was refused, and so were null categories,
    which the contract calls optional."""
    purchase = decode_touchpoint(
        doc("purchase", '"order_id": "o", "amount": 1, "currency": "eur", "categories": null')
    )
    assert isinstance(purchase, Purchase)
    assert (purchase.currency, purchase.categories) == ("EUR", [])
    assert b'"currency":"EUR"' in encode_touchpoint(purchase)


def test_missing_optional_defaults_explicitly() -> None:
    click = decode_touchpoint(doc("web_click", '"page": "/"'))
    assert isinstance(click, WebClick)
    assert click.category is None and click.product_id is None and click.session_id is None
    call = decode_touchpoint(
        doc("call", '"status": "started", "direction": "inbound", "reason": "other"')
    )
    assert isinstance(call, Call)
    assert (call.duration_s, call.sentiment, call.queue, call.agent_id) == (None,) * 4
    mention = decode_touchpoint(doc("social_mention", '"platform": "x", "sentiment": 0'))
    assert isinstance(mention, SocialMention)
    assert mention.reach is None
    purchase = decode_touchpoint(doc("purchase", '"order_id": "o", "amount": 1, "currency": "GBP"'))
    assert isinstance(purchase, Purchase)
    assert purchase.categories == []
    email = decode_touchpoint(doc("email", '"action": "bounced"'))
    assert isinstance(email, Email)
    assert email.campaign_id is None


@pytest.mark.parametrize(("raw", "expected"), GOLDEN, ids=GOLDEN_IDS)
def test_encode_decode_round_trip(raw: str, expected: object) -> None:
    event = decode_touchpoint(raw)
    wire = encode_touchpoint(event)
    assert wire.startswith(b'{"type":"')
    assert decode_touchpoint(wire) == event
    # the encoded document is itself a contract-shaped document
    obj = json.loads(wire)
    assert obj["type"] == json.loads(raw)["type"]
    assert obj["event_id"] == "evt-1"
    assert obj["customer_id"] == "cust-42"
    assert datetime.fromisoformat(obj["ts"]) == TS


def test_round_trip_keeps_offset() -> None:
    tz = timezone(timedelta(hours=-5))
    event = Email(
        event_id="e", customer_id="c", ts=datetime(2026, 1, 2, 3, 4, 5, tzinfo=tz), action="clicked"
    )
    back = decode_touchpoint(encode_touchpoint(event))
    assert back == event
    assert back.ts.utcoffset() == timedelta(hours=-5)


def test_decode_touchpoints_list() -> None:
    raw = "[" + ",".join(r for r, _ in GOLDEN) + "]"
    events = decode_touchpoints(raw)
    assert events == [e for _, e in GOLDEN]
    assert decode_touchpoints("[]") == []


def test_decode_touchpoints_is_all_or_nothing_and_names_the_element() -> None:
    raw = "[" + GOLDEN[0][0] + "," + doc("web_click", '"page": 5') + "]"
    with pytest.raises(InvalidEvent) as info:
        decode_touchpoints(raw)
    assert "$[1].page" in info.value.reason


def test_a_list_names_the_element_of_a_fault_an_events_own_check_finds() -> None:
    bad = doc("survey", '"score": 30, "scale": "nps"')
    with pytest.raises(InvalidEvent) as info:
        decode_touchpoints("[" + GOLDEN[0][0] + "," + bad + "]")
    assert info.value.reason == "score 30.0 is outside 0..10 for scale nps - at `$[1].score`"


# --------------------------------------------------------------------------------------
# Decode errors: the reason names the field path and the problem.
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "path", "words"),
    [
        (
            doc("social_mention", '"platform": "x", "sentiment": 0.1, "reach": "5"'),
            "$.reach",
            "str",
        ),
        (doc("social_mention", '"platform": "x", "sentiment": 0.1, "reach": -1'), "$.reach", ">="),
        (doc("web_click", '"page": 17'), "$.page", "str"),
        (doc("consent", '"channel": "all", "granted": "yes"'), "$.granted", "bool"),
        (doc("web_click_v2", '"page": "/"'), "$.type", "web_click_v2"),
        (
            '{"type": "web_click", "event_id": "e", "customer_id": "c",'
            ' "ts": "2026-11-23T14:05:00.123", "page": "/"}',
            "$.ts",
            "timezone",
        ),
        (
            '{"type": "web_click", "event_id": "e", "customer_id": "c",'
            ' "ts": "yesterday", "page": "/"}',
            "$.ts",
            "",
        ),
        (
            '{"type": "web_click", "event_id": "e", "customer_id": "c",'
            ' "ts": 1795446300123, "page": "/"}',
            "$.ts",
            "",
        ),
        (doc("social_mention", '"platform": "x", "sentiment": 1.01'), "$.sentiment", "<= 1.0"),
        (doc("social_mention", '"platform": "x", "sentiment": -1.5'), "$.sentiment", ">= -1.0"),
        (
            doc(
                "call",
                '"status": "ended", "direction": "inbound", "reason": "support", "sentiment": 2',
            ),
            "$.sentiment",
            "<= 1.0",
        ),
        (
            doc("purchase", '"order_id": "o", "amount": -0.01, "currency": "EUR"'),
            "$.amount",
            ">= 0",
        ),
        (doc("purchase", '"order_id": "o", "amount": 1, "currency": "EURO"'), "$.currency", ""),
        (doc("purchase", '"order_id": "o", "amount": 1, "currency": "E1R"'), "$.currency", ""),
        (doc("purchase", '"order_id": "", "amount": 1, "currency": "EUR"'), "$.order_id", ""),
        (doc("survey", '"score": 3, "scale": "stars"'), "$.scale", "stars"),
        (doc("email", '"action": "forwarded"'), "$.action", "forwarded"),
        (doc("consent", '"channel": "fax", "granted": true'), "$.channel", "fax"),
        (
            doc("call", '"status": "ringing", "direction": "inbound", "reason": "sales"'),
            "$.status",
            "ringing",
        ),
        (
            '{"type": "web_click", "event_id": "", "customer_id": "c",'
            ' "ts": "2026-11-23T14:05:00Z", "page": "/"}',
            "$.event_id",
            "length",
        ),
        (
            doc(
                "call",
                f'"status": "ended", "direction": "inbound", "reason": "cancel", '
                f'"agent_id": "{"a" * 257}"',
            ),
            "$.agent_id",
            "length <= 256",
        ),
        (
            doc(
                "call",
                f'"status": "ended", "direction": "inbound", "reason": "cancel", '
                f'"queue": "{"q" * 257}"',
            ),
            "$.queue",
            "length <= 256",
        ),
        (doc("web_click", f'"page": "/", "category": "{"c" * 257}"'), "$.category", "<= 256"),
        (
            doc(
                "purchase",
                f'"order_id": "o", "amount": 1, "currency": "EUR", '
                f'"categories": ["books", "{"c" * 257}"]',
            ),
            "$.categories[1]",
            "length <= 256",
        ),
        (
            doc(
                "purchase",
                f'"order_id": "o", "amount": 1, "currency": "EUR", "categories": [{MANY_BOOKS}]',
            ),
            "$.categories",
            "length <= 1000",
        ),
    ],
    ids=[
        "reach-wrong-type",
        "reach-negative",
        "page-wrong-type",
        "granted-wrong-type",
        "unknown-type-tag",
        "naive-timestamp",
        "unparseable-timestamp",
        "numeric-timestamp",
        "mention-sentiment-high",
        "mention-sentiment-low",
        "call-sentiment-high",
        "negative-amount",
        "currency-four-letters",
        "currency-digit",
        "empty-order-id",
        "unknown-survey-scale",
        "unknown-email-action",
        "unknown-consent-channel",
        "unknown-call-status",
        "empty-event-id",
        "call-agent-id-too-long",
        "call-queue-too-long",
        "click-category-too-long",
        "purchase-category-too-long",
        "purchase-too-many-categories",
    ],
)
def test_decode_error_reason_names_field_path(raw: str, path: str, words: str) -> None:
    reason = reason_of(raw)
    assert f"`{path}`" in reason, reason
    assert words in reason, reason


@pytest.mark.parametrize("field", ["event_id", "customer_id", "ts", "page"])
def test_missing_required_field_is_named(field: str) -> None:
    obj = {
        "type": "web_click",
        "event_id": "e",
        "customer_id": "c",
        "ts": "2026-11-23T14:05:00Z",
        "page": "/",
    }
    del obj[field]
    reason = reason_of(json.dumps(obj))
    assert "missing required field" in reason
    assert f"`{field}`" in reason


def test_missing_type_tag_is_named() -> None:
    reason = reason_of(f"{{{COMMON}, " + '"page": "/"}')
    assert "missing required field `type`" in reason


@pytest.mark.parametrize(
    ("score", "scale", "bounds"),
    [
        (0, "csat5", "1..5"),
        (0.99, "csat5", "1..5"),
        (6, "csat5", "1..5"),
        (-1, "nps", "0..10"),
        (10.5, "nps", "0..10"),
        (11, "nps", "0..10"),
    ],
)
def test_survey_score_out_of_range_is_rejected(score: float, scale: str, bounds: str) -> None:
    reason = reason_of(doc("survey", f'"score": {score}, "scale": "{scale}"'))
    assert "score" in reason
    assert bounds in reason
    assert scale in reason


@pytest.mark.parametrize(
    ("score", "scale"), [(1, "csat5"), (5, "csat5"), (3.5, "csat5"), (0, "nps"), (10, "nps")]
)
def test_survey_score_bounds_are_inclusive(score: float, scale: str) -> None:
    event = decode_touchpoint(doc("survey", f'"score": {score}, "scale": "{scale}"'))
    assert isinstance(event, Survey)
    assert event.score == score


@pytest.mark.parametrize(("score", "scale"), [(6, "csat5"), (11, "nps")])
def test_survey_score_out_of_range_reason_names_path(score: int, scale: str) -> None:
    reason = reason_of(doc("survey", f'"score": {score}, "scale": "{scale}"'))
    assert "`$.score`" in reason


@pytest.mark.parametrize(
    ("kind", "fields", "path"),
    [
        ("purchase", '"order_id": "o", "amount": 1e20, "currency": "EUR"', "$.amount"),
        ("purchase", '"order_id": "o", "amount": 1e400, "currency": "EUR"', "$.amount"),
        ("social_mention", '"platform": "x", "sentiment": -1, "reach": 10000000001', "$.reach"),
    ],
)
def test_figures_that_would_overflow_the_stores_counters_are_refused(
    kind: str, fields: str, path: str
) -> None:
    assert f"`{path}`" in reason_of(doc(kind, fields))


def test_the_largest_figures_allowed_still_decode() -> None:
    from schemas.touchpoints import MAX_AMOUNT, MAX_REACH

    big = decode_touchpoint(doc("purchase", f'"order_id": "o", "amount": {MAX_AMOUNT}, '
                                            '"currency": "JPY"'))  # fmt: skip
    assert isinstance(big, Purchase) and big.amount == MAX_AMOUNT
    loud = decode_touchpoint(doc("social_mention", f'"platform": "x", "sentiment": -1, '
                                                   f'"reach": {MAX_REACH}'))  # fmt: skip
    assert isinstance(loud, SocialMention) and loud.reach == MAX_REACH
    assert MAX_AMOUNT * 100 * 90_000 < 2**63  # ninety thousand such purchases still add up


def test_currency_with_trailing_newline_is_rejected() -> None:
    reason = reason_of(doc("purchase", '"order_id": "o", "amount": 1, "currency": "EUR\\n"'))
    assert "`$.currency`" in reason


@pytest.mark.parametrize(
    "raw",
    [
        b'{"type": "web_click",',
        b"not json",
        b"",
        b"\xff\xfe",
        (doc("web_click", '"page": "/"') + " trailing").encode(),
    ],
    ids=["truncated", "garbage", "empty", "bad-utf8", "trailing-data"],
)
def test_malformed_json_is_invalid_event(raw: bytes) -> None:
    reason = reason_of(raw)
    assert reason.startswith("malformed JSON")


@pytest.mark.parametrize("extra", ['"note": "Love it \\ud83d"', '"note": "\\\\\\ud83dx"'])
def test_half_a_surrogate_pair_is_said_so_not_called_a_truncated_input(extra: str) -> None:
    """JavaScript cuts a string within an emoji so (``"\\ud83d"``); msgspec refused it as
    input cut short, which sent the sender looking for a truncated body."""
    reason = reason_of(doc("web_click", f'"page": "/", {extra}'))
    assert reason.startswith("malformed JSON: JSON is malformed: half of a UTF-16"), reason
    assert "\\ud83d" in reason and "truncated" not in reason


def test_a_body_cut_after_an_escaped_backslash_is_still_called_truncated() -> None:
    assert "truncated" in reason_of(b'{"type": "web_click", "page": "\\\\ud83d')


@pytest.mark.parametrize("raw", ["[]", '"web_click"', "42", "null"])
def test_non_object_is_invalid_event(raw: str) -> None:
    reason = reason_of(raw)
    assert "Expected `object`" in reason


# --------------------------------------------------------------------------------------
# Outcomes
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["shown", "clicked", "accepted", "dismissed", "ignored"])
def test_outcome_decodes_every_kind(kind: str) -> None:
    raw = (
        '{"decision_id": "d-1", "customer_id": "cust-42", "offer_id": "free-shipping",'
        f' "outcome": "{kind}", "ts": "2026-11-23T14:05:00.123Z", "page": "/ignored-extra"}}'
    )
    outcome = decode_outcome(raw)
    assert outcome == Outcome(
        decision_id="d-1", customer_id="cust-42", offer_id="free-shipping", outcome=kind, ts=TS
    )
    assert decode_outcome(encode_outcome(outcome)) == outcome


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"outcome": "bought"}, "$.outcome"),
        ({"outcome": None}, "$.outcome"),
        ({"offer_id": ""}, "$.offer_id"),
        ({"ts": "2026-11-23T14:05:00"}, "$.ts"),
        ({"decision_id": 7}, "$.decision_id"),
    ],
)
def test_bad_outcome_is_rejected(change: dict[str, object], path: str) -> None:
    obj: dict[str, object] = {
        "decision_id": "d-1",
        "customer_id": "c",
        "offer_id": "o",
        "outcome": "shown",
        "ts": "2026-11-23T14:05:00Z",
    }
    obj.update(change)
    with pytest.raises(InvalidEvent) as info:
        decode_outcome(json.dumps(obj))
    assert f"`{path}`" in info.value.reason


def test_outcome_missing_field_and_malformed() -> None:
    with pytest.raises(InvalidEvent) as info:
        decode_outcome(
            '{"decision_id": "d", "customer_id": "c", "offer_id": "o",'
            ' "ts": "2026-11-23T14:05:00Z"}'
        )
    assert "missing required field `outcome`" in info.value.reason
    with pytest.raises(InvalidEvent) as info:
        decode_outcome(b"{")
    assert info.value.reason.startswith("malformed JSON")


# --------------------------------------------------------------------------------------
# Decisions
# --------------------------------------------------------------------------------------


def make_nbo() -> NextBestOffer:
    return NextBestOffer(
        decision_id="dec-1",
        customer_id="cust-42",
        ts=TS,
        channel="web",
        trigger_event_id="evt-1",
        offers=[
            OfferScore(offer_id="electronics-bundle", score=21.6, propensity=0.4),
            OfferScore(offer_id="free-shipping", score=8.0, propensity=0.15),
        ],
        control=False,
        model_version="rules-v1",
        reasons=["segment:new", "context:category:electronics"],
    )


def test_next_best_offer_json_has_contract_fields() -> None:
    obj = json.loads(encode_decision(make_nbo()))
    for key in (
        "decision_id",
        "customer_id",
        "ts",
        "channel",
        "trigger_event_id",
        "offers",
        "control",
        "model_version",
        "reasons",
    ):
        assert key in obj, key
    assert obj["decision_id"] == "dec-1"
    assert obj["customer_id"] == "cust-42"
    assert datetime.fromisoformat(obj["ts"]) == TS
    assert obj["channel"] == "web"
    assert obj["trigger_event_id"] == "evt-1"
    assert obj["offers"] == [
        {"offer_id": "electronics-bundle", "score": 21.6, "propensity": 0.4},
        {"offer_id": "free-shipping", "score": 8.0, "propensity": 0.15},
    ]
    assert obj["control"] is False
    assert obj["model_version"] == "rules-v1"
    assert obj["reasons"] == ["segment:new", "context:category:electronics"]


def test_next_best_offer_defaults_are_still_on_the_wire() -> None:
    nbo = NextBestOffer(
        decision_id="d",
        customer_id="c",
        ts=TS,
        channel="web",
        trigger_event_id=None,
        offers=[],
    )
    obj = json.loads(encode_decision(nbo))
    assert obj["control"] is False
    assert obj["model_version"] == "rules-v1"
    assert obj["reasons"] == []
    assert obj["offers"] == []
    assert obj["trigger_event_id"] is None


def test_next_best_offer_round_trip() -> None:
    nbo = make_nbo()
    assert decode_next_best_offer(encode_decision(nbo)) == nbo


def test_next_best_offer_reader_ignores_unknown_and_fills_extensions() -> None:
    raw = json.dumps(
        {
            "decision_id": "d",
            "customer_id": "c",
            "ts": "2026-11-23T14:05:00.123Z",
            "channel": "web",
            "trigger_event_id": "e",
            "offers": [{"offer_id": "o", "score": 1.0, "propensity": 1.0}],
            "control": True,
            "model_version": "m",
            "reasons": ["control_group"],
            "future_field": 1,
        }
    )
    nbo = decode_next_best_offer(raw)
    assert nbo.control is True
    assert nbo.offers == [OfferScore(offer_id="o", score=1.0, propensity=1.0)]
    assert nbo.trigger_ts is None
    assert nbo.fallback is False


def make_intervention() -> Intervention:
    return Intervention(
        intervention_id="int-1",
        customer_id="cust-42",
        ts=TS,
        kind="retention_call",
        priority=1,
        trigger_event_id="evt-1",
        reasons=["call_reason:cancel", "segment:at_risk"],
        suggested_action="Offer the save-desk discount.",
        queue="retention",
        agent_id="agent-7",
        context=InterventionContext(
            segment="at_risk", risk=0.82, value=950.0, recent_touchpoints=["call", "survey"]
        ),
    )


def test_intervention_json_has_contract_fields() -> None:
    obj = json.loads(encode_decision(make_intervention()))
    for key in (
        "intervention_id",
        "customer_id",
        "ts",
        "kind",
        "priority",
        "queue",
        "agent_id",
        "trigger_event_id",
        "reasons",
        "suggested_action",
        "context",
    ):
        assert key in obj, key
    assert obj["intervention_id"] == "int-1"
    assert obj["kind"] == "retention_call"
    assert obj["priority"] == 1
    assert obj["queue"] == "retention"
    assert obj["agent_id"] == "agent-7"
    assert obj["reasons"] == ["call_reason:cancel", "segment:at_risk"]
    assert obj["suggested_action"] == "Offer the save-desk discount."
    assert obj["context"] == {
        "segment": "at_risk",
        "risk": 0.82,
        "value": 950.0,
        "recent_touchpoints": ["call", "survey"],
        "timezone": None,  # an extension: the customer's own, where known
        "currency": None,  # an extension: what value counts in, when configured
    }
    assert datetime.fromisoformat(obj["ts"]) == TS


def test_intervention_round_trip_and_priority_range() -> None:
    intervention = make_intervention()
    assert decode_intervention(encode_decision(intervention)) == intervention
    obj = json.loads(encode_decision(intervention))
    obj["priority"] = 4
    with pytest.raises(msgspec.ValidationError, match=r"\$\.priority"):
        decode_intervention(json.dumps(obj))


def test_intervention_defaults() -> None:
    intervention = Intervention(
        intervention_id="i",
        customer_id="c",
        ts=TS,
        kind="vip_attention",
        priority=3,
        trigger_event_id=None,
        reasons=[],
        suggested_action="Say hello.",
    )
    obj = json.loads(encode_decision(intervention))
    assert obj["queue"] is None
    assert obj["agent_id"] is None
    assert obj["context"] == {
        "segment": None,
        "risk": None,
        "value": None,
        "recent_touchpoints": [],
        "timezone": None,
        "currency": None,
    }


# --------------------------------------------------------------------------------------
# Offer catalogue
# --------------------------------------------------------------------------------------


def test_repo_catalogue_loads() -> None:
    catalogue = load_catalogue(CATALOGUE_PATH)
    ids = [o.offer_id for o in catalogue.offers]
    assert catalogue.version
    assert len(ids) == len(set(ids)) >= 1
    assert set(catalogue.default_offers) <= set(ids)
    for offer_id in ("free-shipping", "electronics-bundle", "loyalty-upgrade"):
        assert catalogue.by_id(offer_id) is not None
    assert catalogue.by_id("no-such-offer") is None
    loyalty = catalogue.by_id("loyalty-upgrade")
    assert loyalty is not None
    assert loyalty.segments == ["model"]
    assert loyalty.min_purchases == 3
    for offer in catalogue.offers:
        assert offer.channels
        assert set(offer.channels) <= {"web", "email", "sms", "call"}
        assert offer.margin is None or 0 <= offer.margin <= 1


OFFER_A = '[[offers]]\noffer_id = "a"\ntitle = "A"\nchannels = ["web"]\n'
QUIET = "[contact_policy]\nquiet_hours = "


def write(tmp_path: Path, text: str, name: str = "offers.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_minimal_toml_and_json_catalogues_load(tmp_path: Path) -> None:
    toml = load_catalogue(write(tmp_path, 'version = "v1"\n' + OFFER_A))
    assert toml.version == "v1"
    assert [o.offer_id for o in toml.offers] == ["a"]
    offer = toml.offers[0]
    assert (offer.value, offer.margin, offer.priority, offer.min_purchases) == (0.0, None, 1.0, 0)
    assert offer.segments == [] and offer.categories == []
    as_json = load_catalogue(
        write(
            tmp_path,
            '{"version": "v1", "offers": [{"offer_id": "a", "title": "A", "channels": ["web"]}]}',
            "offers.json",
        )
    )
    assert as_json == toml


def test_contact_caps_load_from_the_catalogue(tmp_path: Path) -> None:
    text = 'version = "v"\n[contact_policy]\ndaily_caps = { email = 2, sms = 0 }\n'
    text += "weekly_caps = { email = 4 }\n" + OFFER_A
    rules = load_catalogue(write(tmp_path, text)).contact_policy
    assert [rules.daily_cap(c) for c in ("web", "email", "sms", "call")] == [20, 2, 0, 2]
    assert [rules.weekly_cap(c) for c in ("web", "email", "sms", "call")] == [60, 4, 2, 5]
    plain = load_catalogue(write(tmp_path, 'version = "v"\n' + OFFER_A)).contact_policy
    assert plain == ContactRules()
    assert not any(plain.quiet_at(c, datetime(2026, 12, 1, 3, tzinfo=UTC)) for c in DAILY_CAPS)


def test_quiet_hours_are_local_cross_midnight_and_follow_summer_time(tmp_path: Path) -> None:
    text = 'version = "v"\n[contact_policy]\ntimezone = "Europe/Berlin"\n'
    text += 'quiet_hours = { call = "20:00-09:00", sms = "12:00-13:30" }\n' + OFFER_A
    rules = load_catalogue(write(tmp_path, text)).contact_policy

    def quiet(channel: str, month: int, hour: int, minute: int = 0) -> bool:
        return rules.quiet_at(channel, datetime(2026, month, 10, hour, minute, tzinfo=UTC))

    # winter: Berlin is UTC+1; summer: UTC+2
    assert [quiet("call", 1, h) for h in (7, 8, 18, 19, 23)] == [True, False, False, True, True]
    assert [quiet("call", 7, h) for h in (6, 7, 17, 18)] == [True, False, False, True]
    assert [quiet("sms", 1, 10, 59), quiet("sms", 1, 11), quiet("sms", 1, 12, 29)] == [
        False, True, True
    ]  # fmt: skip
    assert quiet("sms", 1, 12, 30) is False  # the end is not included
    assert not any(quiet("web", 1, h) for h in range(24))  # no quiet hours


def test_offer_dates_load_with_their_offsets(tmp_path: Path) -> None:
    dates = "available_from = 2026-12-01T00:00:00Z\navailable_until = 2027-01-06T00:00:00+01:00\n"
    offer = load_catalogue(write(tmp_path, 'version = "v"\n' + OFFER_A + dates)).offers[0]
    assert offer.available_from == datetime(2026, 12, 1, tzinfo=UTC)
    assert offer.available_until == datetime(2027, 1, 5, 23, tzinfo=UTC)
    assert (
        load_catalogue(write(tmp_path, 'version = "v"\n' + OFFER_A))
        .offers[0]
        .available_at(datetime(1970, 1, 1, tzinfo=UTC))
    )  # no dates: always


def test_fallback_defaults_follow_channel_dates_and_order() -> None:
    moment = datetime(2026, 12, 10, tzinfo=UTC)
    ended = Offer(offer_id="ended", title="E", channels=["web"],
                  available_until=moment - timedelta(seconds=1))  # fmt: skip
    later = Offer(offer_id="later", title="L", channels=["web"],
                  available_from=moment + timedelta(seconds=1))  # fmt: skip
    web = Offer(offer_id="web", title="W", channels=["web"])
    both = Offer(offer_id="both", title="B", channels=["web", "email"])
    catalogue = OfferCatalogue(version="v", offers=[web, ended, later, both],
                               default_offers=["both", "ended", "later", "web"])  # fmt: skip
    assert catalogue.defaults_for("web", moment, 3) == [both, web]
    assert catalogue.defaults_for("web", moment, 1) == [both]
    assert catalogue.defaults_for("email", moment, 3) == [both]
    assert catalogue.defaults_for("sms", moment, 3) == []
    assert catalogue.defaults_for("web", moment + timedelta(seconds=1), 3) == [both, later, web]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('version = "v"\n' + OFFER_A + OFFER_A, ["duplicate offer_id", "'a'"]),
        ('version = "v"\ndefault_offers = ["a", "zzz"]\n' + OFFER_A, ["default_offers", "zzz"]),
        (
            'version = "v"\n[[offers]]\noffer_id = "a"\ntitle = "A"\nchannels = ["fax"]\n',
            ["fax", "$.offers[0].channels[0]"],
        ),
        (
            'version = "v"\n'
            + OFFER_A
            + '[[offers]]\noffer_id = "b"\ntitle = "B"\nchannels = []\n',
            ["$.offers[1].channels"],
        ),
        ('version = "v"\noffers = []\n', ["$.offers"]),
        (OFFER_A, ["`version`"]),
        (
            'version = "v"\n[[offers]]\noffer_id = "Bad Id"\ntitle = "A"\nchannels = ["web"]\n',
            ["$.offers[0].offer_id"],
        ),
        ('version = "v"\n' + OFFER_A + "margin = 1.5\n", ["$.offers[0].margin"]),
        ('version = "v"\n' + OFFER_A + 'segments = ["vip"]\n', ["vip", "$.offers[0].segments"]),
        (
            'version = "v"\n' + OFFER_A + "available_from = 2026-12-01T00:00:00\n",
            ["timezone", "$.offers[0].available_from"],
        ),
        (
            'version = "v"\n' + OFFER_A + "available_from = 2026-12-02T00:00:00Z\n"
            "available_until = 2026-12-02T00:00:00Z\n",
            ["'a' ends", "before it starts", "$.offers[0]"],
        ),
        ("version = \n", []),
        (
            'version = "v"\n' + OFFER_A + "[contact_policy]\ndaily_caps = { web = -1 }\n",
            ["$.contact_policy.daily_caps"],
        ),
        (
            'version = "v"\n' + OFFER_A + "[contact_policy]\nweekly_caps = { fax = 1 }\n",
            ["weekly_caps", "fax", "$.contact_policy"],
        ),
        (
            'version = "v"\n' + OFFER_A + "[contact_policy]\ndaily_caps = { email = 4 }\n",
            ["daily cap of email (4)", "weekly cap (3)"],
        ),
        (
            'version = "v"\n' + OFFER_A + '[contact_policy]\nquiet_hours = { sms = "9pm-8am" }\n',
            ["quiet_hours of sms", "'9pm-8am'", "HH:MM-HH:MM"],
        ),
        (
            'version = "v"\n'
            + OFFER_A
            + '[contact_policy]\nquiet_hours = { sms = "08:00-08:00" }\n',
            ["starts where it ends"],
        ),
        (
            'version = "v"\n' + OFFER_A + '[contact_policy]\ntimezone = "Mars/Olympus"\n',
            ["unknown timezone 'Mars/Olympus'"],
        ),
        (
            'version = "v"\n'
            + OFFER_A
            + '[contact_policy]\nquiet_hours = { fax = "20:00-08:00" }\n',
            ["quiet_hours names unknown channels ['fax']"],
        ),
    ],
    ids=[
        "duplicate-id",
        "unknown-default",
        "bad-channel",
        "no-channels",
        "no-offers",
        "no-version",
        "bad-offer-id",
        "margin-above-one",
        "unknown-segment",
        "available-without-offset",
        "ends-before-it-starts",
        "not-toml",
        "negative-cap",
        "cap-on-unknown-channel",
        "daily-cap-above-weekly",
        "quiet-hours-not-hh-mm",
        "quiet-hours-empty",
        "unknown-timezone",
        "quiet-hours-unknown-channel",
    ],
)
def test_invalid_catalogue_raises_catalogue_error(
    tmp_path: Path, text: str, words: list[str]
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(CatalogueError) as info:
        load_catalogue(path)
    message = str(info.value)
    assert "invalid offer catalogue" in message
    assert str(path) in message
    for word in words:
        assert word in message, message


def test_missing_catalogue_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "offers.toml"
    with pytest.raises(CatalogueError) as info:
        load_catalogue(path)
    assert str(path) in str(info.value)
    assert "cannot read" in str(info.value)
    assert isinstance(info.value, ValueError)


DEEP = b"[" * 3000 + b"]" * 3000


@pytest.mark.parametrize(
    "decode",
    [decode_touchpoint, decode_outcome, decode_erasure, decode_redrive],
    ids=lambda f: f.__name__,
)
def test_json_nested_too_deeply_is_invalid_input_for_every_decoder_of_input(
    decode: Callable[[bytes], object],
) -> None:
    """Not a RecursionError, which no caller takes for bad input (a batch failed whole,
    the learner stopped at the record)."""
    raw = b'{"type":"web_click","event_id":"e","extra":' + DEEP + b"}"
    with pytest.raises(InvalidEvent, match="nested too deeply"):
        decode(raw)
    with pytest.raises(InvalidEvent, match="nested too deeply"):
        decode_touchpoints(b"[" + raw + b"]")


@pytest.mark.parametrize(
    "decode",
    [decode_next_best_offer, decode_intervention, decode_risk_example],
    ids=lambda f: f.__name__,
)
def test_json_nested_too_deeply_is_a_decode_error_for_moments_own_records(
    decode: Callable[[bytes], object],
) -> None:
    with pytest.raises(msgspec.DecodeError, match="nested too deeply"):
        decode(b'{"decision_id":"d","extra":' + DEEP + b"}")


@pytest.mark.parametrize("unfit", [" ", "\t", "a\x00b", "c\x1b[31m", "\u202eevil", "a\r\nb",
                                   "x\x85",
                                   "a\u2028b", "\u200fRTL", ".", ".."])  # fmt: skip
def test_a_customer_id_of_only_whitespace_or_with_a_control_character_is_refused(
    unfit: str,
) -> None:
    """One such id pooled unrelated customers (a producer's empty template) or put
    control characters on the agents' screens: touchpoints and outcomes refuse it, with
    the field named, as Kafka's letters and the API's 422s give it."""
    click = {"type": "web_click", "event_id": "e1", "customer_id": unfit,
             "ts": "2026-12-01T00:00:00Z", "page": "/"}  # fmt: skip
    with pytest.raises(InvalidEvent, match=r"customer_id .* at `\$\.customer_id`"):
        decode_touchpoint(json.dumps(click).encode())
    outcome = {"decision_id": "d1", "customer_id": unfit, "offer_id": "o1",
               "outcome": "clicked", "ts": "2026-12-01T00:00:00Z"}  # fmt: skip
    with pytest.raises(InvalidEvent, match="customer_id"):
        decode_outcome(json.dumps(outcome).encode())


@pytest.mark.parametrize(
    "fit", ["c-42", "Jos\u00e9", "Jose\u0301", "x🎉y", "a b", "a/b%c", "L" * 256, "...", ".a"]
)
def test_customer_ids_are_taken_exactly_as_sent(fit: str) -> None:
    click = {"type": "web_click", "event_id": "e1", "customer_id": fit,
             "ts": "2026-12-01T00:00:00Z", "page": "/"}  # fmt: skip
    assert decode_touchpoint(json.dumps(click).encode()).customer_id == fit


@pytest.mark.parametrize("written", ["1200", "1200.0", "1.2e3"])
def test_a_reach_written_as_a_whole_float_is_taken_as_an_int(written: str) -> None:
    """JSON has one number type: 1200.0 was refused (dead-lettered, or a 422), though the
    schema the API publishes took it."""
    raw = ('{"type": "social_mention", "event_id": "e1", "customer_id": "c1", '
           '"ts": "2026-12-01T00:00:00Z", "platform": "x", "sentiment": -0.5, '
           f'"reach": {written}}}')  # fmt: skip
    mention = decode_touchpoint(raw.encode())
    assert isinstance(mention, SocialMention)
    assert mention.reach == 1200 and type(mention.reach) is int
    with pytest.raises(InvalidEvent, match=r"whole number - at `\$\.reach`"):
        decode_touchpoint(raw.replace(written, "12.5").encode())


@pytest.mark.parametrize("ts", ["9999-12-31T23:00:00-05:00", "0001-01-01T00:30:00+01:00"])
def test_a_time_at_an_end_of_the_calendar_is_refused_by_moments_own_records(ts: str) -> None:
    """Counting such a time in a customer's day, a budget's or UTC could take it past what
    Python's dates hold: one such decision stopped `moments rebuild` part-way."""
    decision = {"decision_id": "d", "customer_id": "c", "ts": ts, "channel": "web",
                "trigger_event_id": None, "offers": []}  # fmt: skip
    with pytest.raises(msgspec.DecodeError, match="at an end of the calendar"):
        decode_next_best_offer(json.dumps(decision))
    alert = {"intervention_id": "i", "customer_id": "c", "ts": ts, "kind": "churn_risk",
             "priority": 1, "trigger_event_id": None, "reasons": [],
             "suggested_action": "x"}  # fmt: skip
    with pytest.raises(msgspec.DecodeError, match="at an end of the calendar"):
        decode_intervention(json.dumps(alert))
    # the years inside them are taken as they are
    inside = ts.replace("9999-", "9998-").replace("0001-", "0002-")
    assert decode_next_best_offer(json.dumps({**decision, "ts": inside})).ts.year in (2, 9998)


def test_events_in_the_calendars_last_year_are_refused_and_in_its_first_taken() -> None:
    """Year 1 is the "zero" time of Go and .NET, which a producer that left the time unset
    sends: such a consent withdrawal is taken (as expired), and its opt-out kept."""
    last = {"type": "web_click", "event_id": "e", "customer_id": "c", "page": "/",
            "ts": "9999-12-31T23:00:00-05:00"}  # fmt: skip
    with pytest.raises(InvalidEvent, match=r"at an end of the calendar - at `\$\.ts`"):
        decode_touchpoint(json.dumps(last))
    outcome = {"decision_id": "d", "customer_id": "c", "offer_id": "o", "outcome": "clicked"}
    with pytest.raises(InvalidEvent, match="at an end of the calendar"):
        decode_outcome(json.dumps({**outcome, "ts": last["ts"]}))
    for zero in ("0001-01-01T00:00:00Z", "0001-01-01T00:00:00+01:00"):
        withdrawal = decode_touchpoint(json.dumps({
            "type": "consent", "event_id": "w", "customer_id": "c", "ts": zero,
            "channel": "email", "granted": False,
        }))  # fmt: skip
        state = CustomerState()
        state.apply(touchpoint_fact(withdrawal), ts_ms(datetime.now(UTC)))
        assert state.optouts["consent:email"] == "0"
        assert decode_outcome(json.dumps({**outcome, "ts": zero})).ts.year == 1
