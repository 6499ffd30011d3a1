"""Which churn-risk examples are of customers erased: neither the risk learner
(:mod:`streams.risk_learner`) nor ``moments rebuild`` (:mod:`streams.rebuild_risk`)
learns from an erased customer's data after the erasure, however late it comes or
however often it is read again.

An example names its customer by their keyed hash alone
(:func:`agents.risk_watch.example_subject`), as the erasure tombstone's key does, so the
tombstones are read by that hash: no customer id is needed, or learned.
"""

from __future__ import annotations

from collections.abc import Sequence

from agents.risk_watch import example_subject
from feature_store import FeatureStore
from feature_store.models import ExampleClaim


async def erased_examples(store: FeatureStore, example_ids: Sequence[str]) -> list[bool]:
    """Whether each example (by its id) is of a customer erased now: one round trip
    for them all (none when none names a customer). An id that names no customer (an
    older Moments named examples after the touchpoint that labelled them) is not."""
    subjects = [example_subject(example_id) for example_id in example_ids]
    asked = list(dict.fromkeys(s for s in subjects if s is not None))
    if not asked:
        return [False] * len(example_ids)
    found = await store.erased_subjects(asked)
    gone = {s for s, erased in zip(asked, found, strict=True) if erased}
    return [s is not None and s in gone for s in subjects]


async def erased_while_claimed(
    store: FeatureStore, name: str, example_ids: Sequence[str], claims: Sequence[ExampleClaim]
) -> list[bool]:
    """Whether each example claimed to be learned (``claims``, of ``example_ids`` in order:
    ``"new"`` or ``"again"``) is of a customer erased since the tombstones were read
    before the claim (an erasure made between the two round trips): those are not to
    be learned, and the claims made of them now (``"new"``) are dropped, written after
    the erasure. One round trip (two when some are found; none when none is claimed)."""
    asked = [i for i, claim in enumerate(claims) if claim != "copy"]
    found = await erased_examples(store, [example_ids[i] for i in asked])
    gone = {i for i, erased in zip(asked, found, strict=True) if erased}
    made = [example_ids[i] for i in sorted(gone) if claims[i] == "new"]
    if made:
        await store.models.unclaim_examples(name, made)
    return [i in gone for i in range(len(example_ids))]
