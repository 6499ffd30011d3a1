"""streams.api.auth: API keys, their scopes, and keys bound to web pages' origins."""

from __future__ import annotations

import pytest

from streams.api.auth import AuthError, KeyRing, hash_key
from streams.settings import Settings, SettingsError

SHOP, MOBILE, OTHER = "https://shop.example", "https://m.shop.example", "https://other.example"


def ring(spec: str = "") -> KeyRing:
    return KeyRing.parse(
        f"pages:recommend+ingest:{hash_key('page-key')}@{SHOP},{MOBILE};"
        f"backend:recommend+erase:{hash_key('backend-key')}{spec}"
    )


def refused(
    presented: str | None, scope: str, origin: str | None = None, referer: str | None = None
) -> tuple[int, str]:
    with pytest.raises(AuthError) as caught:
        ring().authorise(presented, scope, origin, referer)
    return caught.value.status, caught.value.message


def test_a_bound_key_answers_its_own_pages_only() -> None:
    for origin in (SHOP, MOBILE):
        assert ring().authorise("page-key", "recommend", origin).name == "pages"
    assert refused("page-key", "recommend", OTHER) == (
        403, f"key 'pages' is bound to other origins than {OTHER}",
    )  # fmt: skip
    status, message = refused("page-key", "recommend", None)
    assert status == 403 and "no Origin or Referer" in message
    assert refused("page-key", "recommend", SHOP + "/")[0] == 403  # origins match exactly


def test_without_an_origin_the_referers_origin_counts() -> None:
    """A page on the API's own origin: browsers send no Origin on its GETs."""
    page = ring().authorise("page-key", "recommend", None, f"{SHOP}/basket?step=2")
    assert page.name == "pages"
    assert refused("page-key", "recommend", None, f"{OTHER}/x")[1].endswith(OTHER)
    assert "no Origin or Referer" in refused("page-key", "recommend", None, "not a url")[1]
    # an Origin, when there is one, is what counts
    assert refused("page-key", "recommend", OTHER, f"{SHOP}/basket")[0] == 403


def test_scopes_and_validity_come_first() -> None:
    assert refused("page-key", "erase", SHOP) == (403, "key 'pages' lacks the scope 'erase'")
    assert refused("wrong-key", "recommend", SHOP)[0] == 401
    assert refused(None, "recommend", SHOP)[0] == 401


def test_an_unbound_key_answers_from_anywhere() -> None:
    for origin in (None, SHOP, OTHER):
        assert ring().authorise("backend-key", "erase", origin).name == "backend"
    assert ring().bound_origins() == {SHOP, MOBILE}


@pytest.mark.parametrize(
    ("suffix", "fault"),
    [
        ("@*", "not to '*'"),
        ("@shop.example", "not an origin"),
        ("@https://a.example/x", "not an origin"),
    ],
)
def test_a_key_bound_to_something_else_than_origins_is_refused(suffix: str, fault: str) -> None:
    with pytest.raises(ValueError, match=fault):
        ring(suffix)


def test_a_key_bound_to_no_origin_is_refused_without_quoting_the_entry() -> None:
    """What follows '@' may be a key pasted in the wrong place: it goes to the logs."""
    with pytest.raises(ValueError, match="not an origin") as refused:
        KeyRing.parse(f"web:recommend:{hash_key('k')}@my-raw-SECRET-key")
    assert "secret" not in str(refused.value).lower()


def test_settings_refuse_keys_bound_to_origins_cors_shuts_out() -> None:
    keys = f"pages:recommend:{hash_key('k')}@{SHOP},{MOBILE}"
    with pytest.raises(SettingsError, match=f"binds keys to {MOBILE}, which MOMENTS_API_CORS"):
        Settings.from_env({"MOMENTS_API_KEYS": keys, "MOMENTS_API_CORS_ORIGINS": SHOP})
    with pytest.raises(SettingsError, match="MOMENTS_API_CORS_ORIGINS does not allow"):
        Settings.from_env({"MOMENTS_API_KEYS": keys})
    both = Settings.from_env(
        {"MOMENTS_API_KEYS": keys, "MOMENTS_API_CORS_ORIGINS": f"{SHOP},{MOBILE}"}
    )
    assert both.api_keys == keys
    assert Settings.from_env({"MOMENTS_API_KEYS": keys, "MOMENTS_API_CORS_ORIGINS": "*"})


def test_settings_name_a_malformed_key_entry_by_its_place() -> None:
    with pytest.raises(SettingsError, match="MOMENTS_API_KEYS: API key entry 2 is not name:"):
        Settings.from_env({"MOMENTS_API_KEYS": f"web:recommend:{'a' * 64};oops"})


def test_keys_set_to_no_entry_are_refused_not_a_ring_that_refuses_everyone() -> None:
    with pytest.raises(ValueError, match="no key entry"):
        KeyRing.parse(" ; ")
