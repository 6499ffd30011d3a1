"""Erasing a customer: erase.lua's call, and the receipt its reply gives."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from feature_store.connection import StoreConnection
from feature_store.facts import WITHDRAWAL_FIELDS
from feature_store.keys import KEY_KINDS, CustomerKeys
from feature_store.records import ErasureReceipt, ErasureUnknown, StoreConfig, StoreUnavailable
from feature_store.redis_errors import may_have_run


async def erase_customer(
    conn: StoreConnection,
    customer_keys: CustomerKeys,
    config: StoreConfig,
    clock: Callable[[], float],
    customer_id: str,
    erased_at_ms: int | None,
    replicas: int,
    within_ms: int,
    withdrawals: Sequence[str],
) -> ErasureReceipt:
    """Erase the customer as :meth:`~feature_store.store.FeatureStore.erase` says, over
    ``conn``, as of ``clock``'s now."""
    keys = customer_keys.for_customer(customer_id)
    now_ms = int(clock() * 1000)
    at_ms = now_ms if erased_at_ms is None else min(erased_at_ms, now_ms)
    block_ms = config.tombstone_ttl_s * 1000 - (now_ms - at_ms)
    if block_ms <= 0:
        return ErasureReceipt(subject=keys.tag, keys_removed=0, kinds=[], blocked=False)
    named_by = [KEY_KINDS.index("decisions") + 1, KEY_KINDS.index("decision_index") + 1]
    optouts = KEY_KINDS.index("optouts") + 1
    call = ([*keys.all(), keys.tombstone, keys.erasure, keys.suppression],
            [block_ms, at_ms, keys.context(""), "live" if erased_at_ms is None else "replayed",
             optouts, " ".join(w for w in withdrawals if w in WITHDRAWAL_FIELDS),
             *named_by])  # fmt: skip
    confirmed = None
    try:
        if replicas:
            reply, confirmed = await conn.eval_confirmed(
                "erase", "erase", call, replicas, within_ms
            )
        else:
            (reply,) = await conn.eval_many("erase", "erase", [call])
    except StoreUnavailable as exc:  # sent, and no reply: it may run yet
        if may_have_run(exc):
            customer_keys.forget(customer_id)
            raise ErasureUnknown(str(exc), subject=keys.tag) from exc
        raise
    removed, gone_contexts = reply[: len(KEY_KINDS)], int(reply[len(KEY_KINDS)])
    kinds = [kind for kind, gone in zip(KEY_KINDS, removed, strict=True) if gone]
    if gone_contexts:
        kinds.append("decision_contexts")
    customer_keys.forget(customer_id)
    return ErasureReceipt(
        subject=keys.tag, keys_removed=sum(removed) + gone_contexts, kinds=kinds,
        blocked=True, erased_at_ms=int(reply[len(KEY_KINDS) + 1]),
        replicas_confirmed=confirmed,
        withdrawals_kept=[str(w) for w in reply[len(KEY_KINDS) + 2]],
    )  # fmt: skip
