"""What a worker and the API check of the event topics' own settings at start: that
Kafka keeps every record of them (no compaction), and no longer than Moments remembers
which events it applied and whom it erased."""

from __future__ import annotations

import logging
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError

from streams.kafka_security import client_options
from streams.settings import Settings

log = logging.getLogger(__name__)

DAY_MS = 86_400_000
_UNKNOWN_TOPIC = 3  # DescribeConfigs' error for a topic that does not exist (yet)
# Event logs: each record counts, not only a customer's newest (they are keyed by customer).
EVENT_LOGS = ("touchpoints", "offer-outcomes", "next-best-offers", "interventions",
              "touchpoints-dlq")  # fmt: skip


def topic_faults(topic: str, configs: dict[str, str | None], settings: Settings) -> list[str]:
    """What is wrong with ``configs`` (a topic's settings, as described) for the event
    log ``topic`` (unprefixed).

    >>> s = Settings()
    >>> topic_faults("touchpoints", {"cleanup.policy": "compact,delete"}, s)[0][:40]
    'it is compacted (cleanup.policy=compact,'
    >>> topic_faults("touchpoints", {"cleanup.policy": "delete", "retention.ms": "-1"}, s)[0][:46]
    'it keeps records for ever (retention.ms=-1), b'
    >>> topic_faults("touchpoints", {"retention.ms": str(7 * DAY_MS)}, s)
    []
    """
    faults = []
    if "compact" in (configs.get("cleanup.policy") or ""):
        faults.append(
            f"it is compacted (cleanup.policy={configs['cleanup.policy']}): Kafka keeps only "
            "each customer's newest record, and `moments rebuild` or a re-drive would miss "
            "the others (a consent withdrawal among them); set cleanup.policy=delete"
        )
    if topic != "touchpoints":
        return faults
    try:
        retention_ms = int(configs.get("retention.ms") or 0)
    except ValueError:
        return faults
    kept = "for ever" if retention_ms < 0 else f"{retention_ms / DAY_MS:g} days"
    for days, setting, what, then in (
        (settings.dedupe_horizon_days, "MOMENTS_DEDUPE_HORIZON_DAYS", "which events it applied",
         "records older than that, read again (a new MOMENTS_APP_ID, committed offsets "
         "expired), are applied twice"),
        (settings.tombstone_days, "MOMENTS_TOMBSTONE_DAYS", "whom it erased",
         "an erased customer's records, read again after that, make them anew"),
    ):  # fmt: skip
        if retention_ms < 0 or retention_ms > days * DAY_MS:
            fix = (f"give the topic a retention, and raise {setting} above it"
                   if retention_ms < 0 else f"raise {setting} above the retention")  # fmt: skip
            faults.append(
                f"it keeps records {kept} (retention.ms={retention_ms}), but Moments "
                f"remembers {what} for {days} days ({setting}): {then}; {fix}"
            )
    return faults


async def warn_about_topic_configs(admin: AIOKafkaAdminClient, settings: Settings) -> list[str]:
    """Log a warning for each fault of the existing event topics' settings (see
    :func:`topic_faults`); returns them. Never fails: a broker that does not describe
    them is said in a warning."""
    names = {settings.topic(t): t for t in EVENT_LOGS}
    try:
        described = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]
        )
        resources: list[dict[str, Any]] = [
            r for answer in described for r in answer.to_object()["resources"]
        ]
    except KafkaError as exc:
        log.warning("could not read the topics' settings (%s)", type(exc).__name__)
        return []
    said = []
    for resource in resources:
        name = resource["resource_name"]
        if resource["error_code"] == _UNKNOWN_TOPIC or name not in names:  # made as wanted
            continue
        if resource["error_code"]:  # refused (an ACL without DescribeConfigs), say
            log.warning("could not read the settings of topic %s: %s (error %d)", name,
                        resource["error_message"], resource["error_code"])  # fmt: skip
            continue
        configs = {e["config_names"]: e["config_value"] for e in resource["config_entries"]}
        for fault in topic_faults(names[name], configs, settings):
            log.warning("topic %s: %s", name, fault)
            said.append(f"{name}: {fault}")
    return said


async def warn_about_event_topics(settings: Settings) -> list[str]:
    """:func:`warn_about_topic_configs` on a client of its own (a command's start)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, **client_options())
    await admin.start()
    try:
        return await warn_about_topic_configs(admin, settings)
    finally:
        await admin.close()
