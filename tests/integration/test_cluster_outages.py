"""A Redis Cluster that answers CLUSTERDOWN (a master lost, a failover under way) is an
outage: the feature store waits for it, and good events are not dead-lettered for it."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from agents.catalogue_holder import CatalogueHolder
from agents.contact_policy import ContactPolicy
from agents.control_group import ControlGroup
from agents.letters import SourceRecord
from agents.offer_rules import RuleBasedOfferPolicy
from agents.touchpoint_handler import TouchpointHandler
from feature_store import ApplyStatus, FeatureStore, StoreConfig, StoreUnavailable
from schemas import Offer, OfferCatalogue, WebClick, encode_touchpoint
from streams.services.local_redis import LocalRedisCluster
from tests.unit.factories import T0

pytestmark = pytest.mark.integration

CATALOGUE = OfferCatalogue(
    version="t", offers=[Offer(offer_id="any", title="Any", channels=["web"], value=1.0)]
)


def click(event_id: str) -> WebClick:
    return WebClick(event_id=event_id, customer_id="cust-down", ts=T0, page="/")


async def cluster_state(node: aioredis.Redis, wanted: str) -> None:
    for _ in range(200):
        if (await node.cluster("INFO"))["cluster_state"] == wanted:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the node never said cluster_state:{wanted}")


async def test_a_cluster_that_is_down_is_waited_for_not_blamed_on_the_events(
    cluster: LocalRedisCluster,
) -> None:
    client = aioredis.RedisCluster.from_url(cluster.url, decode_responses=True)
    store = FeatureStore(client, StoreConfig(secret=b"outages"), clock=T0.timestamp)
    policy = RuleBasedOfferPolicy(CatalogueHolder(CATALOGUE), ContactPolicy(ControlGroup("t", 0)))
    handler = TouchpointHandler(store, policy, clock=lambda: T0)
    assert await store.apply([click("before")]) == [ApplyStatus.APPLIED]
    key = f"m:{{{store.pseudonym('cust-down')}}}:p"
    slot = await client.cluster_keyslot(key)
    owner = client.get_node_from_key(key)
    assert owner is not None
    node = aioredis.Redis(host=owner.host, port=owner.port, decode_responses=True)
    await node.execute_command("CLUSTER", "DELSLOTS", slot)  # the slot is served by nobody
    try:
        await cluster_state(node, "fail")
        with pytest.raises(StoreUnavailable):
            await store.apply([click("during")])
        record = SourceRecord("touchpoints", 0, 1, b"cust-down", encode_touchpoint(click("during")))
        with pytest.raises(StoreUnavailable):  # the batch waits: nothing is dead-lettered
            await handler.handle([record])
        with pytest.raises(StoreUnavailable):  # a model snapshot kept in the same slot
            await store.models.version(store.pseudonym("cust-down"))
    finally:
        await node.execute_command("CLUSTER", "ADDSLOTS", slot)
    await cluster_state(node, "ok")
    assert await store.apply([click("during")]) == [ApplyStatus.APPLIED]  # once, after it
    await node.aclose()
    await store.close()
