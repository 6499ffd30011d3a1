"""Alerts agree with Moments' own contact policy (review "alerts", faults 2 to 4).

A retention call suggests the service-recovery voucher only when the contact policy
would make the customer that offer on a call now; a call back asked for in the call
channel's quiet hours for the customer says to wait until they end; and the save desk
is raised by the account's cancellation page, in any case, not by any page with
"cancel" in it.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from agents.alert_actions import ACTIONS, HELD_OUT_ACTIONS, QUIET_CALLS, RETENTION_OFFER
from agents.alert_terms import calls_quiet_until, retention_offer_refused
from agents.cancellation_pages import cancellation_page
from agents.catalogue_holder import CatalogueHolder
from agents.contact_policy import ContactPolicy
from agents.control_group import ControlGroup
from agents.interventions import interventions_for
from agents.offer_budget import BudgetLedger
from agents.offer_rules import RuleBasedOfferPolicy
from feature_store import CustomerFeatures
from feature_store.features import ContactHistory, RecentTouchpoint
from schemas import Call, ContactRules, Offer, OfferCatalogue, WebClick
from tests.unit.test_touchpoint_handler import NOW, RecordingStore, handler, records

AT = datetime(2026, 12, 7, 16, 30, tzinfo=UTC)  # 03:30 the next day in Sydney
YESTERDAY = [RecentTouchpoint(AT - timedelta(days=1), "web_click", "o")]
ORDINARY = CustomerFeatures(events=8, purchases=1, spend=50.0, value=50.0, segment="growth",
                            recent=YESTERDAY)  # fmt: skip
AT_RISK = CustomerFeatures(
    events=9, purchases=4, spend=900.0, value=900.0, segment="at_risk", recent=ORDINARY.recent
)
MODEL = CustomerFeatures(events=12, purchases=3, spend=450.0, value=120.0, segment="model",
                         recent=ORDINARY.recent)  # fmt: skip
VOUCHER = Offer(offer_id=RETENTION_OFFER, title="A voucher", channels=["web", "email", "call"],
                segments=["at_risk", "dangling"], value=20.0, daily_limit=5)  # fmt: skip
CATALOGUE = OfferCatalogue(version="t", offers=[VOUCHER])
QUIET = ContactRules(quiet_hours={"call": "20:00-09:00"})
POLICY = ContactPolicy(ControlGroup("salt", 0.0))


def click(page: str, ts: datetime = AT) -> WebClick:
    return WebClick(event_id="w1", customer_id="c1", ts=ts, page=page)


def inbound_call(ts: datetime = AT) -> Call:
    return Call(event_id="k1", customer_id="c1", ts=ts, status="started", direction="inbound",
                reason="support")  # fmt: skip


def retention(alerts: list) -> str:  # type: ignore[type-arg]
    return next(a.suggested_action for a in alerts if a.kind == "retention_call")


# 4. the cancellation page --------------------------------------------------------------


@pytest.mark.parametrize(
    "page", ["/cancel", "/account/cancel", "/account/cancel/confirm", "/Account/Cancel",
             "/ACCOUNT/CANCEL?step=2", "/account/subscription/cancellation",
             # a site's language first, a full URL, other word ends, escapes
             "/en-gb/cancel-subscription", "https://shop.example/cancel", "/cancel.html",
             "/account/cancel_subscription", "/billing/cancel", "/%61ccount/%63ancel"],
)  # fmt: skip
def test_the_account_cancellation_page_in_any_case_raises_the_save_desk(page: str) -> None:
    alerts = interventions_for(click(page), ORDINARY, AT)
    assert [(a.kind, a.reasons) for a in alerts] == [("save_desk", ["visited:cancellation_page"])]


@pytest.mark.parametrize(
    "page", ["/orders/123/cancel", "/help/how-to-cancel-an-order", "/flights/cancelled",
             "/products/cancel-proof-umbrella"],
)  # fmt: skip
def test_cancelling_an_order_or_reading_about_it_raises_no_save_desk(page: str) -> None:
    assert not cancellation_page(page)
    assert interventions_for(click(page), ORDINARY, AT) == []


# 2. the retention call's offer ---------------------------------------------------------


def test_a_retention_call_the_voucher_is_refused_for_makes_no_offer_and_says_why() -> None:
    refused = retention_offer_refused(POLICY, CATALOGUE, "c1", MODEL, AT, None, inbound=False)
    assert refused == f"not_eligible:{RETENTION_OFFER}"  # at_risk and dangling only
    alerts = interventions_for(click("/home"), MODEL, AT, risk=0.81, risk_crossed=True,
                               offer_refused=refused)  # fmt: skip
    action = retention(alerts)
    assert "make no offer" in action and "not for customers like them" in action
    assert "if it fits" not in action
    # allowed: as before
    allowed = interventions_for(click("/home"), MODEL, AT, risk=0.81, risk_crossed=True)
    assert retention(allowed) == ACTIONS["retention_call"]


def test_the_offers_control_group_keeps_its_own_wording() -> None:
    alerts = interventions_for(inbound_call(), AT_RISK, AT, offers_held_out=True,
                               offer_refused="control_group")  # fmt: skip
    assert retention(alerts) == HELD_OUT_ACTIONS["retention_call"]


def refused_for(
    features: CustomerFeatures = AT_RISK,
    catalogue: OfferCatalogue = CATALOGUE,
    budgets: BudgetLedger | None = None,
    inbound: bool = True,
) -> str | None:
    return retention_offer_refused(POLICY, catalogue, "c1", features, AT, budgets, inbound)


def test_the_voucher_is_screened_as_a_call_offer_is() -> None:
    spent = BudgetLedger(AT.date(), {RETENTION_OFFER: 5}, {RETENTION_OFFER: 5})
    assert refused_for() is None
    assert refused_for(budgets=spent) == f"suppressed:budget:{RETENTION_OFFER}"
    assert spent.spent == {RETENTION_OFFER: 5}  # nothing spent by asking
    left = BudgetLedger(AT.date(), {RETENTION_OFFER: 5}, {RETENTION_OFFER: 4})
    assert refused_for(budgets=left) is None and left.spent == {RETENTION_OFFER: 4}
    gone = OfferCatalogue(version="u", offers=[Offer(offer_id="tips", title="T", channels=["web"])])
    assert refused_for(catalogue=gone) == f"not_in_catalogue:{RETENTION_OFFER}"
    ended = OfferCatalogue(version="v", offers=[replace_offer(available_until=AT)])
    assert refused_for(catalogue=ended) == f"not_available:{RETENTION_OFFER}"
    lately = ContactHistory(last_shown={RETENTION_OFFER: AT - timedelta(hours=1)})
    cooling = OfferCatalogue(version="w", offers=[replace_offer(cooldown_s=86400)])
    assert refused_for(with_contact(lately), cooling) == f"suppressed:cooldown:{RETENTION_OFFER}"
    called = with_contact(ContactHistory(shown_today={"call": 2}))
    assert refused_for(called) == "suppressed:fatigue:call:day"


def test_quiet_hours_for_calls_do_not_refuse_the_voucher_a_call_back_offers_later() -> None:
    quiet = OfferCatalogue(version="q", offers=[VOUCHER], contact_policy=QUIET)
    sydney = with_contact(ContactHistory(), timezone="Australia/Sydney")
    assert refused_for(sydney, quiet, inbound=False) is None


def replace_offer(**changes: object) -> Offer:
    fields = {f: getattr(VOUCHER, f) for f in Offer.__struct_fields__}
    fields.update(changes)
    return Offer(**fields)  # type: ignore[arg-type]


def with_contact(contact: ContactHistory, **changes: object) -> CustomerFeatures:
    fields = {f: getattr(AT_RISK, f) for f in CustomerFeatures.__struct_fields__}
    fields.update(contact=contact, **changes)
    return CustomerFeatures(**fields)  # type: ignore[arg-type]


# 3. quiet hours for call backs ---------------------------------------------------------

SYDNEY = CustomerFeatures(events=8, purchases=1, spend=50.0, value=50.0, segment="growth",
                          recent=ORDINARY.recent, timezone="Australia/Sydney")  # fmt: skip


def test_a_call_back_in_their_quiet_hours_for_calls_waits_until_they_end() -> None:
    until = calls_quiet_until(OfferCatalogue(version="q", offers=[VOUCHER], contact_policy=QUIET),
                              SYDNEY, AT)  # fmt: skip
    assert until == "09:00"
    alerts = interventions_for(click("/account/cancel"), SYDNEY, AT, risk=0.8, risk_crossed=True,
                               calls_quiet_until=until)  # fmt: skip
    by_kind = {a.kind: a for a in alerts}
    assert set(by_kind) == {"save_desk", "retention_call"}  # kept, on the screens
    for alert in alerts:
        assert alert.reasons[-1] == QUIET_CALLS
        assert alert.suggested_action.startswith("Call back after 09:00 their time: ")
    save_desk = by_kind["save_desk"].suggested_action
    assert save_desk.endswith(": route to the save desk: " + ACTIONS["save_desk"].split(": ")[1])


def test_a_customer_on_the_line_or_out_of_quiet_hours_is_not_told_to_wait() -> None:
    on_the_line = interventions_for(inbound_call(), replace_tz(AT_RISK), AT,
                                    calls_quiet_until="09:00")  # fmt: skip
    assert [QUIET_CALLS in a.reasons for a in on_the_line] == [False]
    assert retention(on_the_line) == ACTIONS["retention_call"]
    out = interventions_for(click("/account/cancel"), SYDNEY, AT, calls_quiet_until=None)
    assert [a.reasons for a in out] == [["visited:cancellation_page"]]


def test_without_their_timezone_the_wait_names_the_business_time() -> None:
    alerts = interventions_for(click("/account/cancel"), ORDINARY, AT, calls_quiet_until="09:00")
    assert alerts[0].suggested_action.startswith("Call back after 09:00 (the business's ")


def replace_tz(features: CustomerFeatures) -> CustomerFeatures:
    fields = {f: getattr(features, f) for f in CustomerFeatures.__struct_fields__}
    fields.update(timezone="Australia/Sydney")
    return CustomerFeatures(**fields)  # type: ignore[arg-type]


# the worker: both reach the alerts it raises -------------------------------------------


NO_RULES = ContactRules()


class NoneSpent:
    """The store's budgets: nothing spent today."""

    async def spent(self, day: date, unreadable: set[str] | None = None) -> dict[str, int]:
        return {}


class Spent:
    """The store's budgets: the voucher's spent for today."""

    async def spent(self, day: date, unreadable: set[str] | None = None) -> dict[str, int]:
        return {RETENTION_OFFER: 5}


def worker_policy(rules: ContactRules = NO_RULES) -> RuleBasedOfferPolicy:
    catalogue = OfferCatalogue(version="w", offers=[VOUCHER], contact_policy=rules)
    return RuleBasedOfferPolicy(CatalogueHolder(catalogue), POLICY)


async def test_the_worker_refuses_an_exhausted_voucher_on_the_card_as_in_the_decision() -> None:
    store = RecordingStore(features={"cust-1": AT_RISK})
    store.budgets = Spent()  # type: ignore[attr-defined]
    call = Call(event_id="k1", customer_id="cust-1", ts=NOW, status="started",
                direction="inbound", reason="support")  # fmt: skip
    result = await handler(store, worker_policy()).handle(records(call))
    [decision] = result.decisions
    assert f"suppressed:budget:{RETENTION_OFFER}" in decision.reasons
    action = retention(result.interventions)
    assert "make no offer" in action and "its budget for today is spent" in action


async def test_the_worker_tells_a_call_back_in_quiet_hours_to_wait() -> None:
    store = RecordingStore(features={"cust-1": replace_tz(AT_RISK)})  # NOW: 20:00 in Sydney
    store.budgets = NoneSpent()  # type: ignore[attr-defined]
    page = WebClick(event_id="w1", customer_id="cust-1", ts=NOW, page="/Account/Cancel")
    result = await handler(store, worker_policy(QUIET)).handle(records(page))
    [alert] = [a for a in result.interventions if a.kind == "save_desk"]
    assert QUIET_CALLS in alert.reasons
    assert alert.suggested_action.startswith("Call back after 09:00 their time: ")
