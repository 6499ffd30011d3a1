"""The contract's topics, and creating them with the configured partitions."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError, NodeNotReadyError, TopicAlreadyExistsError
from aiokafka.partitioner import murmur2

from streams.kafka_security import client_options
from streams.settings import Settings
from streams.topic_checks import warn_about_topic_configs

log = logging.getLogger(__name__)

TOUCHPOINTS = "touchpoints"
OFFER_OUTCOMES = "offer-outcomes"
NEXT_BEST_OFFERS = "next-best-offers"
INTERVENTIONS = "interventions"
TOUCHPOINTS_DLQ = "touchpoints-dlq"
OFFER_OUTCOMES_DLQ = "offer-outcomes-dlq"  # an extension: outcomes not learned from
CUSTOMER_ERASURES = "customer-erasures"  # an extension: one record per erasure request
INTERVENTIONS_HELD_OUT = "interventions-held-out"  # an extension: the hold-out group's
RISK_EXAMPLES = "risk-examples"  # an extension: labelled feature snapshots, no customer ids
DEAD_LETTER_REDRIVES = "dead-letter-redrives"  # an extension: the letters sent back
ALL_TOPICS = (
    TOUCHPOINTS, OFFER_OUTCOMES, NEXT_BEST_OFFERS, INTERVENTIONS, TOUCHPOINTS_DLQ,
    OFFER_OUTCOMES_DLQ, CUSTOMER_ERASURES, RISK_EXAMPLES, INTERVENTIONS_HELD_OUT,
    DEAD_LETTER_REDRIVES,
)  # fmt: skip
# Erasures are kept for good: `moments rebuild` replays them so that the erased stay
# erased, however old the touchpoints it replays after them (one small record each).
# Neither age nor a broker-wide size limit may delete them. Re-drive records are kept as
# long as the letters they name (one small record per letter sent back).
KEPT_FOR_GOOD = {"retention.ms": "-1", "retention.bytes": "-1"}
TOPIC_CONFIGS = {CUSTOMER_ERASURES: KEPT_FOR_GOOD, DEAD_LETTER_REDRIVES: KEPT_FOR_GOOD}
_SET_ON_THE_TOPIC = 1  # DescribeConfigs' config_source for a value set on the topic itself
_TOPIC_ALREADY_EXISTS = 36  # CreateTopics' error code when another process was first
# A broker that answers but names no broker yet (one restarting, or fenced by its
# controller after a pause, re-registers within seconds): a start waits this long for it
BROKER_JOIN_WAIT_S = 30.0
_BROKER_JOIN_PAUSE_S = 0.25
_T = TypeVar("_T")


class TopicsRefused(Exception):
    """The broker refused to create a topic (it answers per topic, without raising)."""


class NoBrokerYet(NodeNotReadyError):  # type: ignore[misc]  # aiokafka's errors are untyped
    """Kafka answered with metadata that names no broker: one restarting, or fenced by
    its controller for a moment (after a pause). A broker named but not reachable (an
    advertised listener the client cannot use) is not this: it will not come by waiting."""


def keyed_partition(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner (the Java client's, aiokafka's and
    Moments' own producers') gives a record keyed ``key`` on a topic of ``partitions``.

    >>> keyed_partition(b"cust-1", 4), keyed_partition(b"cust-1", 1)
    (3, 0)
    """
    return int(murmur2(key) & 0x7FFFFFFF) % partitions


def refused_topics(topic_errors: list[Any]) -> list[str]:
    """What a CreateTopics answer refused, one line a reason with the topics it refused:
    not those made, nor those another process made first.

    >>> refused_topics([("a", 0, None), ("b", 36, "exists"), ("c", 38, "Too few brokers."),
    ...                 ("d", 38, "Too few brokers.")])
    ['c, d: Too few brokers. (error 38)']
    """
    by_reason: dict[tuple[int, str], list[str]] = {}
    for topic, code, *message in topic_errors:
        if code not in (0, _TOPIC_ALREADY_EXISTS):
            said = message[0] if message and message[0] else "no reason given"
            by_reason.setdefault((code, said), []).append(topic)
    return [f"{', '.join(topics)}: {said} (error {code})"
            for (code, said), topics in by_reason.items()]  # fmt: skip


async def ensure_topics(settings: Settings, partitions: int | None = None) -> list[str]:
    """Create any missing contract topics; returns the names created.

    Topics that exist already get :data:`TOPIC_CONFIGS` where they have no value of their
    own (see :func:`keep_topic_configs`). A cluster whose broker is still joining it is
    waited for (:func:`once_a_broker_joins`).
    """
    attempt = functools.partial(_ensure_topics, settings, partitions)
    bootstrap = settings.kafka_bootstrap
    return await once_a_broker_joins(attempt, bootstrap, BROKER_JOIN_WAIT_S, _BROKER_JOIN_PAUSE_S)


async def once_a_broker_joins(
    attempt: Callable[[], Awaitable[_T]],
    bootstrap: str,
    wait_s: float,
    pause_s: float,
) -> _T:
    """``attempt()``, made again while Kafka answers but names no broker yet
    (:class:`NoBrokerYet`), for ``wait_s`` at most; other errors, and that one once the
    time is up, are raised.

    >>> tries = []
    >>> async def attempt() -> int:
    ...     tries.append(1)
    ...     if len(tries) < 3:
    ...         raise NoBrokerYet("no broker named")
    ...     return len(tries)
    >>> asyncio.run(once_a_broker_joins(attempt, "k:9092", wait_s=5, pause_s=0))
    3
    """
    deadline = time.monotonic() + wait_s
    said = False
    while True:
        try:
            return await attempt()
        except NoBrokerYet:
            if time.monotonic() + pause_s > deadline:
                raise
            if not said:
                log.warning("Kafka at %s answers but names no broker yet (one restarting, "
                            "or rejoining its cluster); waiting up to %.0f s",
                            bootstrap, wait_s)  # fmt: skip
                said = True
            await asyncio.sleep(pause_s)


async def _ensure_topics(settings: Settings, partitions: int | None) -> list[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, **client_options())
    await admin.start()
    try:
        if not admin._client.cluster.brokers():  # the admin client's API does not tell
            raise NoBrokerYet("the metadata Kafka answered with names no broker")
        existing = set(await admin.list_topics())
        for name, configs in TOPIC_CONFIGS.items():
            if settings.topic(name) in existing:
                await keep_topic_configs(admin, settings.topic(name), configs)
        if settings.topic(TOUCHPOINTS) in existing:
            await _warn_if_few_partitions(admin, settings)
            await warn_about_topic_configs(admin, settings)
        wanted = [t for t in ALL_TOPICS if settings.topic(t) not in existing]
        if not wanted:
            return []
        new = [
            NewTopic(
                settings.topic(name),
                num_partitions=partitions or settings.topic_partitions,
                replication_factor=settings.topic_replication,
                topic_configs=TOPIC_CONFIGS.get(name),
            )
            for name in wanted
        ]
        created: list[str] = []
        with contextlib.suppress(TopicAlreadyExistsError):  # another worker was first
            answer = await admin.create_topics(new)
            refused = refused_topics(answer.topic_errors)
            if refused:  # left to the broker, they would come with its defaults
                raise TopicsRefused(
                    "the broker refused to create "
                    + "; ".join(refused)
                    + " (see MOMENTS_TOPIC_PARTITIONS and MOMENTS_TOPIC_REPLICATION)"
                )
            # those another process made first (starting at the same moment) are not ours
            created = [topic for topic, code, *_ in answer.topic_errors if code == 0]
        if created:
            log.info("created topics %s", ", ".join(created))
        return created
    finally:
        await admin.close()


async def _warn_if_few_partitions(admin: AIOKafkaAdminClient, settings: Settings) -> int:
    """Warn when ``touchpoints`` has fewer partitions than ``MOMENTS_TOPIC_PARTITIONS``
    (made by a producer with the broker's default, or by hand): no more workers than it
    has partitions take part, and one more is never ready (a rollout that starts no
    worker before stopping one stalls). Its partition count (0: not described)."""
    topic = settings.topic(TOUCHPOINTS)
    try:
        described = await admin.describe_topics([topic])
    except KafkaError:  # no word: said nothing
        return 0
    found = next((len(t.get("partitions", [])) for t in described if t.get("topic") == topic), 0)
    if 0 < found < settings.topic_partitions:
        log.warning(
            "topic %s has %d partitions, fewer than MOMENTS_TOPIC_PARTITIONS (%d): at most "
            "%d workers take part, and another is never ready (a rollout or autoscaler "
            "counting on %d stalls); lower the setting, or add partitions to it with no "
            "records waiting (stop the producers, let the workers catch up, add them, start "
            "the producers again): a customer's newer records go to another partition from "
            "then on, and may be handled before their older ones still waiting",
            topic, found, settings.topic_partitions, found, settings.topic_partitions,
        )  # fmt: skip
    return found


async def keep_topic_configs(
    admin: AIOKafkaAdminClient, topic: str, configs: dict[str, str]
) -> dict[str, str]:
    """Give an existing topic ``configs`` where it follows the broker's defaults.

    A topic made by an older Moments, or by hand, may lack them (``customer-erasures``
    then loses erasure records to the default retention). A value set on the topic itself
    is the operator's: it is kept, with a warning. Never fails: when the broker refuses,
    the warning says what to set. Returns what was set.
    """
    try:
        (described,) = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic)]
        )
        resource = described.to_object()["resources"][0]
        if resource["error_code"]:
            raise KafkaError(f"{resource['error_message']} (error {resource['error_code']})")
        entries = resource["config_entries"]
        own = {e["config_names"]: e for e in entries if _set_on_the_topic(e)}
        current = {e["config_names"]: e["config_value"] for e in entries}
        for name, value in configs.items():
            if name in own and own[name]["config_value"] != value:
                log.warning(
                    "topic %s has %s=%s set on it; Moments wants %s and leaves it as it is",
                    topic, name, own[name]["config_value"], value,
                )  # fmt: skip
        missing = {n: v for n, v in configs.items() if n not in own and current.get(n) != v}
        if not missing:
            return {}
        if any(e["config_value"] is None for e in own.values()):
            raise KafkaError("it has sensitive settings of its own, which a change would drop")
        # AlterConfigs replaces every value set on the topic: send the topic's own too.
        kept = {n: e["config_value"] for n, e in own.items()}
        (altered,) = await admin.alter_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic, kept | missing)]
        )
        error_code, error_message = altered.resources[0][:2]
        if error_code:
            raise KafkaError(f"{error_message} (error {error_code})")
    except KafkaError as exc:
        wanted = ",".join(f"{n}={v}" for n, v in configs.items())
        log.warning(
            "could not give topic %s %s: %s; set it with kafka-configs.sh --alter "
            "--entity-type topics --entity-name %s --add-config %s",
            topic, wanted, exc, topic, wanted,
        )  # fmt: skip
        return {}
    log.warning("topic %s followed the broker's defaults; set %s", topic, missing)
    return missing


def _set_on_the_topic(entry: dict[str, Any]) -> bool:
    if "config_source" in entry:
        return bool(entry["config_source"] == _SET_ON_THE_TOPIC)
    return not entry["is_default"] and not entry["read_only"]  # DescribeConfigs v0


async def topic_names(bootstrap: str) -> set[str]:
    """Every topic the cluster holds (asking for none by name, so none is created)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **client_options())
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


async def topic_partitions(bootstrap: str, topic: str) -> list[int]:
    """The partitions of a topic; none when it does not exist.

    Asked of the whole cluster's metadata: a consumer subscribing to a topic that does
    not exist makes a broker with ``auto.create.topics.enable`` (the default) create it,
    with the broker's defaults (a prefix mistyped made every topic anew, empty).
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **client_options())
    await admin.start()
    try:
        for found in await admin.describe_topics():
            if found["topic"] == topic:
                return sorted(int(p["partition"]) for p in found["partitions"])
        return []
    finally:
        await admin.close()
