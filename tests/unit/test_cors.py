"""Which origins get CORS headers, and what a preflight answers (streams/api/cors.py)."""

from __future__ import annotations

import pytest

from streams.api.cors import CorsPolicy
from streams.api.origins import parse_origins
from streams.settings import Settings, SettingsError


def test_only_configured_origins_are_allowed() -> None:
    policy = CorsPolicy(parse_origins("https://shop.example, http://localhost:3000/"))
    assert policy.allowed("https://shop.example") == "https://shop.example"
    assert policy.allowed("http://localhost:3000") == "http://localhost:3000"
    assert policy.allowed("https://shop.example.evil.test") is None
    assert policy.allowed("http://shop.example") is None  # the scheme counts
    assert policy.allowed(None) is None


def test_an_origin_written_with_leading_zeros_in_its_port_matches_what_browsers_send() -> None:
    policy = CorsPolicy(parse_origins("http://localhost:03000, https://shop.example:0443"))
    assert policy.allowed("http://localhost:3000") == "http://localhost:3000"
    assert policy.allowed("https://shop.example") == "https://shop.example"


@pytest.mark.parametrize("port", ["0", "00", "65536", "99999"])
def test_a_port_no_origin_can_have_is_refused(port: str) -> None:
    with pytest.raises(ValueError, match="not an origin"):
        parse_origins(f"http://localhost:{port}")


def test_a_star_allows_any_origin_and_says_so() -> None:
    policy = CorsPolicy(parse_origins("*"))
    assert policy.allowed("https://anyone.example") == "*"
    assert policy.headers("*")["Access-Control-Allow-Origin"] == "*"


def test_preflight_names_the_paths_methods_and_the_headers_browsers_may_send() -> None:
    headers = CorsPolicy(frozenset({"https://a.example"}), max_age_s=60).preflight(
        "https://a.example", ["GET", "DELETE"]
    )
    assert headers["Access-Control-Allow-Methods"] == "GET, DELETE, OPTIONS"
    allowed = "Authorization, X-API-Key, Content-Type, Content-Encoding, Last-Event-ID"
    assert headers["Access-Control-Allow-Headers"] == allowed
    assert headers["Access-Control-Max-Age"] == "60" and headers["Vary"] == "Origin"


@pytest.mark.parametrize("raw", ["shop.example", "https://shop.example/path", "ftp://x.example"])
def test_settings_refuse_what_is_not_an_origin(raw: str) -> None:
    with pytest.raises(SettingsError, match="MOMENTS_API_CORS_ORIGINS: not an origin"):
        Settings.from_env({"MOMENTS_API_CORS_ORIGINS": raw})
    assert Settings.from_env({}).api_cors_origins == ""  # none by default
