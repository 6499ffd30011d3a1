"""A Redis Cluster that answers CLUSTERDOWN (a master lost, a failover under way) is an
outage: the feature store waits for it, and good events are not dead-lettered for it."""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import time
from pathlib import Path

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
from streams.services.local_redis import LocalRedis, LocalRedisCluster
from streams.services.processes import free_cluster_port
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


async def test_a_frozen_master_fails_calls_within_a_few_timeouts_not_minutes(
    tmp_path: Path,
) -> None:
    """A master that stops answering (a hung host): redis-py's cluster client retried a
    round trip that timed out ten times, so the calls sharing one with that node, other
    masters' customers' too, took 78 s with the store's 5 s timeout (15 times it), and the
    worker said nothing of an outage meanwhile. One retry now: about four times it."""
    cluster = LocalRedisCluster(tmp_path / "cluster")
    cluster.start()
    store = FeatureStore.from_url(cluster.url, StoreConfig(secret=b"frozen"), cluster=True,
                                  clock=T0.timestamp, timeout_s=1.0)  # fmt: skip
    customers = [f"cust-{i}" for i in range(60)]
    try:
        await store.apply([WebClick(event_id=f"e-{c}", customer_id=c, ts=T0, page="/")
                           for c in customers])  # fmt: skip
        admin = await aioredis.RedisCluster.from_url(cluster.url).initialize()
        port = {c: admin.get_node_from_key(f"m:{{{store.pseudonym(c)}}}:p").port
                for c in customers}  # fmt: skip
        await admin.aclose()
        frozen = cluster.nodes[2]
        on_frozen = next(c for c in customers if port[c] == frozen.port)
        elsewhere = [c for c in customers if port[c] != frozen.port][:3]
        assert frozen.process is not None
        frozen.process.proc.send_signal(signal.SIGSTOP)
        try:
            started = time.monotonic()

            async def read(customer: str, after_s: float) -> BaseException | None:
                await asyncio.sleep(after_s)
                try:
                    await store.read(customer)
                except StoreUnavailable as exc:
                    return exc
                return None

            outcomes = await asyncio.gather(  # the later ones share a round trip
                read(on_frozen, 0), read(on_frozen, 0.05), *(read(c, 0.05) for c in elsewhere)
            )
            took = time.monotonic() - started
        finally:
            frozen.process.proc.send_signal(signal.SIGCONT)
        assert isinstance(outcomes[0], StoreUnavailable)
        assert took < 8, took  # 4 to 5 s here; 15 s and more with ten retries
    finally:
        await store.close()
        cluster.stop()


async def test_a_frozen_master_is_not_ready_whichever_it_is(tmp_path: Path) -> None:
    """redis-py's PING asks one node (the one holding slot 0): a lost or frozen other
    master, whose customers' recommendations all fell back, left /readyz saying Redis
    was ok, and the API's log silent, for the whole failover."""
    cluster = LocalRedisCluster(tmp_path / "cluster")
    cluster.start()
    store = FeatureStore.from_url(cluster.url, StoreConfig(secret=b"ping"), cluster=True,
                                  clock=T0.timestamp, timeout_s=1.0)  # fmt: skip
    admin = await aioredis.RedisCluster.from_url(cluster.url).initialize()
    try:
        assert await store.ping() is True
        asked = admin.get_default_node()
        others = [n for n in admin.get_primaries() if n.port != asked.port]
        frozen = next(n for n in cluster.nodes if n.port == others[0].port)
        assert frozen.process is not None
        frozen.process.proc.send_signal(signal.SIGSTOP)
        try:
            started = time.monotonic()
            with pytest.raises(StoreUnavailable):
                await store.ping()
            assert time.monotonic() - started < 3
        finally:
            frozen.process.proc.send_signal(signal.SIGCONT)
        for _ in range(100):  # back once it answers again
            try:
                if await store.ping():
                    break
            except StoreUnavailable:
                await asyncio.sleep(0.1)
        assert await store.ping() is True
    finally:
        await admin.aclose()
        await store.close()
        cluster.stop()


async def test_after_a_failover_the_ping_asks_the_new_primary(tmp_path: Path) -> None:
    """A master frozen and failed over to its replica: the store's ping kept asking the
    frozen one, and /readyz said Redis was down for good after the cluster served every
    slot again (its 1 s bound cancelled the PING before redis-py would read the cluster's
    map again)."""
    cli = shutil.which("redis-cli") or "/usr/bin/redis-cli"
    nodes = []
    for i in range(6):  # three masters, a replica each, failing over within about 2 s
        node = LocalRedis(tmp_path / f"n{i}", port=free_cluster_port(), appendonly=False)
        node.extra_args = ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                           "--cluster-node-timeout", "1000"]  # fmt: skip
        node.start()
        nodes.append(node)
    store = None
    try:
        create = [cli, "--cluster", "create", *(f"127.0.0.1:{n.port}" for n in nodes),
                  "--cluster-replicas", "1", "--cluster-yes"]  # fmt: skip
        made = await asyncio.to_thread(subprocess.run, create, capture_output=True, text=True)
        assert made.returncode == 0, made.stdout + made.stderr
        admin = await aioredis.RedisCluster.from_url(nodes[0].url.rsplit("/", 1)[0]).initialize()
        for _ in range(200):  # every replica in sync with its master
            roles = [await admin.execute_command("INFO", "replication", target_nodes=n)
                     for n in admin.get_replicas()]  # fmt: skip
            if len(roles) == 3 and all(r.get("master_link_status") == "up" for r in roles):
                break
            await asyncio.sleep(0.1)
        asked = admin.get_default_node()
        frozen_port = next(n.port for n in admin.get_primaries() if n.port != asked.port)
        await admin.aclose()
        store = FeatureStore.from_url(nodes[0].url.rsplit("/", 1)[0], StoreConfig(secret=b"f"),
                                      cluster=True, clock=T0.timestamp)  # fmt: skip
        assert await store.ping() is True
        frozen = next(n for n in nodes if n.port == frozen_port)
        assert frozen.process is not None
        frozen.process.proc.send_signal(signal.SIGSTOP)
        try:
            with pytest.raises(StoreUnavailable):
                await store.ping()
            answered = None
            for _ in range(60):  # the replica takes over within a few seconds
                try:
                    answered = await store.ping()
                    break
                except StoreUnavailable:
                    await asyncio.sleep(0.5)
            assert answered is True, "the ping never asked the new primary"
        finally:
            frozen.process.proc.send_signal(signal.SIGCONT)
    finally:
        if store is not None:
            await store.close()
        for node in nodes:
            node.stop()
