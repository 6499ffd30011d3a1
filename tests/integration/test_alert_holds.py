"""Alerts held back by a transaction a producer left open in ``interventions`` are told:
how long in moments_alerts_held_seconds (AlertHub.held_s), and in the log."""

from __future__ import annotations

import logging
import uuid

import pytest
from aiokafka import AIOKafkaProducer

from streams.services import Services
from tests.integration.test_alert_hub_reconnect import _true, fan_out, intervention
from tests.integration.test_api_support import eventually

pytestmark = pytest.mark.integration
TOLD = "wait for a transaction a producer left open"


async def test_alerts_behind_a_transaction_left_open_are_told_until_it_ends(
    kafka_redis: Services, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="streams.api.alert_holds")
    async with fan_out(kafka_redis, backlog=500, held_warn_s=1.0) as rig:
        transactional = AIOKafkaProducer(bootstrap_servers=kafka_redis.kafka_bootstrap,
                                         transactional_id=f"tx-{uuid.uuid4().hex[:8]}")  # fmt: skip
        await transactional.start()
        try:
            for n in range(3):  # transactions that end hold nothing for long
                async with transactional.transaction():
                    await transactional.send(rig.alerts_topic, intervention(f"tx-{n}"),
                                             partition=0)  # fmt: skip
            done = {"tx-0", "tx-1", "tx-2"}
            await eventually(lambda: rig.holds(done), "the committed alerts")
            assert rig.hub.held_s() == 0.0
            assert TOLD not in caplog.text

            await transactional.begin_transaction()
            await transactional.send_and_wait(
                rig.alerts_topic, intervention("held-customer-1"), partition=0
            )
            await rig.producer.send_and_wait(rig.alerts_topic, intervention("held-customer-2"),
                                             partition=0)  # fmt: skip
            await eventually(lambda: _true(rig.hub.held_s() > 1.5), "the holding measured")
            await eventually(lambda: _true(TOLD in caplog.text), "the holding logged")
            assert await rig.holds(done)  # neither the open one nor the one behind it
            assert "held-customer" not in caplog.text  # no customer id in the log

            await transactional.commit_transaction()
            await eventually(
                lambda: rig.holds(done | {"held-customer-1", "held-customer-2"}), "the alerts held"
            )
            await eventually(lambda: _true(rig.hub.held_s() == 0.0), "the holding ended")
            assert "read again" in caplog.text
        finally:
            await transactional.stop()
