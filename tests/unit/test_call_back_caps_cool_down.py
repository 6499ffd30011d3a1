"""A call back raised past the call caps says not to call: it holds back later alerts of
its kind only while the calls are capped still, so that the call is asked for once the
caps allow it, without a new card at every touchpoint meanwhile."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import msgspec
import pytest

from agents.alert_actions import ACTIONS
from agents.control_group import ControlGroup
from agents.interventions import interventions_for, withheld
from agents.returning_customers import WIN_BACK_OWED
from feature_store import CustomerFeatures, intervention_fact
from feature_store.contact_facts import CALLS_CAPPED_REASONS
from feature_store.facts import Fact, ts_ms
from feature_store.features import ContactHistory
from schemas import WebClick
from streams.rebuild_replay import Replay
from streams.settings import Settings
from tests.unit.factories import T0, apply_all, features_of
from tests.unit.test_call_back_caps import DAY, ONCE_A_DAY, WEEK, calling, page, seen
from tests.unit.test_intervention_terms import AT, AT_RISK, NoneSpent, worker_policy
from tests.unit.test_touchpoint_handler import NOW, RecordingStore, handler, records

HOUR = timedelta(hours=1)
DAY_SPAN = timedelta(days=1)
CAPPED = ["visited:cancellation_page", "fatigue:call:day"]  # a capped save desk's reasons
CAPPED_FIELD = "last_intervention_capped:save_desk"


class NothingSpent(NoneSpent):
    """The store's budgets: nothing spent today, and what the batch spends is taken."""

    async def add(self, spent: Any) -> None:
        pass


def said_not_to_call(ago: timedelta = HOUR, capped: bool = True) -> CustomerFeatures:
    """At risk, within the call caps now, with a save desk raised ``ago`` from the
    cancellation page; ``capped``: it said not to call (else: an older profile, or one
    that asked for the call)."""
    contact = ContactHistory(
        last_intervention={"save_desk": AT - ago},
        last_intervention_priority={"save_desk": 2},
        last_intervention_capped=("save_desk",) if capped else (),
    )
    return msgspec.structs.replace(seen({}), contact=contact)


def kinds(alerts: list[Any]) -> list[tuple[str, int]]:
    return [(a.kind, a.priority) for a in alerts]


# the cool-down, pure ----------------------------------------------------------------


def test_once_the_caps_lift_the_call_back_is_asked_for() -> None:
    [alert] = interventions_for(page(), said_not_to_call(), AT, calls_capped=None)
    assert (alert.kind, alert.reasons) == ("save_desk", ["visited:cancellation_page"])
    assert alert.suggested_action == ACTIONS["save_desk"]


@pytest.mark.parametrize("capped", [DAY, WEEK])
def test_while_the_caps_hold_no_second_card_is_raised(capped: Any) -> None:
    assert interventions_for(page(), said_not_to_call(), AT, calls_capped=capped) == []


@pytest.mark.parametrize("capped", [None, DAY])
def test_a_card_that_asked_for_the_call_or_an_older_profile_holds_back_as_before(
    capped: Any,
) -> None:
    features = said_not_to_call(capped=False)
    assert interventions_for(page(), features, AT, calls_capped=capped) == []


def test_the_cool_down_ends_when_it_ends_caps_or_not() -> None:
    over = said_not_to_call(ago=7 * HOUR)  # the save desk's cool-down is 6 hours
    assert kinds(interventions_for(page(), over, AT, calls_capped=DAY)) == [("save_desk", 2)]


def test_a_more_urgent_alert_and_the_customer_on_the_line_go_through() -> None:
    """The customer calls to cancel, caps reached or not: the agent who has them on the
    line is told, as before."""
    alerts = interventions_for(calling(), said_not_to_call(), AT, calls_capped=DAY)
    assert ("save_desk", 1) in kinds(alerts)


def test_other_kinds_keep_their_cool_downs() -> None:
    """Only the kind whose last card said not to call is let through."""
    features = said_not_to_call()
    contact = msgspec.structs.replace(
        features.contact,
        last_intervention={**features.contact.last_intervention, "retention_call": AT - HOUR},
        last_intervention_priority={"save_desk": 2, "retention_call": 2},
    )
    features = msgspec.structs.replace(features, contact=contact)
    alerts = interventions_for(page(), features, AT, risk=0.9, risk_crossed=True)
    assert kinds(alerts) == [("save_desk", 2)]


# the contact history: written with the alert, read back --------------------------------


def alert_fact(name: str, ago: timedelta, reasons: list[str], held_out: bool = False) -> Fact:
    return intervention_fact(name, "c1", "save_desk", T0 - ago, held_out=held_out, priority=2,
                             reasons=reasons)  # fmt: skip


def stored(*facts: Fact) -> ContactHistory:
    return features_of(apply_all(facts)).contact


@pytest.mark.parametrize("cap", ["fatigue:call:day", "fatigue:call:week",
                                 "fatigue:outbound:day", "fatigue:outbound:week"])  # fmt: skip
def test_the_alert_is_kept_as_capped_by_the_cap_it_names(cap: str) -> None:
    assert cap.startswith(CALLS_CAPPED_REASONS)
    fact = alert_fact("i1", HOUR, ["visited:cancellation_page", cap])
    assert ("max", CAPPED_FIELD, str(ts_ms(T0 - HOUR))) in fact.updates
    assert stored(fact).last_intervention_capped == ("save_desk",)


@pytest.mark.parametrize("reasons", [[], ["visited:cancellation_page", "quiet_hours:call"],
                                     ["visited:cancellation_page", "control_group"]])  # fmt: skip
def test_an_alert_that_asked_for_the_call_is_not_kept_as_capped(reasons: list[str]) -> None:
    fact = alert_fact("i1", HOUR, reasons)
    assert not [u for u in fact.updates if u[1].startswith("last_intervention_capped")]
    assert stored(fact).last_intervention_capped == ()


@pytest.mark.parametrize("order", ["as raised", "newest first"])
def test_a_newer_card_that_asked_for_the_call_starts_its_own_cool_down(order: str) -> None:
    capped, called = alert_fact("i1", 2 * HOUR, CAPPED), alert_fact("i2", HOUR, ["visited"])
    contact = stored(*((capped, called) if order == "as raised" else (called, capped)))
    assert contact.last_intervention == {"save_desk": T0 - HOUR}
    assert contact.last_intervention_capped == ()
    # and a newer capped one marks the kind again
    assert stored(called, alert_fact("i3", 0 * HOUR, CAPPED)).last_intervention_capped == (
        "save_desk",
    )


def test_an_older_profile_without_the_field_reads_as_not_capped() -> None:
    contact = stored(intervention_fact("i1", "c1", "save_desk", T0 - HOUR, priority=2))
    assert contact.last_intervention_capped == ()
    assert "last_intervention_capped" in msgspec.to_builtins(contact)  # in the profile shown


def test_a_held_out_card_is_kept_as_capped_alike() -> None:
    [alert] = interventions_for(page(), seen({"call": 1}), AT, calls_capped=DAY)
    kept = withheld(alert)
    fact = intervention_fact(kept.intervention_id, "c1", kept.kind, kept.ts, held_out=True,
                             priority=kept.priority, reasons=kept.reasons)  # fmt: skip
    assert ("max", CAPPED_FIELD, str(ts_ms(AT))) in fact.updates


# the worker and the rebuild write it -------------------------------------------------


@pytest.mark.parametrize("held_out", [False, True])
async def test_the_worker_records_a_capped_card_as_capped(held_out: bool) -> None:
    features = msgspec.structs.replace(AT_RISK, contact=ContactHistory(shown_today={"call": 1}))
    store = RecordingStore(features={"cust-1": features})
    store.budgets = NothingSpent()  # type: ignore[attr-defined]
    group = ControlGroup("held", 100.0 if held_out else 0.0)
    click = page(NOW)
    click = msgspec.structs.replace(click, customer_id="cust-1")
    worker = handler(store, worker_policy(ONCE_A_DAY), holdout=group)
    result = await worker.handle(records(click))
    await worker.confirm(result)
    [alert] = [a for a in result.interventions + result.held_out if a.kind == "save_desk"]
    assert alert.control is held_out and "fatigue:call:day" in alert.reasons
    written = [u for facts in store.facts for f in facts for u in f.updates]
    assert ("max", CAPPED_FIELD, str(ts_ms(alert.ts))) in written


class RebuildStore:
    """What the rebuild's replay of the alerts writes to the store."""

    def __init__(self) -> None:
        self.facts: list[Fact] = []
        self.decisions = self

    async def apply_facts(self, facts: list[Fact], ran: dict[int, Any]) -> list[Any]:
        self.facts += facts
        return [None] * len(facts)

    async def record(self, records: list[Any], faults: dict[str, Exception]) -> None:
        pass


async def test_the_rebuild_keeps_a_replayed_capped_card_as_capped() -> None:
    [alert] = interventions_for(page(), seen({"call": 1}), AT, calls_capped=WEEK)
    store = RebuildStore()
    replay = Replay(Settings(), store, 100)  # type: ignore[arg-type]
    await replay._interventions([SimpleNamespace(value=msgspec.json.encode(alert))])  # type: ignore[list-item]
    [fact] = store.facts
    assert ("max", CAPPED_FIELD, str(ts_ms(AT))) in fact.updates


# a win-back is noticed once per return: one that said not to call stays owed ------------


def win_back_said_not_to_call(ago: timedelta = 3 * DAY_SPAN, capped: bool = True) -> Any:
    """A valuable customer browsing (no return now), whose win-back, raised ``ago``, said
    not to call (``capped``), or asked for the call."""
    contact = ContactHistory(
        last_intervention={"win_back": AT - ago},
        last_intervention_priority={"win_back": 2},
        last_intervention_capped=("win_back",) if capped else (),
    )
    return msgspec.structs.replace(seen({}), contact=contact, segment="loyal", value=900.0)


def browsing() -> Any:
    return WebClick(event_id="w2", customer_id="c1", ts=AT, page="/offers")


def test_a_win_back_that_said_not_to_call_is_asked_for_once_the_caps_lift() -> None:
    [alert] = interventions_for(browsing(), win_back_said_not_to_call(), AT, calls_capped=None)
    assert (alert.kind, alert.reasons) == ("win_back", [WIN_BACK_OWED])
    assert alert.suggested_action == ACTIONS["win_back"]


@pytest.mark.parametrize(
    ("features", "capped"),
    [
        (win_back_said_not_to_call(), DAY),  # the caps hold still
        (win_back_said_not_to_call(), WEEK),
        (win_back_said_not_to_call(capped=False), None),  # it asked for the call
        (win_back_said_not_to_call(ago=31 * DAY_SPAN), None),  # past its 30-day cool-down
    ],
    ids=["day-cap", "week-cap", "asked-for-the-call", "cool-down-over"],
)
def test_no_win_back_is_owed_otherwise(features: Any, capped: Any) -> None:
    assert interventions_for(browsing(), features, AT, calls_capped=capped) == []


def test_the_win_back_asked_for_again_is_not_owed_again() -> None:
    """Recorded, it is the newest win-back and asked for the call: the next touchpoint
    raises none."""
    said = win_back_said_not_to_call()
    [alert] = interventions_for(browsing(), said, AT, calls_capped=None)
    history = stored(
        intervention_fact("w-capped", "c1", "win_back", AT - 3 * DAY_SPAN, priority=2,
                          reasons=["returned_after_days:120", "fatigue:call:week"]),
        intervention_fact(alert.intervention_id, "c1", "win_back", alert.ts, priority=2,
                          reasons=alert.reasons),
    )  # fmt: skip
    assert history.last_intervention_capped == ()
    later = msgspec.structs.replace(said, contact=history)
    assert interventions_for(browsing(), later, AT + HOUR, calls_capped=None) == []
