"""The key names a customer's data lives under are pinned to :data:`LAYOUT`: a change to
them fails here until LAYOUT is bumped (a Redis written by the other version would be
read wrong) and the names below updated with it."""

from __future__ import annotations

import dataclasses

from feature_store import LAYOUT
from feature_store.keys import KEY_KINDS, CustomerKeys, KeySet

LAYOUT_1 = {
    "profile": "m:{tag}:p",
    "windows": "m:{tag}:w",
    "seen": "m:{tag}:seen",
    "recent": "m:{tag}:recent",
    "contacts": "m:{tag}:c",
    "decisions": "m:{tag}:dec",
    "tombstone": "m:{tag}:erased",
    "outcomes": "m:{tag}:out",
    "decision_index": "m:{tag}:ctxidx",
    "optouts": "m:{tag}:optout",
    "outcome_times": "m:{tag}:outt",
    "erasure": "m:{tag}:erasure",
    # added within layout 1: written beside a tombstone alone, read by nothing else (a
    # version without it leaves it to expire with the tombstone, and answers the erased
    # customer as it did; a Redis without it reads as one whose erased kept nothing)
    "suppression": "m:{tag}:supp",
    "context": "m:{tag}:ctx:<decision>",
}


def names() -> dict[str, str]:
    keys = CustomerKeys(b"pinned").for_subject("tag")
    found = {f.name: getattr(keys, f.name) for f in dataclasses.fields(KeySet) if f.name != "tag"}
    found["context"] = keys.context("<decision>")
    return found


def test_the_key_names_are_those_of_the_layout() -> None:
    assert LAYOUT == 1, "a new layout: pin its key names here"
    assert names() == LAYOUT_1, "key names changed: bump LAYOUT and pin the new names"
    assert set(KEY_KINDS) <= set(LAYOUT_1)
