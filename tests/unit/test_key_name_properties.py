"""Properties of Redis key names: a customer is named by a keyed hash of their id, never
the id itself (docs/feature-store.md: "Keys are named by a keyed hash (HMAC) of the
customer id, never the id itself, and every key of one customer shares a `{...}` hash tag").

Anyone who can list Redis keys (an operator, a backup, a monitoring tool) must learn no
customer id from them, and an erasure replayed from its record (which carries the keyed
hash) must find every key of the customer.
"""

from __future__ import annotations

import dataclasses

from hypothesis import given, settings
from hypothesis import strategies as st

from feature_store.keys import CustomerKeys, KeySet
from tests.unit.event_strategies import any_customer_ids, customer_ids

NAMES = [f.name for f in dataclasses.fields(KeySet) if f.name != "tag"]
HEX = "0123456789abcdef"

ids = customer_ids | any_customer_ids
secrets = st.binary(min_size=1, max_size=32)
prefixes = st.from_regex(r"\A[a-z][a-z0-9_-]{0,7}\Z")


def names_of(keys: KeySet) -> list[str]:
    """Every key name of the customer: their data, the tombstone and erasure record, and
    a decision's context."""
    return [getattr(keys, name) for name in NAMES] + [keys.context("d-1")]


@settings(max_examples=80, deadline=None)
@given(ids, ids, secrets, prefixes)
def test_key_names_hold_nothing_of_the_id_but_its_keyed_hash(
    customer_id: str, other_id: str, secret: bytes, prefix: str
) -> None:
    """Every key of a customer is ``prefix:{tag}:...`` with one tag (one Redis Cluster
    slot), 24 hex digits that the id gives only with the secret; the names of two
    customers differ in the tag alone, so no name holds any more of the id. The tag
    names the same keys again (an erasure replayed from its record finds them)."""
    keys = CustomerKeys(secret, prefix=prefix)
    mine, theirs = keys.for_customer(customer_id), keys.for_customer(other_id)
    assert len(mine.tag) == 24 and set(mine.tag) <= set(HEX)
    for name, other in zip(names_of(mine), names_of(theirs), strict=True):
        assert name.startswith(f"{prefix}:{{{mine.tag}}}:")
        assert name.count("{") == name.count("}") == 1
        assert name.replace(mine.tag, theirs.tag, 1) == other
        assert CustomerKeys.subject_of(name) == mine.tag
    assert keys.for_subject(mine.tag) == mine
    # the same id gives the same tag in any process with the secret, and only that id
    assert CustomerKeys(secret, prefix=prefix).for_customer(customer_id) == mine
    assert (mine.tag == theirs.tag) == (customer_id == other_id)
    # keyed: with another secret, another tag (not a plain hash anyone can recompute)
    assert CustomerKeys(secret + b"!", prefix=prefix).pseudonym(customer_id) != mine.tag
    name_chars = set(HEX + prefix + "{}:") | set("".join(names_of(mine)).replace(mine.tag, ""))
    if not set(customer_id) <= name_chars:  # could not be there by chance
        assert all(customer_id not in name for name in names_of(mine))
