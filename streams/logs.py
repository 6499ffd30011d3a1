"""Logging for Moments' processes, with Kafka records and requests kept out of the logs.

aiokafka and Faust log whole Kafka records at debug level: the key is a customer id and
the value personal data. The loggers that do so stay at info whatever
``MOMENTS_LOG_LEVEL`` asks, so that debug logs can be turned on in production without
writing customers into them.

aiohttp's server logs a request it cannot parse (a space or a non-ASCII byte in the path,
a bad header, a malformed chunk of body) with a traceback that quotes the offending
bytes, and so the customer id in the path or the body: such a record keeps only the name
of the error (:class:`WithoutRequest`).

>>> configure("debug")
>>> logging.getLogger("aiokafka.conn").isEnabledFor(logging.DEBUG)
False
"""

from __future__ import annotations

import logging

from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web import RequestPayloadError

RECORD_LOGGERS = (
    "aiokafka.conn",  # requests and responses, record batches included
    "aiokafka.producer.producer",  # "Sending (key=... value=...)"
    "faust.topics",  # "send: topic=... k=... v=..."
    "faust.transport.drivers.aiokafka",
)


SERVER_LOGGER = "aiohttp.server"  # logs requests that fail before any handler


def configure(level: str) -> None:
    """Log to stderr at ``level`` (a name such as ``"info"``), Kafka records and
    unparsable requests excepted."""
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for name in RECORD_LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(max(logger.level, logging.INFO))
    server = logging.getLogger(SERVER_LOGGER)
    if not any(isinstance(f, WithoutRequest) for f in server.filters):
        server.addFilter(WithoutRequest())


class WithoutRequest(logging.Filter):
    """Rewrites a record of a request that could not be parsed (or whose body could not
    be read) to one line naming the error's class: its traceback and arguments would
    quote the request.

    >>> error = HttpProcessingError(message="Bad status line: b'GET /v1/customers/a b'")
    >>> record = logging.LogRecord("aiohttp.server", logging.ERROR, "", 0,
    ...     "Error handling request from %s", ("127.0.0.1",), (None, error, None))
    >>> WithoutRequest().filter(record), record.getMessage(), record.exc_info
    (True, 'could not read a request (HttpProcessingError)', None)
    """

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, HttpProcessingError | RequestPayloadError):
            record.msg, record.args = "could not read a request (%s)", (type(error).__name__,)
            record.exc_info, record.exc_text, record.stack_info = None, None, None
        return True
