"""Logging for Moments' processes, with Kafka records kept out of the logs.

aiokafka and Faust log whole Kafka records at debug level: the key is a customer id and
the value personal data. The loggers that do so stay at info whatever
``MOMENTS_LOG_LEVEL`` asks, so that debug logs can be turned on in production without
writing customers into them.

>>> configure("debug")
>>> logging.getLogger("aiokafka.conn").isEnabledFor(logging.DEBUG)
False
"""

from __future__ import annotations

import logging

RECORD_LOGGERS = (
    "aiokafka.conn",  # requests and responses, record batches included
    "aiokafka.producer.producer",  # "Sending (key=... value=...)"
    "faust.topics",  # "send: topic=... k=... v=..."
    "faust.transport.drivers.aiokafka",
)


def configure(level: str) -> None:
    """Log to stderr at ``level`` (a name such as ``"info"``), Kafka records excepted."""
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for name in RECORD_LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(max(logger.level, logging.INFO))
