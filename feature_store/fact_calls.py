"""How a fact is applied: the keys and arguments lua/apply.lua takes for it."""

from __future__ import annotations

import functools
from typing import Any

import msgspec

from feature_store.contact_days import QUARTER, counted_from_ms
from feature_store.facts import DAY_MS, RESOLUTIONS, ContactCeilings, Fact
from feature_store.keys import CustomerKeys
from feature_store.records import LIVE_LAG_MS, StoreConfig

_updates_json = msgspec.json.Encoder().encode


def _ceilings_json(ceilings: ContactCeilings, at_ms: int) -> bytes:
    """A contact's ceilings as apply.lua takes them, ``at_ms`` the contact's time: each
    count from where its days begin (UTC ms: contact_days.counted_from_ms), the
    contact's UTC day, and the size of the quarter-hour buckets."""
    counts = [(metrics, counted_from_ms(at_ms, ceilings.timezone, days), cap)
              for metrics, days, cap in ceilings.counts]  # fmt: skip
    return _updates_json({"day": at_ms // DAY_MS, "quarter": QUARTER.size_ms,
                          "counts": counts, "since": ceilings.cool_downs,
                          "withdrawn": ceilings.withdrawn})  # fmt: skip


@functools.cache
def _resolutions_json(names: frozenset[str]) -> bytes:
    chosen = [[r.name, r.size_ms, r.keep, r.prune_every] for r in RESOLUTIONS if r.name in names]
    return msgspec.json.encode(chosen)


def _resolutions_of(fact: Fact) -> bytes:
    """The resolutions a fact writes to: only those move their buckets along (a fact
    without windowed updates leaves every bucket alone)."""
    return _resolutions_json(frozenset(op[1:] for op, _, _ in fact.updates if op[0] == "w"))


def fact_call(
    customer_keys: CustomerKeys, config: StoreConfig, fact: Fact, now_ms: int
) -> tuple[tuple[str, ...], list[Any]]:
    """apply.lua's keys and arguments for ``fact``, applied at ``now_ms``."""
    k = customer_keys.for_customer(fact.customer_id)
    windows = k.contacts if fact.contact else k.windows
    keys = (k.profile, windows, k.seen, k.recent, k.tombstone, k.optouts, k.contacts,
            k.suppression)  # fmt: skip
    args: list[Any] = [
        fact.fact_id,
        fact.ts_ms,
        now_ms,
        config.ttl_s,
        config.dedupe_horizon_s * 1000,
        fact.recent or "",
        config.recent_len,
        _resolutions_of(fact),
    ]
    args += [_updates_json(fact.updates), LIVE_LAG_MS, config.contact_only_life_s]
    # ARGV[12] the ceilings, ARGV[13] for the erased only ('' for none), ARGV[14] a
    # stranger's ttl (feature_store/strangers.py), ARGV[15] keep the touchpoint before
    # it beside its id ('' for no: facts.py mark_bursts)
    args.append(_ceilings_json(fact.ceilings, fact.ts_ms) if fact.ceilings else "")
    args += ["1" if fact.erased_only else "", config.stranger_life_s]
    args.append("1" if fact.keep_before else "")
    return keys, args
