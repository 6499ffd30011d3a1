"""API keys bound to the channels their ``recommend`` scope may ask recommendations for
(``name:recommend=web+outcomes:sha256hex``): a web page's key, which its visitors can
read, asked for ``channel=email`` (sms, call) and so kept made-up ids 30 days and spent
real customers' caps and the offers' budgets. Entries without channels are as before."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from aiohttp.test_utils import TestClient, TestServer

from agents.catalogue_holder import CatalogueHolder
from schemas import NextBestOffer, Offer, OfferCatalogue
from streams.api.auth import ApiKey, AuthError, KeyRing, check_channel, hash_key
from streams.api.openapi import openapi_document
from streams.settings import Settings, SettingsError
from tests.unit.api_app import api_app

SHOP = "https://shop.example"
PAGE, CRM, OLD = hash_key("page-key"), hash_key("crm-key"), hash_key("old-key")


def refusal(key: ApiKey, channel: str) -> str:
    with pytest.raises(AuthError) as refused:
        check_channel(key, channel)
    assert refused.value.status == 403 and refused.value.key_name == key.name
    return refused.value.message


def test_a_key_bound_to_channels_asks_for_those_only() -> None:
    ring = KeyRing.parse(
        f"pages:recommend=web+outcomes:{PAGE}@{SHOP};crm:recommend=sms,email:{CRM}"
    )
    page = ring.authorise("page-key", "recommend", SHOP)
    assert page.channels == {"web"} and page.scopes == {"recommend", "outcomes"}
    assert page.origins == {SHOP}
    check_channel(page, "web")
    for channel in ("email", "sms", "call"):
        assert refusal(page, channel) == (
            f"key 'pages' may ask recommendations for web only, not for {channel}"
        )
    crm = ring.authorise("crm-key", "recommend")
    check_channel(crm, "email")
    check_channel(crm, "sms")
    # named in the channels' own order, whatever the entry's
    told = refusal(crm, "web")
    assert told == "key 'crm' may ask recommendations for email, sms only, not for web"


@pytest.mark.parametrize(
    "entry",
    [
        f"old:recommend:{OLD}",
        f"old:recommend+outcomes:{OLD}@{SHOP}",
        f"old:ingest+recommend+profile-read:{OLD}",
    ],
)
def test_an_entry_without_channels_asks_for_every_channel_as_before(entry: str) -> None:
    key = KeyRing.parse(entry).authorise("old-key", "recommend", SHOP)
    assert key.channels == frozenset()
    for channel in ("web", "email", "sms", "call"):
        check_channel(key, channel)


def test_the_development_key_asks_for_every_channel() -> None:
    key = KeyRing.development().authorise("moments-dev-key", "recommend")
    for channel in ("web", "email", "sms", "call"):
        check_channel(key, channel)


def test_channels_bind_recommendations_only_not_the_keys_other_scopes() -> None:
    ring = KeyRing.parse(f"pages:recommend=web+outcomes:{PAGE}")
    assert ring.authorise("page-key", "outcomes").name == "pages"
    with pytest.raises(AuthError, match="lacks the scope 'ingest'"):
        ring.authorise("page-key", "ingest")


@pytest.mark.parametrize(
    ("scopes", "words"),
    [
        ("recommend=mail", r"API key 'k': unknown channels \['mail'\]"),
        ("recommend=web,phone+outcomes", r"unknown channels \['phone'\]"),
        ("recommend=WEB", "unknown channels"),  # names are lower case, as in requests
        ("recommend=", "'recommend=' names no channels"),
        ("recommend= , ", "'recommend=' names no channels"),
        ("recommend=web+recommend=email", "'recommend=' is given twice"),
        ("outcomes=web+recommend", "only the scope 'recommend' takes channels"),
        ("recommend=web+delete", r"unknown scopes \['delete'\]"),
    ],
)
def test_a_channel_list_that_is_unknown_or_misplaced_is_refused_at_start(
    scopes: str, words: str
) -> None:
    entry = f"k:{scopes}:{PAGE}"
    with pytest.raises(ValueError, match=words):
        KeyRing.parse(entry)
    with pytest.raises(SettingsError, match="MOMENTS_API_KEYS: .*" + words):
        Settings.from_env({"MOMENTS_API_KEYS": entry})


@pytest.mark.parametrize(
    "scopes",
    ["recommend=the-raw-secret-key-0123456789abcdef", "the-raw-secret-key-0123=web"],
)
def test_a_key_pasted_where_channels_go_is_not_quoted_back(scopes: str) -> None:
    with pytest.raises(SettingsError) as refused:
        Settings.from_env({"MOMENTS_API_KEYS": f"k:{scopes}:{PAGE}"})
    assert "the-raw-secret-key" not in str(refused.value)


def test_keys_of_one_name_must_be_bound_to_the_same_channels() -> None:
    """They share the name's rate limit, as a key being rotated out and its successor."""
    with pytest.raises(ValueError, match="'pages' is given twice, with other scopes, channels"):
        KeyRing.parse(f"pages:recommend=web:{PAGE};pages:recommend:{CRM}")
    with pytest.raises(ValueError, match="given twice"):
        KeyRing.parse(f"pages:recommend=web:{PAGE};pages:recommend=web,email:{CRM}")
    same = KeyRing.parse(f"pages:recommend=web:{PAGE};pages:recommend=web:{CRM}")
    assert same.authorise("crm-key", "recommend").channels == {"web"}


class Deciding:
    """A recommender stand-in that decides nothing, and keeps what it was asked."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, str]] = []

    async def recommend(self, customer_id: str, channel: str, limit: int) -> NextBestOffer:
        self.asked.append((customer_id, channel))
        return NextBestOffer(decision_id=f"d-{len(self.asked)}", customer_id=customer_id,
                             ts=datetime(2026, 12, 6, tzinfo=UTC), channel=channel,
                             trigger_event_id=None, catalogue_version="1", offers=[])  # fmt: skip


async def test_the_view_refuses_a_channel_outside_the_key_before_deciding() -> None:
    keys = f"pages:recommend=web:{PAGE}@{SHOP};backend:recommend:{CRM}"
    recommender = Deciding()
    metrics = SimpleNamespace(
        decided=lambda *a: SimpleNamespace(inc=lambda: None), offers_in=lambda decision: None
    )
    catalogue = CatalogueHolder(OfferCatalogue(version="1", offers=[
        Offer(offer_id="shop", title="Sale", channels=["web"])]))  # fmt: skip
    app = api_app(Settings(api_keys=keys, api_cors_origins=SHOP), recommender=recommender,
                  metrics=metrics, catalogue=catalogue)  # fmt: skip
    page = {"X-API-Key": "page-key", "Origin": SHOP}
    path = "/v1/customers/c1/recommendations?channel="
    async with TestClient(TestServer(app)) as client:
        for channel in ("email", "sms", "call"):
            reply = await client.get(path + channel, headers=page)
            assert reply.status == 403
            assert await reply.json() == {
                "error": "forbidden",
                "message": f"key 'pages' may ask recommendations for web only, not for {channel}",
            }
        # a channel that is none is the same 400 for every key
        reply = await client.get(path + "fax", headers=page)
        assert reply.status == 400 and (await reply.json())["error"] == "invalid_channel"
        assert recommender.asked == []
        # the web, for the page's key; every channel for a key bound to none
        assert (await client.get(path + "web", headers=page)).status == 200
        for channel in ("web", "email", "sms", "call"):
            reply = await client.get(path + channel, headers={"X-API-Key": "crm-key"})
            assert reply.status == 200
    assert recommender.asked == [("c1", c) for c in ("web", "web", "email", "sms", "call")]


def test_the_description_says_a_channel_outside_the_key_is_a_403() -> None:
    document = json.loads(openapi_document(Settings()))
    answers = document["paths"]["/v1/customers/{customer_id}/recommendations"]["get"]
    refused = answers["responses"]["403"]
    assert "other channels" in refused["description"]
    assert refused["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Error"
    }
