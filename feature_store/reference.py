"""A plain-Python mirror of ``lua/apply.lua``: the reference the store is tested against.

>>> from datetime import datetime, timezone
>>> from schemas import WebClick
>>> ts = datetime(2026, 11, 23, tzinfo=timezone.utc)
>>> state = CustomerState()
>>> fact = touchpoint_fact(WebClick(event_id="e1", customer_id="c1", ts=ts, page="/"))
>>> state.apply(fact, now_ms=0), state.apply(fact, now_ms=0), state.profile["n"]
(1, 0, '1')
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from feature_store.contact_days import (
    QUARTERED,
    QUARTERED_METRICS,
    STALE_QUARTERED_DAYS,
    contacts_from,
    counted_from_ms,
    quartered_days,
)
from feature_store.derived import Buckets
from feature_store.facts import (
    BUCKET_CATEGORIES,
    BUCKET_CATEGORY_ROOM,
    DAY_MS,
    GRANT_LEAD_MS,
    LAST_SHOWN,
    OFFER_KEPT_DAYS,
    RESOLUTIONS,
    SHOWN_KEPT_DAYS,
    WITHDRAWAL_FIELDS,
    ContactCeilings,
    Fact,
    Resolution,
    before_mark,
    touchpoint_fact,
)
from feature_store.records import LIVE_LAG_MS
from feature_store.rooms import Room, room_of
from feature_store.strangers import is_stranger, no_activity_life
from feature_store.withdrawals import withdrawal_updates

__all__ = ["CustomerState", "touchpoint_fact"]

_WHOLE = re.compile(r"-?[0-9]+")  # as apply.lua's '^%-?%d+$'


@dataclass
class CustomerState:
    profile: dict[str, str] = field(default_factory=dict)
    windows: dict[str, str] = field(default_factory=dict)
    seen: dict[str, int] = field(default_factory=dict)
    recent: dict[str, int] = field(default_factory=dict)
    contacts: dict[str, str] = field(default_factory=dict)
    optouts: dict[str, str] = field(default_factory=dict)  # kept when the rest expires
    # when each key expires (ms, by the clock of the applies): "profile", "windows",
    # "contacts", "seen", "recent"; a key that is not there has none
    expires_ms: dict[str, int] = field(default_factory=dict)

    def in_any_order(self) -> CustomerState:
        """The state as any order of the same facts leaves it: without the marks of each
        touchpoint's newest one before it (:func:`~feature_store.facts.before_mark`),
        which tell the order they came in."""
        seen = {m: at for m, at in self.seen.items() if not m.startswith("b:")}
        return replace(self, seen=seen)

    def expire(self) -> None:
        """What Redis does to a customer quiet for the store's TTL: all but the opt-outs go.
        (When: :attr:`expires_ms`, see :meth:`expire_due`.)"""
        self.profile, self.windows, self.seen, self.recent = {}, {}, {}, {}
        self.contacts = {}  # which takes the profile's expiry
        for name in ("profile", "windows", "seen", "recent", "contacts"):
            self.expires_ms.pop(name, None)

    def expire_due(self, now_ms: int) -> None:
        """Drop the keys whose expiry has come by ``now_ms``, as Redis would."""
        for name, at in list(self.expires_ms.items()):
            if at <= now_ms:
                setattr(self, name, {})
                del self.expires_ms[name]

    def apply(
        self,
        fact: Fact,
        now_ms: int,
        horizon_ms: int = 8 * 86_400_000,
        recent_len: int = 20,
        resolutions: tuple[Resolution, ...] = RESOLUTIONS,
        ttl_ms: int = 400 * DAY_MS,
        live_lag_ms: int = LIVE_LAG_MS,
        contact_only_ttl_ms: int = 30 * DAY_MS,
        stranger_ttl_ms: int = DAY_MS,
    ) -> int:
        if fact.erased_only:  # for an erased customer only: this state holds no tombstone
            return 7
        ts = fact.ts_ms
        age = now_ms - ts
        if fact.fact_id in self.seen:
            # a withdrawal under an id seen before is applied all the same (its fields alone)
            withdrawn = withdrawal_updates(fact.updates)
            if withdrawn:
                self._withdrawals_only(replace(fact, updates=withdrawn))
            if age >= ttl_ms or f"x:{fact.fact_id}" in self.seen:  # too old, then or now
                return 4
            if f"d:{fact.fact_id}" in self.seen:
                return 2
            return 6 if f"u:{fact.fact_id}" in self.seen else 0
        self._check_addable(fact, resolutions)
        if fact.ceilings and self.over(fact.ceilings, ts):
            return 5  # nothing written, not remembered
        self._check_quartered(fact)
        self.seen = {k: v for k, v in self.seen.items() if v >= now_ms - horizon_ms}
        self.seen[fact.fact_id] = now_ms
        if age >= ttl_ms:  # its profile would have expired: only its withdrawals are kept
            self._withdrawals_only(fact)
            self.seen[f"x:{fact.fact_id}"] = now_ms  # a later copy is too old as well
            self._expire_at_least("seen", now_ms + horizon_ms)
            return 4
        life = ttl_ms - max(0, age - live_lag_ms)  # the ttl from its time (now when live)
        if not self.profile:  # expired (or new): the withdrawals come back
            self.profile = dict(self.optouts)
        w = self.contacts if fact.contact else self.windows
        bucket: dict[str, int] = {}
        live_from: dict[str, int] = {}
        prune_to: dict[str, int] = {}
        written = {op[1:] for op, _, _ in fact.updates if op.startswith("w")}
        # only the resolutions a fact writes to move their buckets along
        resolutions = tuple(r for r in resolutions if r.name in written)
        for res in resolutions:
            b = ts // res.size_ms
            front = min(b, now_ms // res.size_ms)  # ahead of the clock: counted, not moved to
            marker = f"max|{res.name}"
            newest = int(w[marker]) if marker in w else None
            if newest is None or front > newest:
                w[marker] = str(front)
                if newest is not None and front // res.prune_every > newest // res.prune_every:
                    prune_to[res.name] = front - res.keep
                newest = front
            bucket[res.name] = b
            live_from[res.name] = newest - res.keep + 1
        # an offer's daily counts are kept for OFFER_KEPT_DAYS, the other buckets longer;
        # pruned only when a resolution moved on (as apply.lua)
        offers_to = None
        if fact.contact and "d" in prune_to:
            keep = next(r.keep for r in resolutions if r.name == "d")
            offers_to = prune_to["d"] + keep - OFFER_KEPT_DAYS
        for key in list(w) if prune_to else ():
            head, sep, metric = key.partition("|")
            letter, idx = head[:1], head[1:]
            if not (sep and letter.isalpha() and idx.isdigit()):
                continue
            if (
                (letter in prune_to and int(idx) <= prune_to[letter])
                or (fact.contact and letter == "k")  # written before 2026-12-06, never read
                or (letter == "d" and offers_to is not None and int(idx) <= offers_to
                    and metric.startswith("offer:"))
            ):  # fmt: skip
                del w[key]
        quartered_from = None  # the days whose quartered count is kept (contact_days.py)
        quarter = next((r for r in resolutions if r.name == "q"), None)
        if quarter is not None:
            newest_q = live_from["q"] + quarter.keep - 1
            quartered_from = newest_q * quarter.size_ms // DAY_MS - 1
            if "q" in prune_to:
                for key in [k for k in w if k.startswith(QUARTERED)]:
                    named = key[len(QUARTERED) :]
                    if named.isascii() and named.isdigit() and int(named) < quartered_from:
                        del w[key]
        shown_from = None  # when an offer shown is too long ago to keep (see SHOWN_KEPT_DAYS)
        day = next((r for r in resolutions if r.name == "d"), None)
        if fact.contact and day is not None:
            shown_from = (live_from["d"] + day.keep - SHOWN_KEPT_DAYS) * day.size_ms
            if "d" in prune_to:
                for key, when in list(self.profile.items()):
                    if key.startswith(LAST_SHOWN) and _number(when) < shown_from:
                        del self.profile[key]
        for op, key, value in fact.updates:
            shown = op in ("max", "min") and key.startswith(LAST_SHOWN)
            if shown and shown_from is not None and _number(value) < shown_from:
                continue  # too long ago to keep
            self._update(w, op, key, value, ts, bucket, live_from)
        if quartered_from is not None and ts // DAY_MS >= quartered_from:
            self._count_quartered(w, fact, bucket, live_from, quartered_from)
        self.optouts = {}
        for f in WITHDRAWAL_FIELDS:
            if self.profile.get(f) == "0":
                self.optouts |= {f: "0", f"{f}@": self.profile.get(f"{f}@", "0")}
        if "subscribed:email" not in self.profile and _count_or_none(
            self.profile.get("email:unsubscribed", "0")
        ):  # unsubscribed before the flag was kept (a corrupt count: none, as in Lua)
            self.optouts |= {"subscribed:email": "0", "subscribed:email@": "0"}
        if fact.recent and recent_len > 0:
            if fact.keep_before:  # the newest entry before it, kept beside its id
                # (the first of a burst: apply.lua ARGV[15], before.lua)
                last = max(self.recent.items(), key=lambda kv: (kv[1], kv[0]), default=("", 0))
                self.seen[before_mark(fact.fact_id, last[0])] = now_ms
            self.recent[fact.recent] = ts
            kept = sorted(self.recent.items(), key=lambda kv: (kv[1], kv[0]))[-recent_len:]
            self.recent = dict(kept)
            self._renew("recent", now_ms, life, ttl_ms)
        windows = "contacts" if fact.contact else "windows"
        if any(op == "incr" and key == "n" for op, key, _ in fact.updates):  # activity
            for name in ("profile", windows, "seen", "contacts"):
                self._renew(name, now_ms, life, ttl_ms)
        elif "n" not in self.profile:  # no activity of their own, ever
            # the contact-only ttl from this fact (a stranger's ttl for a stranger, told
            # by the profile as this fact left it: a first offer made by email, text or
            # call makes them known already), or the profile's life where longer
            own_ms = no_activity_life(self.profile, contact_only_ttl_ms, stranger_ttl_ms)
            short = own_ms - max(0, age - live_lag_ms)
            given = max(short, self.expires_ms.get("profile", now_ms) - now_ms)
            if given <= 0:  # replayed after the visitor would have expired: the live lag
                given = live_lag_ms
            for name in ("profile", windows):
                if getattr(self, name):
                    at = now_ms + given
                    self.expires_ms[name] = max(self.expires_ms.get(name, at), at)
            if is_stranger(self.profile):  # their seen ids go with them
                horizon_ms = given
        else:  # an expiry only where there is none: the profile's where it has one
            given = self.expires_ms.get("profile", now_ms + life) if self.profile else now_ms + life
            for name in ("profile", windows, "seen"):
                if getattr(self, name) and name not in self.expires_ms:
                    self.expires_ms[name] = given
        self._expire_at_least("seen", now_ms + horizon_ms)
        return 1

    @staticmethod
    def _count_quartered(
        w: dict[str, str],
        fact: Fact,
        bucket: dict[str, int],
        live_from: dict[str, int],
        quartered_from: int,
    ) -> None:
        """A contact written to its quarter and its day alike (with one value) counts in
        its day's quartered count (contact_days.py QUARTERED), as apply.lua; a day's
        first count drops those of the week before ``quartered_from``."""
        wrote: dict[str, str] = {}
        for op, key, value in fact.updates:
            name = op[1:]
            if op in ("wd", "wq") and key in QUARTERED_METRICS and bucket[name] >= live_from[name]:
                wrote[name + key] = value
        field = f"{QUARTERED}{fact.ts_ms // DAY_MS}"
        fresh = None
        for metric in QUARTERED_METRICS:
            added = wrote.get("q" + metric)
            if added is not None and wrote.get("d" + metric) == added:
                fresh = field not in w if fresh is None else fresh
                w[field] = str(int(w.get(field, 0)) + int(added))
        if fresh:
            for day in range(quartered_from - STALE_QUARTERED_DAYS, quartered_from):
                w.pop(f"{QUARTERED}{day}", None)

    def over(self, ceilings: ContactCeilings, ts_ms: int) -> bool:
        """Whether a contact at ``ts_ms`` would break ``ceilings``: counting from where
        its days begin (:func:`~feature_store.contact_days.counted_from_ms`), up to the
        end of the UTC day after its own, as apply.lua does."""
        buckets = Buckets(self.contacts, "dq")
        daily, quarters = buckets.at("d"), buckets.at("q")
        whole = quartered_days(self.contacts, daily)
        for metrics, days, cap in ceilings.counts:
            start = counted_from_ms(ts_ms, ceilings.timezone, days)
            counted = contacts_from(daily, quarters, start, ts_ms // DAY_MS + 1, whole)
            if sum(counted.get(m, 0) for m in metrics) >= cap:
                return True
        for name in ceilings.withdrawn:  # a withdrawal applied since the read
            if self.profile.get(name, self.optouts.get(name)) == "0":
                return True
        return any(
            field in self.profile and int(self.profile[field]) > latest
            for field, latest in ceilings.cool_downs
        )

    def _renew(self, name: str, now_ms: int, life: int, ttl_ms: int) -> None:
        """The full TTL for a live fact; for an older one, as far as its time gives, never
        shortening an expiry."""
        if not getattr(self, name):  # no such key
            return
        if life >= ttl_ms or name not in self.expires_ms:
            self.expires_ms[name] = now_ms + life
        else:
            self.expires_ms[name] = max(self.expires_ms[name], now_ms + life)

    def _check_addable(self, fact: Fact, resolutions: tuple[Resolution, ...]) -> None:
        """As apply.lua, before any write: a counter the fact would take past what Redis
        holds fails it (:class:`OverflowError`), and nothing is kept of it."""
        w = self.contacts if fact.contact else self.windows
        size_ms = {r.name: r.size_ms for r in resolutions}
        for op, key, value in fact.updates:
            if op == "tally":
                counter = _room(key).counter
                if abs(int(self.profile.get(counter, "0")) + 1) >= 9.2e18:
                    raise OverflowError(f"counter {counter} would overflow")
            if op in ("incr", "tally"):
                current = self.profile.get(key, "0")
            elif op.startswith("w") and op[1:] in size_ms:
                current = w.get(f"{op[1:]}{fact.ts_ms // size_ms[op[1:]]}|{key}", "0")
            else:
                continue
            if abs(int(current) + int(value)) >= 9.2e18:
                raise OverflowError(f"counter {key} would overflow")

    def _check_quartered(self, fact: Fact) -> None:
        """As apply.lua, after the ceilings and before any write: the day's quartered
        count a contact adds to must take what it adds (:class:`OverflowError`)."""
        w = self.contacts if fact.contact else self.windows
        for op, key, value in fact.updates:
            if op == "wq" and key in QUARTERED_METRICS:
                quartered = w.get(f"{QUARTERED}{fact.ts_ms // DAY_MS}", "0")
                if abs(int(quartered) + int(value)) >= 9.2e18:
                    raise OverflowError(f"counter {QUARTERED} would overflow")

    def _expire_at_least(self, name: str, at_ms: int) -> None:
        if getattr(self, name) and self.expires_ms.get(name, at_ms) <= at_ms:
            self.expires_ms[name] = at_ms

    def _withdrawals_only(self, fact: Fact) -> None:
        """A fact too old to apply: its withdrawals and grants reach the profile if there
        is one, else the opt-outs alone (no profile is made)."""
        target = self.profile if self.profile else self.optouts
        for op, key, value in fact.updates:
            withdrawal = op == "latest" and key in WITHDRAWAL_FIELDS
            if withdrawal and _newer(key, value, fact.ts_ms, target):
                target[key], target[key + "@"] = value, str(fact.ts_ms)
        optouts: dict[str, str] = {}
        for f in WITHDRAWAL_FIELDS:
            if target.get(f) == "0":
                optouts |= {f: "0", f"{f}@": target.get(f"{f}@", "0")}
        if (
            target is self.profile
            and "subscribed:email" not in self.profile
            and _count_or_none(self.profile.get("email:unsubscribed", "0"))
        ):  # unsubscribed before the flag was kept (a corrupt count: none, as in Lua)
            optouts |= {"subscribed:email": "0", "subscribed:email@": "0"}
        self.optouts = optouts

    def _update(
        self,
        windows: dict[str, str],
        op: str,
        key: str,
        value: str,
        ts: int,
        bucket: dict[str, int],
        live_from: dict[str, int],
    ) -> None:
        p = self.profile
        current = p.get(key)
        if op == "incr" or (op == "tally" and current is not None):
            p[key] = str(int(current or 0) + int(value))
        elif op == "tally":  # a new field, while its room has space for it
            kept = _room(key)
            if kept.counter not in p:  # a profile from before the count: its fields of the kind
                prefix = key.partition(":")[0] + ":"
                p[kept.counter] = str(sum(1 for k in p if k.startswith(prefix)))
            if int(p[kept.counter]) < kept.size:
                p[key] = str(int(value))
                p[kept.counter] = str(int(p[kept.counter]) + 1)
        elif op in ("max", "min"):
            v, c = float(value), None if current is None else float(current)
            if c is None or (op == "max" and v > c) or (op == "min" and v < c):
                p[key] = value
        elif op == "latest":
            if _newer(key, value, ts, p):
                p[key] = value
                p[key + "@"] = str(ts)
        else:
            name = op[1:]
            if bucket[name] >= live_from[name]:
                wkey = f"{name}{bucket[name]}|{key}"
                if not key.startswith("cat:") or wkey in windows:
                    windows[wkey] = str(int(windows.get(wkey, 0)) + int(value))
                else:  # a category new to the bucket, while it has room for one
                    room = f"{name}{bucket[name]}|{BUCKET_CATEGORIES}"
                    if int(windows.get(room, 0)) < BUCKET_CATEGORY_ROOM:
                        windows[wkey] = str(int(value))
                        windows[room] = str(int(windows.get(room, 0)) + 1)

    def mark_decided(self, fact_id: str, now_ms: int) -> None:
        self.seen[f"d:{fact_id}"] = now_ms
        self.seen.pop(f"u:{fact_id}", None)

    def mark_recorded(self, fact_id: str, now_ms: int) -> None:
        """Its decision recorded, not yet known to be sent (decision.lua's mark 'u:')."""
        if f"d:{fact_id}" not in self.seen:
            self.seen[f"u:{fact_id}"] = now_ms


def _room(key: str) -> Room:
    """The room of a tallied field (as apply.lua, a field with none fails the fact)."""
    room = room_of(key)
    if room is None:
        raise ValueError(f"no room for tally {key}")
    return room


def _rank(key: str, value: str, ts: int) -> int:
    return ts - GRANT_LEAD_MS if value == "1" and key in WITHDRAWAL_FIELDS else ts


def _newer(key: str, value: str, ts: int, hash_: dict[str, str]) -> bool:
    """Whether ``value`` of ``ts`` replaces ``key`` in ``hash_`` ('latest': the newest
    wins, ties the smaller value; a grant ranks GRANT_LEAD_MS before its ts)."""
    stamp = hash_.get(key + "@")
    if stamp is None:
        return True
    current = hash_.get(key, value)
    mine, theirs = _rank(key, value, ts), _rank(key, current, int(stamp))
    return mine > theirs or (mine == theirs and value < current)


def _count_or_none(value: str) -> float:
    """A profile count as apply.lua's ``tonumber(...) or 0`` reads it: 0 for one that is
    no number.

    >>> _count_or_none("2"), _count_or_none("x")
    (2.0, 0)
    """
    try:
        return float(value)
    except ValueError:
        return 0


def _number(value: str) -> float:
    r"""A time field's value as apply.lua's prune reads it: a whole number of digits (an
    optional minus); anything else reads as infinity (kept, where a prune compares it).

    >>> [_number(v) for v in ("1700", "-5", "0x10", "1_000", "1e3", "\u0661")]
    [1700.0, -5.0, inf, inf, inf, inf]
    """
    return float(value) if _WHOLE.fullmatch(value) else float("inf")
