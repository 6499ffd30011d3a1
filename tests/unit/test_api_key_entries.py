"""MOMENTS_API_KEYS entries that would give a key other powers or limits than written are
refused at start-up."""

from __future__ import annotations

import pytest

from streams.api.auth import KeyRing, hash_key
from streams.settings import Settings, SettingsError

SHOP = "https://shop.example"
WEB, BACKEND = hash_key("web-key"), hash_key("backend-key")


@pytest.mark.parametrize(
    ("keys", "words"),
    [
        # the later entry's scopes would win: a recommend-only key would erase and export
        (f"web:recommend:{WEB};ops:erase+export:{WEB}", "API keys 'web' and 'ops' have the same"),
        (f"web:recommend:{WEB};ops:erase:{WEB.upper()}", "have the same hash"),
        # keys of one name share its rate limit: they must grant the same
        (f"web:recommend:{WEB};web:ingest:{BACKEND}", "API key name 'web' is given twice"),
        (f"web:recommend:{WEB};web:recommend:{BACKEND}@{SHOP}", "name 'web' is given twice"),
        (f"web:recommend:{'z' * 64}", "hash is not 64 hexadecimal digits"),
        (f"web:recommend:{WEB[:63]}", "hash is not 64"),
        (f"web:recommend+delete:{WEB}", r"unknown scopes \['delete'\]"),
        (f"web:recommend:{WEB}@", "'@' names no origins"),
        (f"web:recommend:{WEB}@ , ", "'@' names no origins"),
        (f":recommend:{WEB}", "has no name"),
    ],
)
def test_an_ambiguous_or_malformed_entry_is_refused(keys: str, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        KeyRing.parse(keys)
    with pytest.raises(SettingsError, match="MOMENTS_API_KEYS: .*" + words):
        Settings.from_env({"MOMENTS_API_KEYS": keys, "MOMENTS_API_CORS_ORIGINS": SHOP})


def test_distinct_keys_with_and_without_origins_are_taken() -> None:
    keys = f"web:recommend:{WEB.upper()}@{SHOP};backend:erase+export:{BACKEND}"
    ring = KeyRing.parse(keys)
    assert ring.authorise("web-key", "recommend", SHOP).name == "web"
    assert ring.authorise("backend-key", "erase").name == "backend"
    assert Settings.from_env({"MOMENTS_API_KEYS": keys, "MOMENTS_API_CORS_ORIGINS": SHOP})


def test_a_key_being_rotated_out_and_its_successor_may_share_a_name() -> None:
    ring = KeyRing.parse(f"web:recommend:{WEB};web:recommend:{BACKEND}")
    assert ring.authorise("web-key", "recommend").name == "web"
    assert ring.authorise("backend-key", "recommend").name == "web"


@pytest.mark.parametrize(
    "keys",
    [
        "web:the-raw-secret-key-0123456789abcdef",  # the key itself instead of its hash
        "the-raw-secret-key-0123456789abcdef",
        f"web:the-raw-secret-key-0123456789abcdef:{WEB}",  # the key where the scopes go
    ],
)
def test_a_refused_entry_is_not_quoted_back(keys: str) -> None:
    """An operator who wrote a raw key instead of its hash would find it in the log of
    the refused start."""
    with pytest.raises(SettingsError) as refused:
        Settings.from_env({"MOMENTS_API_KEYS": keys})
    assert "the-raw-secret-key" not in str(refused.value)


def test_a_pages_key_posts_outcomes_but_no_events_and_ingest_still_grants_both() -> None:
    """A key web pages use is visible to their visitors: with ``ingest`` it could post any
    event for any customer (a consent grant, a purchase); ``outcomes`` is enough."""
    ring = KeyRing.parse(f"pages:recommend+outcomes:{WEB};backend:ingest:{BACKEND}")
    assert ring.authorise("web-key", "outcomes").name == "pages"
    with pytest.raises(Exception, match="lacks the scope 'ingest'"):
        ring.authorise("web-key", "ingest")
    assert ring.authorise("backend-key", "outcomes").name == "backend"
    assert ring.authorise("backend-key", "ingest").name == "backend"
