"""What a screen is told of an erasure: by id only where it was sent that customer's
alerts, by ref where it may show them from before, and nothing otherwise; and the ref
every alert carries is the one the erasure names."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from feature_store.keys import CustomerKeys
from streams.api.screen_erasures import CustomerRefs, Erased, Screen, with_customer_ref

REFS = CustomerRefs(b"unit-test-secret")


def erased(customer_id: str) -> Erased:
    return Erased(customer_id, REFS(customer_id))


def test_a_screen_is_told_the_id_only_of_customers_it_was_sent_alerts_about() -> None:
    screen = Screen(resumed=False)
    screen.sent("a")
    assert screen.erasure(erased("b")) is None  # never shown: never told
    assert screen.erasure(erased("a")) == {"customer_id": "a", "customer_ref": REFS("a")}
    assert screen.erasure(erased("a")) is None  # told once; the id is forgotten here


def test_a_resumed_screen_is_told_of_every_erasure_by_ref() -> None:
    screen = Screen(resumed=True)  # it may still show alerts from before
    assert screen.erasure(erased("b")) == {"customer_ref": REFS("b")}
    screen.sent("a")  # sent on this connection: it knows the id
    assert screen.erasure(erased("a")) == {"customer_id": "a", "customer_ref": REFS("a")}
    assert screen.erasure(erased("a")) == {"customer_ref": REFS("a")}


def test_a_resumed_screen_is_told_an_id_only_if_sent_it_on_this_connection() -> None:
    """What it showed before it resumed is its own word: an erasure of a customer it was
    not sent on this connection names no id."""
    screen = Screen(resumed=True)
    assert screen.erasure(erased("b")) == {"customer_ref": REFS("b")}
    screen.sent("c")
    assert screen.erasure(erased("c")) == {"customer_id": "c", "customer_ref": REFS("c")}


def test_a_screen_sent_too_many_customers_is_told_of_every_erasure() -> None:
    screen = Screen(resumed=False, limit=2)
    for customer in "ab":
        screen.sent(customer)
    assert screen.erasure(erased("z")) is None
    screen.sent("c")  # a third customer: past the limit, it may show anyone
    assert screen.erasure(erased("z")) == {"customer_ref": REFS("z")}
    assert screen.erasure(erased("a")) == {"customer_id": "a", "customer_ref": REFS("a")}
    assert screen.erasure(erased("c")) == {"customer_ref": REFS("c")}  # not remembered


def test_refs_need_the_secret_and_match_no_other_keyed_hash_of_the_id() -> None:
    assert REFS("cust-1") != CustomerRefs(b"another secret")("cust-1")
    assert REFS("cust-1") != CustomerKeys(b"unit-test-secret").pseudonym("cust-1")
    plain = hmac.new(b"unit-test-secret", b"cust-1", hashlib.blake2b).hexdigest()
    assert REFS("cust-1") not in plain
    with pytest.raises(ValueError, match="must not be empty"):
        CustomerRefs(b"")


def test_the_ref_is_added_to_the_alert_and_wins_over_one_it_had() -> None:
    raw = json.dumps({"intervention_id": "iv-1", "customer_ref": "forged"}).encode() + b"\n"
    assert json.loads(with_customer_ref(raw, REFS("c1"))) == {
        "intervention_id": "iv-1", "customer_ref": REFS("c1"),
    }  # fmt: skip
    with pytest.raises(ValueError, match="JSON object"):
        with_customer_ref(b'["not", "an", "object"]', "x")
