"""A Redis Cluster in flux (a failover, a resharding) is an outage of the feature store,
waited out, never an error of the events: redis-py turns the cluster's CLUSTERDOWN,
MASTERDOWN and TRYAGAIN replies into its own exception classes (their first word
stripped), and raises its own errors for redirections that never settle and for slots
no node serves yet.

The cluster client here is a stand-in that answers each round trip with the replies
redis-py would give; the store on a real cluster is tested in ``tests/integration``.
"""

from __future__ import annotations

from typing import Any

import pytest
from redis._parsers.base import BaseParser
from redis.exceptions import (
    ClusterError,
    RedisClusterException,
    ResponseError,
    SlotNotCoveredError,
)

from agents.catalogue_holder import CatalogueHolder
from agents.contact_policy import ContactPolicy
from agents.control_group import ControlGroup
from agents.letters import SourceRecord
from agents.offer_rules import RuleBasedOfferPolicy
from agents.touchpoint_handler import TouchpointHandler
from feature_store import FeatureStore, StoreConfig, StoreUnavailable
from feature_store.redis_errors import raise_failed, transient
from schemas import Offer, OfferCatalogue, WebClick, encode_touchpoint
from tests.unit.factories import T0


def redis_error(reply: str) -> Exception:
    """The exception redis-py makes of an error reply read from the wire."""
    error: Exception = BaseParser.parse_error(reply)
    return error


CLUSTER_IN_FLUX = [
    redis_error("CLUSTERDOWN The cluster is down"),
    redis_error("CLUSTERDOWN Hash slot not served"),
    redis_error("MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'."),
    redis_error("TRYAGAIN Multiple keys request during rehashing of slot"),
    ClusterError("TTL exhausted."),  # redirections that never settled
    SlotNotCoveredError('Slot "5798" is not covered by the cluster.'),
    # no node reached: redis-py's own error, raised before any command is sent
    RedisClusterException(
        "Redis Cluster cannot be connected. Please provide at least one reachable node: "
        "Error 111 connecting to 127.0.0.1:7000. Connection refused."
    ),
]


@pytest.mark.parametrize("error", CLUSTER_IN_FLUX, ids=lambda e: type(e).__name__)
def test_a_cluster_in_flux_is_unavailable_not_a_bad_call(error: Exception) -> None:
    assert transient(error)
    with pytest.raises(StoreUnavailable):
        raise_failed([1, error])


def test_a_call_the_cluster_client_cannot_route_is_a_bad_call() -> None:
    assert not transient(RedisClusterException("EVAL - all keys must map to the same key slot"))


def test_redis_py_strips_the_word_the_store_used_to_look_for() -> None:
    down = redis_error("CLUSTERDOWN The cluster is down")
    assert str(down) == "The cluster is down" and isinstance(down, ResponseError)
    assert not transient(redis_error("CROSSSLOT Keys in request don't hash to the same slot"))


class ClusterReplying:
    """A stand-in for redis-py's cluster client: every pipeline answers ``replies``
    (errors as values, or the first one raised, as redis-py's pipelines do)."""

    def __init__(self, replies: list[Any]) -> None:
        self.replies = replies
        self.sent: list[tuple[Any, ...]] = []

    def pipeline(self, transaction: bool = False) -> ClusterReplying:
        return self

    def execute_command(self, *args: Any) -> None:
        self.sent.append(args)

    def hget(self, *args: Any) -> None:
        self.execute_command("HGET", *args)

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        sent, self.sent = self.sent, []
        replies = [self.replies[i % len(self.replies)] for i in range(len(sent))]
        if raise_on_error:
            raise_failed_as_redis_py(replies)
        return replies

    async def script_load(self, source: str) -> str:
        return "sha"

    async def aclose(self) -> None:
        return None


def raise_failed_as_redis_py(replies: list[Any]) -> None:
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply


def store_on(client: ClusterReplying) -> FeatureStore:
    return FeatureStore(client, StoreConfig(secret=b"cluster"))  # type: ignore[arg-type]


@pytest.mark.parametrize("error", CLUSTER_IN_FLUX, ids=lambda e: type(e).__name__)
async def test_feature_updates_on_a_cluster_in_flux_wait_for_it(error: Exception) -> None:
    with pytest.raises(StoreUnavailable):
        await store_on(ClusterReplying([error])).apply([click("e1")])


async def test_good_events_are_not_dead_lettered_during_a_cluster_failover() -> None:
    catalogue = OfferCatalogue(
        version="t", offers=[Offer(offer_id="any", title="Any", channels=["web"], value=1.0)]
    )
    policy = RuleBasedOfferPolicy(CatalogueHolder(catalogue), ContactPolicy(ControlGroup("t", 0)))
    down = redis_error("CLUSTERDOWN The cluster is down")
    handler = TouchpointHandler(store_on(ClusterReplying([down])), policy, clock=lambda: T0)
    record = SourceRecord("touchpoints", 0, 1, b"cust-1", encode_touchpoint(click("e1")))
    with pytest.raises(StoreUnavailable):  # the batch waits; nothing is dead-lettered
        await handler.handle([record])


async def test_model_snapshot_reads_on_a_cluster_in_flux_wait_for_it() -> None:
    store = store_on(ClusterReplying([redis_error("MASTERDOWN Link with MASTER is down")]))
    with pytest.raises(StoreUnavailable):
        await store.models.version("offers")


def click(event_id: str) -> WebClick:
    return WebClick(event_id=event_id, customer_id="cust-1", ts=T0, page="/")
