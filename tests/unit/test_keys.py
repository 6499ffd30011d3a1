"""feature_store.keys: one hash tag per customer, never the raw id."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from feature_store.keys import KEY_KINDS, CustomerKeys, KeySet


def test_keys_of_one_customer_share_one_hash_tag() -> None:
    ks = CustomerKeys(b"s3cret", prefix="m").for_customer("cust-000123")
    assert ks.all() == tuple(getattr(ks, kind) for kind in KEY_KINDS)
    assert {"profile", "windows", "seen", "recent"} <= set(KEY_KINDS)
    assert len(set(ks.all())) == len(KEY_KINDS)
    for key in ks.all():
        assert key.startswith("m:{")
        # Redis Cluster hashes the text between the first "{" and the next "}"
        start = key.index("{")
        assert key[start + 1 : key.index("}", start)] == ks.tag
    assert ks.profile.endswith(":p")
    assert ks.windows.endswith(":w")
    assert ks.seen.endswith(":seen")
    assert ks.recent.endswith(":recent")


def test_every_kind_of_customer_data_key_is_listed_and_erased() -> None:
    """A key the store gains must be in ``all()`` and ``KEY_KINDS`` (erasure removes
    ``all()`` and reports it by ``KEY_KINDS``): only the hash tag, the tombstone, what
    the erasure removed (which kinds of keys, no data) and the withdrawals it kept (their
    names alone: a suppression list), all outliving an erasure, are not erased."""
    not_data = {"tag", "tombstone", "erasure", "suppression"}
    kinds = [f.name for f in dataclasses.fields(KeySet) if f.name not in not_data]
    assert set(KEY_KINDS) == set(kinds) and len(KEY_KINDS) == len(kinds)
    ks = CustomerKeys(b"s3cret", prefix="m").for_customer("cust-000123")
    assert set(ks.all()) == {getattr(ks, kind) for kind in kinds}
    assert not {ks.tombstone, ks.erasure, ks.suppression} & set(ks.all())
    assert ks.suppression.startswith(f"m:{{{ks.tag}}}:")  # the customer's slot


@pytest.mark.parametrize(
    "customer_id", ["cust-000123", "alice@example.com", "4711", "ÄÖÜ-unicode", "{tag}"]
)
def test_keys_are_stable_and_never_contain_the_raw_id(customer_id: str) -> None:
    keys = CustomerKeys(b"s3cret")
    ks = keys.for_customer(customer_id)
    assert ks == CustomerKeys(b"s3cret").for_customer(customer_id)
    assert ks.tag == keys.pseudonym(customer_id)
    assert len(ks.tag) == 24 and int(ks.tag, 16) >= 0
    for key in ks.all():
        assert customer_id not in key
        assert key.count("{") == key.count("}") == 1


def test_different_customers_get_different_tags() -> None:
    keys = CustomerKeys(b"s3cret")
    assert len({keys.for_customer(f"cust-{i}").tag for i in range(2000)}) == 2000


def test_different_secrets_give_different_tags() -> None:
    a = CustomerKeys(b"secret-a").for_customer("cust-1")
    b = CustomerKeys(b"secret-b").for_customer("cust-1")
    assert a.tag != b.tag
    assert not set(a.all()) & set(b.all())


def test_prefix_is_used() -> None:
    ks = CustomerKeys(b"s", prefix="prod").for_customer("c")
    assert all(key.startswith("prod:{") for key in ks.all())


def test_empty_secret_raises() -> None:
    with pytest.raises(ValueError, match="secret"):
        CustomerKeys(b"")


def test_remembered_keys_are_the_same_keys_and_memory_stays_bounded() -> None:
    keys = CustomerKeys(b"s3cret", prefix="m", remember=3)
    fresh = CustomerKeys(b"s3cret", prefix="m", remember=1)
    first = [keys.for_customer(f"c{i}") for i in range(5)]
    again = [keys.for_customer(f"c{i}") for i in range(5)]
    assert first == again == [fresh.for_customer(f"c{i}") for i in range(5)]
    assert len(keys._recent) == 3 and "c4" in keys._recent
    keys.forget("c4")
    keys.forget("never-seen")
    assert "c4" not in keys._recent and keys.for_customer("c4") == first[4]


def test_customer_ids_do_not_linger_in_memory() -> None:
    now = [0.0]
    keys = CustomerKeys(b"s", remember_s=30.0, clock=lambda: now[0])
    first = keys.for_customer("alice")
    assert keys.for_customer("alice") is first  # kept for the next call
    now[0] = 31.0
    keys.for_customer("bob")  # a new period: alice's keys are the older ones now
    assert keys.for_customer("alice") is first  # asked again: still kept, to go next
    now[0] = 62.0
    keys.for_customer("bob")
    now[0] = 93.0
    keys.for_customer("bob")  # two periods without alice: she is gone from memory
    assert "alice" not in repr(vars(keys))
    keys.forget("bob")
    assert "bob" not in repr(vars(keys))


async def test_an_idle_process_forgets_customer_ids_on_time() -> None:
    keys = CustomerKeys(b"s", remember_s=0.05)
    first = keys.for_customer("alice")
    assert keys.for_customer("alice") is first
    for _ in range(500):  # no lookup since: the purge does not wait for one
        if "alice" not in repr(vars(keys)):
            break
        await asyncio.sleep(0.01)
    assert "alice" not in repr(vars(keys))
    assert keys._timer is None  # nothing kept, nothing scheduled
    assert keys.for_customer("alice") == first


@pytest.mark.parametrize("every_s", [1.0, 20.0, 29.0])
def test_an_id_looked_up_often_is_not_kept_beyond_two_periods(every_s: float) -> None:
    """However often a customer is asked for, their id leaves memory within twice
    ``remember_s`` of being hashed, and their keys are then hashed anew."""
    now = [0.0]
    keys = CustomerKeys(b"s", remember_s=30.0, clock=lambda: now[0])
    first = keys.for_customer("alice")
    hashed_at = 0.0
    while now[0] < 600.0:
        now[0] += every_s
        found = keys.for_customer("alice")
        assert found == first
        if found is not first:  # hashed anew: the old entry was dropped
            first, hashed_at = found, now[0]
        assert now[0] - hashed_at < 60.0, (now[0], hashed_at)
    assert hashed_at > 500.0


def test_a_late_purge_does_not_stretch_the_next_period() -> None:
    """With no event loop lookups purge: one that comes late (59 s, the period ended
    at 30) must not give the ids it keeps another whole period from then."""
    now = [0.0]
    keys = CustomerKeys(b"s", remember_s=30.0, clock=lambda: now[0])
    keys.for_customer("alice")
    now[0] = 59.0
    keys.for_customer("bob")  # alice's keys are the older ones now, until 60 s
    now[0] = 61.0
    keys.for_customer("bob")
    assert "alice" not in repr(vars(keys))


def test_a_lookup_after_a_long_quiet_spell_keeps_none_of_the_old_ids() -> None:
    now = [0.0]
    keys = CustomerKeys(b"s", remember_s=30.0, clock=lambda: now[0])
    keys.for_customer("alice")
    now[0] = 200.0  # no event loop here: the next lookup purges
    keys.for_customer("bob")
    assert "alice" not in repr(vars(keys))
