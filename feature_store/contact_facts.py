"""The facts of the contacts Moments made (offers shown, an intervention raised): counted
against the customer's caps, and starting the cool-downs of what they showed."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime

from feature_store.facts import LAST_SHOWN, ContactCeilings, Fact, Update, ts_ms

# the priority of the newest intervention of each kind (profile field prefix)
LAST_INTERVENTION_PRIORITY = "last_intervention_priority"
# the time of the newest intervention of each kind raised past the call channel's caps,
# which said not to call (profile field prefix): its cool-down holds only while they hold
LAST_INTERVENTION_CAPPED = "last_intervention_capped"
# the starts of the reasons such an alert gets (agents.alert_actions.CallsCapped)
CALLS_CAPPED_REASONS = ("fatigue:call:", "fatigue:outbound:")


def contact_id(decision_id: str, offer_ids: Sequence[str]) -> str:
    """The id of the contact a decision made by showing ``offer_ids`` (in any order): the
    same offers under the same decision are one contact, counted once however often it
    is applied; other offers under it (the decision taken again, say after a worker
    stopped before sending it) are another, counted too, with its own cool-downs.

    >>> contact_id("d1", ["b", "a"]) == contact_id("d1", ["a", "b", "a"])
    True
    >>> contact_id("d1", ["a"]) == contact_id("d1", ["b"])
    False
    """
    return f"c:{decision_showing(decision_id, offer_ids)}"


def decision_showing(decision_id: str, offer_ids: Sequence[str]) -> str:
    """``decision_id`` with a short digest of the set of ``offer_ids`` it showed."""
    offers = "\x1f".join(sorted(set(offer_ids))).encode()
    return f"{decision_id}:{hashlib.blake2b(offers, digest_size=5).hexdigest()}"


def channel_contact(channel: str, ms: str) -> list[Update]:
    """The updates of one contact made on ``channel`` at ``ms``, as the fatigue caps
    count them: the day's and the week's contacts, and the channel's last."""
    return [
        ("incr", f"shown:{channel}", "1"),
        ("wd", f"shown:{channel}", "1"),
        ("wq", f"shown:{channel}", "1"),  # the customer's own day: see contact_days.py
        ("max", f"last_contact:{channel}", ms),
    ]


def offers_shown_fact(
    decision_id: str,
    customer_id: str,
    channel: str,
    offer_ids: Sequence[str],
    ts: datetime,
    ceilings: ContactCeilings | None = None,
) -> Fact:
    """A decision that showed offers: feeds fatigue caps and per-offer cool-downs. With
    ``ceilings``, it is not applied when it would break them."""
    ms = str(ts_ms(ts))
    ups = channel_contact(channel, ms)
    for offer in sorted(set(offer_ids)):
        ups += [("max", LAST_SHOWN + offer, ms), ("wd", f"offer:{offer}", "1")]
    fact_id = contact_id(decision_id, offer_ids)
    return Fact(fact_id, customer_id, int(ms), tuple(ups), contact=True, ceilings=ceilings,
                decision_id=decision_id)  # fmt: skip


def intervention_fact(
    intervention_id: str,
    customer_id: str,
    kind: str,
    ts: datetime,
    held_out: bool = False,
    priority: int | None = None,
    reasons: Sequence[str] = (),
) -> Fact:
    """An intervention raised for the customer: feeds per-kind cool-downs. One held out
    (the customer is in the interventions' hold-out group) is counted apart, and starts
    the same cool-down, so that both groups are alerted, or not, alike.

    Its ``priority`` (1 most urgent) is kept beside the time, stamped with it, so that a
    cool-down holds back only alerts of its kind that are no more urgent. A time with no
    priority stamped with it (one stored before priorities were, or by a fact without
    one) counts as the most urgent, so priority 1 is not written (the fact is as before).

    >>> from datetime import UTC
    >>> at = datetime(2026, 11, 23, tzinfo=UTC)
    >>> intervention_fact("i1", "c1", "save_desk", at, priority=2).updates[-1]
    ('latest', 'last_intervention_priority:save_desk', '2')
    >>> intervention_fact("i1", "c1", "save_desk", at, priority=1).updates[-1]
    ('max', 'last_intervention:save_desk', '1795392000000')

    One raised past the call channel's caps (its ``reasons`` name the cap reached, as
    :data:`CALLS_CAPPED_REASONS` start) said not to call: its time is kept as capped
    too, so that its cool-down holds only while the caps do. Read from the alert's
    reasons, it is rebuilt with the rest when the alerts are replayed.

    >>> capped = ["visited:cancellation_page", "fatigue:call:week"]
    >>> intervention_fact("i1", "c1", "save_desk", at, reasons=capped).updates[-1]
    ('max', 'last_intervention_capped:save_desk', '1795392000000')
    """
    ms = str(ts_ms(ts))
    counted = "held_out" if held_out else "interventions"
    ups: list[Update] = [
        ("incr", counted, "1"),
        ("incr", f"{counted}:{kind}", "1"),
        ("wd", counted, "1"),
        ("max", f"last_intervention:{kind}", ms),
    ]
    if any(r.startswith(CALLS_CAPPED_REASONS) for r in reasons):
        # read only while it is the newest alert's time: a newer one, not capped, that
        # leaves it behind starts a cool-down of its own
        ups.append(("max", f"{LAST_INTERVENTION_CAPPED}:{kind}", ms))
    if priority is not None and priority > 1:
        # the newest alert's priority, stamped (field@) with its time: read only with the
        # last_intervention time it goes with (a newer alert of priority 1, or one stored
        # without a priority, leaves it stale, hence read as 1)
        ups.append(("latest", f"{LAST_INTERVENTION_PRIORITY}:{kind}", str(priority)))
    return Fact(f"i:{intervention_id}", customer_id, int(ms), tuple(ups), contact=True)
