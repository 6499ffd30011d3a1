"""A day's count from the shorter side of the local midnight (feature_store/contact_days.py
quartered_days and contacts_from, the reference's writes and ceilings): pure logic.

A Paris customer's day begins at 23:00 UTC: 92 of that UTC day's quarters come before
the midnight, 4 after. The count reads the 4 when every contact of the day is in its
quarter, which the day's quartered count tells; a contact the count leaves out (one of
an older Moments, one dated before the days whose count is kept) leaves the day counted
as before, strictly.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from feature_store import ContactCeilings, Fact, facts, offers_shown_fact
from feature_store.contact_days import (
    QUARTERED,
    QUARTERED_METRICS,
    STALE_QUARTERED_DAYS,
    contacts_from,
    day_start_ms,
    quartered_days,
)
from feature_store.derived import Buckets
from feature_store.facts import DAY_MS, QUARTER, ts_ms
from feature_store.reference import CustomerState
from schemas.catalogue import OFFER_CHANNELS

DAY = 20_000  # a UTC day
PARIS_MIDNIGHT = (DAY + 1) * DAY_MS - 3_600_000  # 23:00 UTC: 92 quarters before, 4 after
LA_MIDNIGHT = DAY * DAY_MS + 8 * 3_600_000  # 08:00 UTC: 32 before, 64 after
QUARTER_MS = QUARTER.size_ms


def quarter_at(hour: int, minute: int = 0) -> int:
    return (DAY * DAY_MS + (hour * 60 + minute) * 60_000) // QUARTER_MS


# -- which side is read -----------------------------------------------------------------


def test_a_whole_day_is_counted_from_its_quarters_after_the_midnight() -> None:
    """Two emails on the UTC day, one at 22:00 (before Paris's midnight) and one at
    23:15: the day's count holds one. The quarters before the midnight are not read when
    the day is whole: a day whose quarter of 22:00 went missing still counts one (read
    before the midnight, as when the day is not whole, it counts two: strict)."""
    daily = {DAY: {"shown:email": 2}}
    both = {quarter_at(22): {"shown:email": 1}, quarter_at(23, 15): {"shown:email": 1}}
    after_only = {quarter_at(23, 15): {"shown:email": 1}}
    for whole in ((), {DAY}):
        assert contacts_from(daily, both, PARIS_MIDNIGHT, DAY + 1, whole) == {"shown:email": 1}
    assert contacts_from(daily, after_only, PARIS_MIDNIGHT, DAY + 1, {DAY}) == {"shown:email": 1}
    assert contacts_from(daily, after_only, PARIS_MIDNIGHT, DAY + 1) == {"shown:email": 2}


def test_the_longer_side_is_never_read() -> None:
    """Los Angeles's midnight (08:00 UTC) has fewer quarters before it: read before it,
    whole day or not."""
    daily = {DAY: {"shown:email": 2}}
    after_only = {quarter_at(9): {"shown:email": 1}}  # 07:00's quarter missing
    assert contacts_from(daily, after_only, LA_MIDNIGHT, DAY + 1, {DAY}) == {"shown:email": 2}


def test_only_the_quartered_metrics_are_read_after_the_midnight() -> None:
    """An offer's count (no quartered count says its day is whole) is read as before."""
    daily = {DAY: {"shown:email": 1, "offer:tips": 1}}
    quarters = {quarter_at(23, 15): {"shown:email": 1}}  # the offer has no quarter
    counted = contacts_from(daily, quarters, PARIS_MIDNIGHT, DAY + 1, {DAY})
    assert counted == {"shown:email": 1, "offer:tips": 1}


def test_quarters_after_the_midnight_never_count_more_than_the_day_holds() -> None:
    daily = {DAY: {"shown:email": 1}, DAY + 1: {"shown:email": 1}}
    quarters = {quarter_at(23, 15): {"shown:email": 5}}  # corrupt
    assert contacts_from(daily, quarters, PARIS_MIDNIGHT, DAY + 1, {DAY}) == {"shown:email": 2}


# -- which days are whole ---------------------------------------------------------------


def hash_of(count: str | None, newest_quarter: int | None, **daily: int) -> dict[str, str]:
    fields = {f"d{DAY}|shown:{channel}": str(n) for channel, n in daily.items()}
    if count is not None:
        fields[f"{QUARTERED}{DAY}"] = count
    if newest_quarter is not None:
        fields["max|q"] = str(newest_quarter)
    return fields


def whole(fields: dict[str, str]) -> bool:
    return DAY in quartered_days(fields, Buckets(fields, "dq").at("d"))


def test_a_day_whose_every_contact_is_in_its_quarter_is_whole() -> None:
    newest = (DAY + 1) * 96 + 40  # the next day's: the day before the newest is kept
    assert whole(hash_of("3", newest, web=2, email=1))
    # an email an older Moments recorded (its day alone): not whole
    assert not whole(hash_of("2", newest, web=2, email=1))
    assert not whole(hash_of(None, newest, email=1))  # no count: an older store's
    # two days before the newest quarter's: its quarters may be pruned apart
    assert not whole(hash_of("3", (DAY + 2) * 96, web=2, email=1))
    assert whole(hash_of("3", DAY * 96, web=2, email=1))  # the newest quarter's day itself
    assert whole(hash_of("3", (DAY - 1) * 96, web=2, email=1))  # dated ahead of the newest
    assert not whole(hash_of("3", None, web=2, email=1))  # no quarters at all
    assert not whole(hash_of("3.0", newest, web=2, email=1))  # as apply.lua
    assert whole(hash_of("3", newest, web=2, email=1, push=1))  # not a quartered metric
    assert "20000" not in quartered_days(hash_of("3", newest, web=2, email=1), {})


def test_the_apply_script_names_the_quartered_count_and_metrics_alike() -> None:
    script = (Path(facts.__file__).parent / "lua" / "apply.lua").read_text()
    assert f"local QUARTERED = '{QUARTERED}'" in script
    listed = script.split("local QUARTERED_METRICS = {", 1)[1].split("}", 1)[0]
    assert [n.strip(" '\n") for n in listed.split(",")] == list(QUARTERED_METRICS)
    assert {f"shown:{c}" for c in OFFER_CHANNELS} == set(QUARTERED_METRICS)


# -- the counts the store keeps (the reference, as apply.lua) ---------------------------


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 12, day, hour, minute, tzinfo=UTC)


def shown(state: CustomerState, decision_id: str, when: datetime, channel: str = "email",
          now: datetime | None = None) -> int:  # fmt: skip
    fact = offers_shown_fact(decision_id, "c1", channel, ["tips"], when)
    return state.apply(fact, ts_ms(now or when))


def counts(state: CustomerState) -> dict[int, str]:
    return {int(f[len(QUARTERED) :]): v for f, v in state.contacts.items()
            if f.startswith(QUARTERED)}  # fmt: skip


def test_each_contact_counts_in_its_days_quartered_count_kept_two_days() -> None:
    state = CustomerState()
    first = ts_ms(at(1, 12)) // DAY_MS
    shown(state, "d1", at(1, 12))
    shown(state, "d2", at(1, 13), "web")
    assert counts(state) == {first: "2"}
    shown(state, "d3", at(2, 9))
    assert counts(state) == {first: "2", first + 1: "1"}
    shown(state, "d4", at(3, 9))  # the next day's first contact prunes the first's count
    assert counts(state) == {first + 1: "1", first + 2: "1"}


def test_a_late_contact_leaves_its_day_counted_as_before() -> None:
    """A contact two days before the newest: counted in its quarter, not in a count (its
    day's quarters may go at the next prune)."""
    state = CustomerState()
    shown(state, "d1", at(3, 9))
    shown(state, "d0", at(1, 9), now=at(3, 10))
    assert list(counts(state)) == [ts_ms(at(3, 9)) // DAY_MS]


def test_a_contact_of_an_older_moments_leaves_its_day_not_whole() -> None:
    state = CustomerState()
    shown(state, "d1", at(1, 22, 30))
    contact = offers_shown_fact("d2", "c1", "email", ["tips"], at(1, 23, 30))
    legacy = Fact(contact.fact_id, "c1", contact.ts_ms,
                  tuple(u for u in contact.updates if u[0] != "wq"), contact=True)  # fmt: skip
    assert state.apply(legacy, contact.ts_ms) == 1
    day = ts_ms(at(1, 12)) // DAY_MS
    assert counts(state) == {day: "1"} and state.contacts[f"d{day}|shown:email"] == "2"
    assert day not in quartered_days(state.contacts, Buckets(state.contacts, "dq").at("d"))
    # one email a day in Paris: the 23:30 email is the 2nd's (it has no quarter, but its
    # day is not whole: read before the midnight, the 22:30 one is taken away)
    once = ContactCeilings(((("shown:email",), 1, 1),), (), "Europe/Paris")
    assert state.over(once, ts_ms(at(2, 8)))


def test_a_quarter_without_its_day_counts_nothing() -> None:
    """Only a contact in its quarter and its day alike (with one value) is counted: a
    fact writing its quarter alone would hide a contact of an older Moments."""
    state = CustomerState()
    stray = Fact("q1", "c1", ts_ms(at(1, 9)), (("wq", "shown:email", "1"),), contact=True)
    assert state.apply(stray, stray.ts_ms) == 1
    assert counts(state) == {}


# -- the shorter side counts what the longer one does -----------------------------------

# zones from UTC-12 to UTC+14, with midnights on hours, :30 and :45
ZONES = ["Etc/GMT+12", "America/Los_Angeles", "America/St_Johns", "UTC", "Europe/Paris",
         "Asia/Kolkata", "Asia/Kathmandu", "Asia/Tokyo", "Pacific/Chatham",
         "Pacific/Kiritimati"]  # fmt: skip
T0 = datetime(2026, 12, 6, tzinfo=UTC)
contacts = st.lists(
    st.tuples(st.integers(0, 5 * 24 * 60),  # minutes after T0: its time
              st.integers(0, 3 * 24 * 60),  # minutes applied after its time (late ones)
              st.sampled_from(["web", "email", "sms"]),
              st.booleans()),  # recorded by a Moments from before the quarters
    max_size=30,
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(contacts, st.sampled_from(ZONES), st.integers(0, 6 * 24 * 60))
def test_any_history_counts_the_same_from_either_side_of_the_midnight(
    history: list[tuple[int, int, str, bool]], zone: str, asked: int
) -> None:
    """On any state the store writes (contacts late or not, some without their quarter),
    in any zone, a day's count from the shorter side is the one from the side before the
    midnight; the property that lets apply.lua read it."""
    state = CustomerState()
    now = ts_ms(T0)
    for i, (minute, late, channel, legacy) in enumerate(sorted(history, key=lambda h: h[0] + h[1])):
        when = T0 + timedelta(minutes=minute)
        fact = offers_shown_fact(f"d{i}", "c1", channel, ["tips"], when)
        if legacy:
            fact = Fact(fact.fact_id, "c1", fact.ts_ms,
                        tuple(u for u in fact.updates if u[0] != "wq"), contact=True)  # fmt: skip
        now = max(now, ts_ms(when + timedelta(minutes=late)))
        state.apply(fact, now)
    read_at = max(now, ts_ms(T0 + timedelta(minutes=asked)))
    buckets = Buckets(state.contacts, "dq")
    daily, quarters = buckets.at("d"), buckets.at("q")
    whole = quartered_days(state.contacts, daily)
    for back in range(3):
        start = day_start_ms(read_at, zone, back)
        last = read_at // DAY_MS + 1
        assert contacts_from(daily, quarters, start, last, whole) == contacts_from(
            daily, quarters, start, last
        ), (ZoneInfo(zone), start)


def test_a_days_first_count_drops_the_stale_counts_of_the_week_before() -> None:
    """Counts an older Moments's prunes left beside the newest quarter's day: the day's
    first count drops those of the seven days before the kept two (no scan), and a
    second count of the day drops nothing more."""
    today = ts_ms(at(10, 9)) // DAY_MS
    stale = {f"{QUARTERED}{d}": "1" for d in range(today - 9, today - 1)}
    state = CustomerState(contacts={**stale, "max|q": str(today * 96 + 1)})
    shown(state, "d1", at(10, 9))
    assert counts(state) == {today - 9: "1", today: "1"}
    state.contacts[f"{QUARTERED}{today - 2}"] = "1"
    shown(state, "d2", at(10, 10))
    assert counts(state) == {today - 9: "1", today - 2: "1", today: "2"}


def test_the_apply_script_drops_the_same_weeks_stale_counts() -> None:
    script = (Path(facts.__file__).parent / "lua" / "apply.lua").read_text()
    assert f"local STALE_QUARTERED_DAYS = {STALE_QUARTERED_DAYS} " in script
