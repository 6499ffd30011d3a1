"""Who a page key's request counts as: the peer, or the address a trusted proxy says it
forwarded for; never an address the client wrote itself, and never a 500."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import given
from hypothesis import strategies as st

from streams.api.auth import KeyRing
from streams.api.server import note_visitors, rate_limits
from streams.api.visitors import trusted_proxies, visitor
from streams.settings import Settings, SettingsError
from tests.unit.api_app import KEYS, SHOP, api_app

LB = trusted_proxies("10.0.0.0/8, 2001:db8:ffff::/48")


@pytest.mark.parametrize(
    ("peer", "forwarded", "counted"),
    [
        # no proxy trusted: the peer, whatever it wrote
        ("198.51.100.9", ["203.0.113.7"], "198.51.100.9"),
        ("198.51.100.9", ["10.0.0.1"], "198.51.100.9"),
        # a trusted proxy: the right-most address it was not itself told of by a proxy
        ("10.0.0.1", ["203.0.113.7"], "203.0.113.7"),
        ("10.0.0.1", ["1.2.3.4, 203.0.113.7"], "203.0.113.7"),  # 1.2.3.4: the client's own
        ("10.0.0.1", ["203.0.113.7, 10.2.3.4, 10.5.6.7"], "203.0.113.7"),  # a chain
        ("10.0.0.1", ["1.2.3.4", "203.0.113.7, 10.2.3.4"], "203.0.113.7"),  # two lines
        ("10.0.0.1", ["203.0.113.7:51234"], "203.0.113.7"),
        ("10.0.0.1", ["10.2.3.4, 10.5.6.7"], "10.2.3.4"),  # proxies all the way
        ("10.0.0.1", [], "10.0.0.1"),
        ("10.0.0.1", ["", " , "], "10.0.0.1"),
        # malformed where it is read: the peer
        ("10.0.0.1", ["203.0.113.7, unknown"], "10.0.0.1"),
        ("10.0.0.1", ["<script>"], "10.0.0.1"),
        ("10.0.0.1", ["[2001:db8::1"], "10.0.0.1"),
        ("10.0.0.1", ["203.0.113.7,, 300.1.2.3"], "10.0.0.1"),
        ("10.0.0.1", ["203.0.113.7:http"], "10.0.0.1"),
        ("10.0.0.1", ["[2001:db8::1]x"], "10.0.0.1"),
        ("10.0.0.1", ["203.0.113.7:"], "10.0.0.1"),
        # malformed left of the visitor: the client's own, not read
        ("10.0.0.1", ["unknown, 203.0.113.7"], "203.0.113.7"),
        # IPv6 by its /64; a mapped IPv4 address as IPv4
        ("2001:db8:1:2::5", [], "2001:db8:1:2::/64"),
        ("2001:db8:ffff::1", ["2001:db8:1:2:3:4:5:6"], "2001:db8:1:2::/64"),
        ("10.0.0.1", ["[2001:db8:1:2::9]:443"], "2001:db8:1:2::/64"),
        ("::ffff:10.0.0.1", ["203.0.113.7"], "203.0.113.7"),
        ("10.0.0.1", ["::ffff:203.0.113.7"], "203.0.113.7"),
        ("fe80::1%eth0", [], "fe80::/64"),
        # no address (a Unix socket): one visitor for them all
        (None, ["203.0.113.7"], ""),
        ("", [], ""),
    ],
)
def test_the_visitor_of_a_request(peer: str | None, forwarded: list[str], counted: str) -> None:
    assert visitor(peer, forwarded, LB) == counted


def test_one_ipv6_home_is_one_visitor_and_its_neighbour_another() -> None:
    home = {visitor(f"2001:db8:1:2:{n:x}::1", [], ()) for n in range(1000)}
    assert home == {"2001:db8:1:2::/64"}
    assert visitor("2001:db8:1:3::1", [], ()) != visitor("2001:db8:1:2::1", [], ())


@given(st.lists(st.text(max_size=40), max_size=4), st.sampled_from(["10.0.0.1", "192.0.2.1"]))
def test_any_header_gives_a_visitor(forwarded: list[str], peer: str) -> None:
    """Whatever the header holds, an address (or the peer): never an exception."""
    counted = visitor(peer, forwarded, LB)
    assert counted == peer or trusted_proxies(counted)  # parses as an address or network


async def test_two_visitors_of_a_page_key_behind_a_trusted_proxy_have_a_bucket_each() -> None:
    settings = Settings(api_keys=KEYS, api_cors_origins=SHOP, api_trusted_proxies="127.0.0.1",
                        api_visitor_burst=1, api_visitor_rate_per_s=0.01, api_burst=3,
                        api_rate_per_s=0.01)  # fmt: skip
    page = {"X-API-Key": "page-key", "Origin": SHOP}
    async with TestClient(TestServer(api_app(settings))) as client:

        async def posted(key: dict[str, str], forwarded_for: str) -> int:
            """400 (an empty list, read) once let through; 429 when over the rate."""
            headers = {**key, "X-Forwarded-For": forwarded_for}
            return (await client.post("/v1/outcomes", json=[], headers=headers)).status

        assert await posted(page, "203.0.113.7") == 400
        assert await posted(page, "203.0.113.7") == 429
        assert await posted(page, "203.0.113.8") == 400
        assert await posted(page, "203.0.113.8, garbage") == 400  # the peer's
        assert await posted(page, "garbage") == 429  # the peer's, spent
        assert await posted(page, "2001:db8:1:2::1") == 400
        assert await posted(page, "2001:db8:1:2::2") == 429  # the same /64
        # the back end's key is not bound to origins: one bucket, at the key's rate
        backend = {"X-API-Key": "backend-key"}
        statuses = [await posted(backend, f"192.0.2.{n}") for n in range(4)]
        assert statuses == [400, 400, 400, 429]


@pytest.mark.parametrize(
    ("host", "proxies", "warned"),
    [("0.0.0.0", "", True), ("0.0.0.0", "10.0.0.0/8", False), ("127.0.0.1", "", False)],
)
def test_page_keys_served_off_loopback_with_no_proxy_trusted_are_warned_of(
    host: str, proxies: str, warned: bool, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(api_keys=KEYS, api_cors_origins=SHOP, api_host=host,
                        api_trusted_proxies=proxies)  # fmt: skip
    note_visitors(settings, KeyRing.parse(settings.api_keys))
    assert ("MOMENTS_API_TRUSTED_PROXIES" in caplog.text) is warned
    caplog.clear()
    note_visitors(settings, KeyRing.parse(KEYS.split(";")[1]))  # no key bound to origins
    assert not caplog.text


def test_a_proxy_trusted_in_its_ipv4_mapped_form_is_trusted() -> None:
    """A peer's IPv4-mapped address is read as IPv4: a proxy named in that form was never
    trusted, and every visitor behind it shared the proxy's bucket."""
    proxies = trusted_proxies("::ffff:10.0.0.0/104")
    assert visitor("::ffff:10.1.2.3", ["203.0.113.7"], proxies) == "203.0.113.7"
    assert visitor("10.1.2.3", ["203.0.113.7"], proxies) == "203.0.113.7"


def test_visitors_take_their_keys_rate_unless_told() -> None:
    """An API behind a proxy not yet trusted sees every visitor as one: by default that one
    keeps the rate and burst its key had, rather than a person's few a second."""
    limits = rate_limits(Settings(api_rate_per_s=50.0, api_burst=80))
    assert (limits.visitors.rate, limits.visitors.burst) == (50.0, 80)
    told = rate_limits(Settings(api_visitor_rate_per_s=5.0, api_visitor_burst=30))
    assert (told.visitors.rate, told.visitors.burst) == (5.0, 30)
    assert (told.keys.rate, told.keys.burst) == (200.0, 400)


@pytest.mark.parametrize("catch_all", ["0.0.0.0/0", "::/0", "10.0.0.1, ::ffff:0.0.0.0/96"])
def test_a_trusted_network_of_every_address_is_refused_by_name(catch_all: str) -> None:
    """It was taken silently: any client could then rotate X-Forwarded-For and get a new
    visitor's bucket at each request, past a page key's per-visitor rate limit."""
    with pytest.raises(SettingsError, match=r"^MOMENTS_API_TRUSTED_PROXIES: .* every address"):
        Settings.from_env({"MOMENTS_API_TRUSTED_PROXIES": catch_all})


@pytest.mark.parametrize(
    ("proxies", "warned"),
    [("1.0.0.0/8", False), ("0.0.0.0/1", True), ("2001:db8::/32", False), ("2000::/3", True),
     ("fd00::/8", False), ("10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16", False)],
)  # fmt: skip
def test_a_broad_public_trusted_network_is_warned_of_at_start(
    proxies: str, warned: bool, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings.from_env({"MOMENTS_API_TRUSTED_PROXIES": proxies})
    note_visitors(settings, KeyRing.parse(KEYS.split(";")[1]))  # warned with any key
    said = [r.getMessage() for r in caplog.records if "broad public" in r.getMessage()]
    assert len(said) == int(warned), said
    if warned:
        assert said[0].startswith(f"MOMENTS_API_TRUSTED_PROXIES trusts {proxies},")
