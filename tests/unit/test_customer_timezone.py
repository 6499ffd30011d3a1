"""The customer's own timezone: told by touchpoints, kept by the newest, used for quiet
hours (the catalogue's timezone stays the default)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import msgspec
import pytest

from agents.contact_policy import ContactPolicy
from agents.control_group import ControlGroup
from feature_store import CustomerFeatures
from feature_store.facts import touchpoint_updates
from schemas import (
    ContactRules,
    Offer,
    WebClick,
    decode_touchpoint,
    decode_touchpoints,
    encode_touchpoint,
)
from tests.unit.factories import apply_all, click, features_of, purchase

CLICK = (
    b'{"type": "web_click", "event_id": "e1", "customer_id": "c1",'
    b' "ts": "2026-11-23T14:05:00Z", "page": "/offers"%s}'
)


def with_timezone(event: WebClick, timezone: str) -> WebClick:
    return msgspec.structs.replace(event, timezone=timezone)


def test_a_touchpoint_may_tell_the_customers_timezone() -> None:
    event = decode_touchpoint(CLICK % b', "timezone": "Europe/Paris"')
    assert event.timezone == "Europe/Paris"
    assert decode_touchpoint(CLICK % b"").timezone is None  # optional
    assert decode_touchpoint(encode_touchpoint(event)) == event


@pytest.mark.parametrize(
    "value",
    ["Mars/Olympus", "localtime", "europe/paris", "Europe/Paris/", "../etc/passwd", "", "UTC+1",
     "A" * 65, 60, -5.5, True, ["Europe/Paris"], {"name": "Europe/Paris"}],
)  # fmt: skip
def test_a_timezone_that_is_not_an_iana_name_is_ignored_not_refused(value: object) -> None:
    """The contract ignores fields it does not know: a producer's own ``timezone`` (an
    offset, minutes east) must not cost its events, which it did (422, dead letters)."""
    raw = CLICK % f', "timezone": {msgspec.json.encode(value).decode()}'.encode()
    event = decode_touchpoint(raw)
    assert event.timezone is None and event.event_id == "e1"
    assert decode_touchpoints(b"[" + raw + b"]")[0].timezone is None
    assert encode_touchpoint(event).count(b'"timezone":null') == 1


def test_every_kind_of_touchpoint_reads_it() -> None:
    survey = (
        b'{"type": "survey", "event_id": "e1", "customer_id": "c1", "ts": "2026-11-23T14:05:00Z",'
        b' "score": 9, "scale": "nps", "timezone": "%s"}'
    )
    assert decode_touchpoint(survey % b"Nowhere").timezone is None
    assert decode_touchpoint(survey % b"Asia/Kolkata").timezone == "Asia/Kolkata"


def test_the_newest_touchpoint_tells_the_timezone_in_any_order() -> None:
    events = [
        with_timezone(click(1), "Europe/Paris"),
        click(2),  # says nothing: keeps what is known
        with_timezone(click(3), "America/New_York"),
        purchase(10.0, 4),
    ]
    assert ("latest", "timezone", "Europe/Paris") in touchpoint_updates(events[0])
    assert not [u for u in touchpoint_updates(events[1]) if u[1] == "timezone"]
    for order in itertools.permutations(events):
        assert features_of(apply_all(order)).timezone == "America/New_York"
    assert features_of(apply_all([click(1)])).timezone is None


# Quiet hours 20:00-09:00 for calls; 2026-07-01 12:00 UTC is 13:00 in London (the
# catalogue's timezone) and 21:00 in Tokyo.
RULES = ContactRules(quiet_hours={"call": "20:00-09:00"}, timezone="Europe/London")
NOON = datetime(2026, 7, 1, 12, tzinfo=UTC)
OFFER = Offer(offer_id="callback", title="Call-back", channels=["call"])
POLICY = ContactPolicy(ControlGroup(salt="test", percent=0.0))


def screen(timezone: str | None, now: datetime = NOON) -> list[str]:
    features = CustomerFeatures(events=3, timezone=timezone)
    return POLICY.screen("c1", "call", features, [OFFER], now, rules=RULES).reasons


def test_quiet_hours_are_the_customers_own_where_known() -> None:
    assert screen("Asia/Tokyo") == ["suppressed:quiet_hours:call"]  # 21:00 there
    assert screen(None) == []  # 13:00 in the catalogue's timezone
    assert screen("America/New_York") == ["suppressed:quiet_hours:call"]  # 08:00 there
    assert screen("Not/A_Zone") == []  # not a zone (never stored so): the catalogue's


def test_the_customers_summer_time_counts() -> None:
    winter, summer = (
        datetime(2026, 1, 15, 13, 30, tzinfo=UTC),
        datetime(2026, 7, 15, 13, 30, tzinfo=UTC),
    )
    assert screen("America/New_York", winter) == ["suppressed:quiet_hours:call"]  # 08:30 EST
    assert screen("America/New_York", summer) == []  # 09:30 EDT
