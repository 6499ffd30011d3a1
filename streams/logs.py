"""Logging for Moments' processes, with Kafka records and requests kept out of the logs.

aiokafka and Faust log whole Kafka records at debug level: the key is a customer id and
the value personal data. The loggers that do so stay at info whatever
``MOMENTS_LOG_LEVEL`` asks, so that debug logs can be turned on in production without
writing customers into them.

aiohttp's server logs a request it cannot parse (a space or a non-ASCII byte in the path,
a bad header, a malformed chunk of body) with a traceback that quotes the offending
bytes, and so the customer id in the path or the body: such a record keeps only the name
of the error (:class:`WithoutRequest`).

Any record with a traceback (``log.exception``, ``exc_info=``: a catch-all error log,
Faust's crash of an agent, asyncio's "Task exception was never retrieved", the error a
process dies of, an error a request handler raised and did not answer) keeps the
traceback's frames and exception classes, but not the exceptions' messages, which may
quote a customer id; save a chain of errors that all speak of the infrastructure (a
socket, Redis or a broker unreachable), whose messages operators need
(:mod:`streams.log_tracebacks`).

aiokafka logs every failed attempt to reach a broker, about ten a second per client:
those warnings and errors come once per 30 s instead (:class:`RepeatsQuieted`).

Lines are text, or with ``MOMENTS_LOG_FORMAT=json`` one JSON object each
(:class:`JsonLines`), for a log pipeline to index by level and logger.

>>> configure("debug")
>>> logging.getLogger("aiokafka.conn").isEnabledFor(logging.DEBUG)
False
>>> logging.getLogger("aiokafka.conn").setLevel(logging.NOTSET)
>>> logging.getLogger().setLevel(logging.WARNING); configure("warning")
>>> logging.getLogger("aiokafka.conn").isEnabledFor(logging.INFO)  # not more than asked
False
"""

from __future__ import annotations

import logging
import re
import sys
import threading
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from types import TracebackType
from typing import TextIO

import msgspec
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web import RequestPayloadError

from streams.kafka_bootstrap import BootstrapFailures
from streams.log_tracebacks import TracebacksUnsaid, unsay

RECORD_LOGGERS = (
    "aiokafka.conn",  # requests and responses, record batches included
    "aiokafka.producer.producer",  # "Sending (key=... value=...)"
    "faust.topics",  # "send: topic=... k=... v=..."
    "faust.transport.drivers.aiokafka",
)
# at debug, thousands of lines a minute from an idle process ("Adding fetch request")
CHATTY_LOGGERS = ("aiokafka.consumer.fetcher",)


SERVER_LOGGER = "aiohttp.server"  # logs requests that fail before any handler

# aiokafka's clients log every failed attempt to reach a broker, ten times a second each:
# a broker down for a minute wrote thousands of lines per process
RETRY_LOGGERS = (
    "aiokafka",  # "Unable connect to node ...", "Unable to update metadata from ..."
    "aiokafka.consumer.fetcher",  # "Failed fetch messages from ..."
    "aiokafka.consumer.group_coordinator",  # "Group Coordinator Request failed: ..."
    "aiokafka.producer.sender",  # "Got error produce response: NodeNotReadyError ..."
)
REPEAT_EVERY_S = 30.0
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure(level: str, line_format: str = "text") -> None:
    """Log to stderr at ``level`` (a name such as ``"info"``), as text or JSON lines
    (``line_format``), Kafka records and unparsable requests excepted."""
    asked = getattr(logging, level.upper(), logging.INFO)
    logging.basicConfig(level=asked, handlers=[log_handler(line_format)])
    sys.excepthook = _logged_uncaught  # the error a process dies of, its messages left out
    threading.excepthook = thread_stopped  # and one a thread stops on
    if line_format == "json":  # a Python warning as a record too, not lines of its own
        logging.captureWarnings(True)
    for name in (*RECORD_LOGGERS, *CHATTY_LOGGERS):  # at info at most, never more than asked
        logger = logging.getLogger(name)
        logger.setLevel(max(logger.level, asked, logging.INFO))
    server = logging.getLogger(SERVER_LOGGER)
    if not any(isinstance(f, WithoutRequest) for f in server.filters):
        server.addFilter(WithoutRequest())
    for name in RETRY_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RepeatsQuieted) for f in logger.filters):
            logger.addFilter(RepeatsQuieted(REPEAT_EVERY_S))
    client = logging.getLogger("aiokafka")  # before its repeats are quieted: each seen
    if not any(isinstance(f, BootstrapFailures) for f in client.filters):
        client.filters.insert(0, BootstrapFailures())
    loop_logger = logging.getLogger("asyncio")
    if not any(isinstance(f, UnreadKafkaErrors) for f in loop_logger.filters):
        loop_logger.addFilter(UnreadKafkaErrors())
    coordinator = logging.getLogger("aiokafka.consumer.group_coordinator")
    if not any(isinstance(f, CoordinatorNotYet) for f in coordinator.filters):
        coordinator.filters.insert(0, CoordinatorNotYet())
    if not any(isinstance(f, RebalanceNotices) for f in coordinator.filters):
        coordinator.filters.insert(0, RebalanceNotices())
    consumer_thread = logging.getLogger("faust.transport.drivers.aiokafka")
    if not any(isinstance(f, IdlePartitionNotices) for f in consumer_thread.filters):
        consumer_thread.filters.insert(0, IdlePartitionNotices())
    topics = logging.getLogger("faust.topics")
    if not any(isinstance(f, UndeliveredRecords) for f in topics.filters):
        topics.addFilter(UndeliveredRecords())


def log_handler(line_format: str = "text") -> logging.StreamHandler[TextIO]:
    """Moments' handler: to stderr, as text or JSON lines, a traceback's messages left
    out unless they speak of the infrastructure (:class:`TracebacksUnsaid`)."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonLines() if line_format == "json" else logging.Formatter(TEXT_FORMAT))
    handler.addFilter(TracebacksUnsaid())
    return handler


def quiet_kafka_clients() -> None:
    """For a one-shot command: aiokafka's info lines ("Updating subscribed topics", one per
    topic read) tell the person running it nothing, and go; its warnings stay. At debug
    level nothing changes.

    >>> configure("info"); quiet_kafka_clients()
    >>> logging.getLogger("aiokafka.consumer.subscription_state").isEnabledFor(logging.INFO)
    False
    >>> logging.getLogger("aiokafka.conn").isEnabledFor(logging.WARNING)
    True
    >>> logging.getLogger().setLevel(logging.ERROR); quiet_kafka_clients()  # not more than asked
    >>> logging.getLogger("aiokafka").isEnabledFor(logging.WARNING)
    False
    >>> for name in ("aiokafka", *RECORD_LOGGERS, *CHATTY_LOGGERS):
    ...     logging.getLogger(name).setLevel(logging.NOTSET)
    >>> logging.getLogger().setLevel(logging.INFO)
    """
    asked = logging.getLogger().getEffectiveLevel()
    if asked <= logging.DEBUG:
        return
    for name in ("aiokafka", *RECORD_LOGGERS, *CHATTY_LOGGERS):
        if name.startswith("aiokafka"):  # never below what the process asked for
            logger = logging.getLogger(name)
            logger.setLevel(max(logger.level, logging.WARNING, asked))


def _logged_uncaught(
    kind: type[BaseException], error: BaseException, trace: TracebackType | None
) -> None:
    logging.getLogger("moments").critical("stopped by an error", exc_info=(kind, error, trace))


def thread_stopped(args: threading.ExceptHookArgs) -> None:
    """A thread stopped by an error it did not catch: logged, its messages left out
    (Python's own hook prints them)."""
    if args.exc_type is SystemExit or args.exc_value is None:
        return  # a thread's sys.exit() is not an error, as Python's own hook says
    name = args.thread.name if args.thread is not None else "a thread"
    logging.getLogger("moments").error(
        "thread %s stopped by an error", name,
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
    )  # fmt: skip


class JsonLines(logging.Formatter):
    """One JSON object per record: ``time`` (UTC, milliseconds), ``level``, ``logger``,
    ``message``, and ``exception`` (the traceback) or ``stack`` when the record has one.

    >>> record = logging.LogRecord("api", logging.WARNING, "", 0, "Redis down %d s", (3,), None)
    >>> record.created = 1796352400.25
    >>> print(JsonLines().format(record))
    {"time":"2026-12-04T02:46:40.250Z","level":"WARNING","logger":"api","message":"Redis down 3 s"}
    """

    _encode = msgspec.json.Encoder().encode

    def format(self, record: logging.LogRecord) -> str:
        at = datetime.fromtimestamp(record.created, UTC)
        try:
            message = record.getMessage()
        except Exception as exc:  # one line still, without the arguments
            message = (
                f"{_shown(record.msg)} (its arguments could not be put in: {type(exc).__name__})"
            )
        line: dict[str, str] = {
            "time": at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": message,
        }
        if record.exc_info:
            record.exc_text = record.exc_text or self.formatException(record.exc_info)
        if record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        try:
            return self._encode(line).decode()
        except UnicodeEncodeError:  # a lone surrogate (a path, a header): written escaped
            return self._encode({k: _escaped(v) for k, v in line.items()}).decode()


def _shown(msg: object) -> str:
    try:
        return str(msg)
    except Exception:  # an object that cannot say what it is
        return object.__repr__(msg)


def _escaped(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


class UnreadKafkaErrors(logging.Filter):
    """aiokafka leaves the error of a connection the broker closed unread (a certificate
    it refused, say), and asyncio logs it with a traceback when the future is collected,
    often as the process stops: one warning line naming the error instead, since the
    reason was logged and said already.

    >>> try:
    ...     exec(compile("raise ConnectionResetError('reset')", "aiokafka/conn.py", "exec"))
    ... except OSError as exc:
    ...     unread = (type(exc), exc, exc.__traceback__)
    >>> record = logging.LogRecord("asyncio", logging.ERROR, "", 0,
    ...     "Future exception was never retrieved", None, unread)
    >>> UnreadKafkaErrors().filter(record), record.levelname, record.getMessage()
    (True, 'WARNING', 'a Kafka connection error left unread: ConnectionResetError: reset')

    Faust's copy of a record's delivery (its ``FutureMessage``), which the worker never
    reads, is not logged: the worker waits on the producer's own future of each record,
    and so has met (retried, dead-lettered, logged) the same error there.

    >>> record = logging.LogRecord("asyncio", logging.ERROR, "", 0,
    ...     "FutureMessage exception was never retrieved", None, unread)
    >>> UnreadKafkaErrors().filter(record)
    False
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if str(record.msg).startswith("FutureMessage exception was never retrieved"):
            return False
        error = record.exc_info[1] if record.exc_info else None
        trace = record.exc_info[2] if record.exc_info else None
        if (
            isinstance(error, OSError)
            and str(record.msg).startswith("Future exception was never retrieved")
            and any("aiokafka" in frame.filename for frame in traceback.extract_tb(trace))
        ):
            record.msg = "a Kafka connection error left unread: %s: %s"
            record.args = (type(error).__name__, error)
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.exc_info, record.exc_text, record.stack_info = None, None, None
            return logging.getLogger(record.name).isEnabledFor(logging.WARNING)
        return True


class UndeliveredRecords(logging.Filter):
    """Faust's warning for a record Kafka did not take ends with its ``FutureMessage``,
    whose repr could one day show the record (a customer id, personal data): it keeps
    only the topic and the error, or, written otherwise than this filter knows, neither.

    >>> said = ("_on_published error for message topic p-offers error [Error 10] "
    ...         "MessageSizeTooLargeError message <FutureMessage key=b'jane-doe-42'>")
    >>> record = logging.LogRecord("faust.topics", logging.WARNING, "", 0, said, None, None)
    >>> UndeliveredRecords().filter(record), record.getMessage()
    (True, 'Kafka did not take a record for topic p-offers: [Error 10] MessageSizeTooLargeError')
    >>> record = logging.LogRecord("faust.topics", logging.WARNING, "", 0,
    ...     "_on_published error: message <FutureMessage key=b'jane-doe-42'>", None, None)
    >>> UndeliveredRecords().filter(record), record.getMessage()
    (True, 'Kafka did not take a record (what Faust said of it is left out: it may quote it)')
    """

    SAID = re.compile(r"_on_published error for message topic (\S+) error (.*?) message ", re.S)

    def filter(self, record: logging.LogRecord) -> bool:
        text = str(record.msg)
        if text.startswith("_on_published error"):
            found = self.SAID.match(text)
            if found:
                record.msg, record.args = (
                    "Kafka did not take a record for topic %s: %s",
                    found.groups(),
                )
            else:
                record.msg, record.args = ("Kafka did not take a record (what Faust said of "
                                           "it is left out: it may quote it)"), None  # fmt: skip
        return True


class AsWarning(logging.Filter):
    """Logs as a warning an error that :meth:`known` recognises as expected (retried, or
    not a fault), so that alerts on errors do not fire on it."""

    def known(self, record: logging.LogRecord) -> bool:
        raise NotImplementedError

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.WARNING and self.known(record):
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            # the logger let it through as an error: not if warnings are not asked for
            return logging.getLogger(record.name).isEnabledFor(logging.WARNING)
        return True


class IdlePartitionNotices(AsWarning):
    """Faust's notices that a partition was never fetched from, or never committed, since
    the worker started come after a rebalance for partitions that simply had no events,
    and for every partition, busy ones too, right after a rebalance that followed a Kafka
    outage (the new assignment not fetched from yet): a warning, not an error for alerts
    on errors to fire on. A partition really stalled shows in the consumer lag
    (``MomentsConsumerLagGrowing``).

    >>> record = logging.LogRecord("faust.transport.drivers.aiokafka", logging.ERROR, "", 0,
    ...     "[^---AIOKafkaConsumerThread]: Aiokafka has not sent fetch request for %r since "
    ...     "start (started %s) ...", ("TP(topic='touchpoints', partition=0)", "7.00 minutes ago"),
    ...     None)
    >>> IdlePartitionNotices().filter(record), record.levelname
    (True, 'WARNING')
    """

    MARKS = ("since start (started", "at all since worker start")

    def known(self, record: logging.LogRecord) -> bool:
        return any(m in str(record.msg) for m in self.MARKS)


class CoordinatorNotYet(AsWarning):
    """A group's coordinator not available yet (every fresh start, while the broker
    makes its offsets topic) is retried: a warning, not an error that alerts on errors
    would fire on at every deploy.

    >>> record = logging.LogRecord("aiokafka.consumer.group_coordinator", logging.ERROR,
    ...     "", 0, "Group Coordinator Request failed: %s",
    ...     ("[Error 15] GroupCoordinatorNotAvailableError",), None)
    >>> CoordinatorNotYet().filter(record), record.levelname
    (True, 'WARNING')
    """

    def known(self, record: logging.LogRecord) -> bool:
        return "CoordinatorNotAvailable" in str(record.args)


class RebalanceNotices(logging.Filter):
    """aiokafka's warning that a heartbeat found the group rebalancing comes whenever a
    worker joins or leaves (every scale-out and rolling deploy): news, not a fault, so an
    info line. A rebalance that never ends shows as no worker ready, and in the lag.

    >>> record = logging.LogRecord("aiokafka.consumer.group_coordinator", logging.WARNING,
    ...     "", 0, "Heartbeat failed for group %s because it is rebalancing", ("m",), None)
    >>> _ = RebalanceNotices().filter(record)  # let through where info lines are asked for
    >>> record.levelname
    'INFO'
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.WARNING and "because it is rebalancing" in str(record.msg):
            record.levelno, record.levelname = logging.INFO, "INFO"
            return logging.getLogger(record.name).isEnabledFor(logging.INFO)
        return True


class RepeatsQuieted(logging.Filter):
    """Lets a warning or error through once per ``every_s`` (by its text before the
    arguments are put in); the next one let through says how many were held back
    meanwhile.

    >>> quiet = RepeatsQuieted(30.0, lambda: now)
    >>> def tried(n: int) -> logging.LogRecord:
    ...     return logging.LogRecord("aiokafka", logging.ERROR, "", 0,
    ...                              "Unable connect to node with id %s", (n,), None)
    >>> now = 0.0
    >>> [quiet.filter(tried(1)) for now in (0.0, 0.1, 0.2, 29.0)]
    [True, False, False, False]
    >>> now, record = 31.0, tried(1)
    >>> quiet.filter(record), record.getMessage()
    (True, 'Unable connect to node with id 1 (3 more like it in 31 s)')
    """

    def __init__(self, every_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._every_s = every_s
        self._clock = clock
        self._last: dict[str, tuple[float, int]] = {}  # by message: let through at, held

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        message, now = str(record.msg), self._clock()
        last = self._last.get(message)
        if last is not None and now - last[0] < self._every_s:
            self._last[message] = (last[0], last[1] + 1)
            return False
        self._last[message] = (now, 0)
        if last is not None and last[1]:
            record.msg = f"{message} ({last[1]} more like it in {now - last[0]:.0f} s)"
        return True


class WithoutRequest(logging.Filter):
    """Rewrites a record of a request that could not be parsed (or whose body could not
    be read) to one line naming the error's class: its traceback and arguments would
    quote the request.

    >>> error = HttpProcessingError(message="Bad status line: b'GET /v1/customers/a b'")
    >>> record = logging.LogRecord("aiohttp.server", logging.ERROR, "", 0,
    ...     "Error handling request from %s", ("127.0.0.1",), (None, error, None))
    >>> WithoutRequest().filter(record), record.getMessage(), record.exc_info
    (True, 'could not read a request (HttpProcessingError)', None)

    Any other error a request met in its handler keeps its traceback, the frames and the
    class of each exception in its chain, but not what they say (:func:`unsay`, as on
    any record Moments logs): a ``KeyError`` of a name in the path, or a ``ValueError``
    quoting the body, would put the caller's text (a customer id) in the log. Here too,
    before any handler sees the record.

    >>> path_name = "jane-" + "doe-42"
    >>> try:
    ...     {}[path_name]
    ... except KeyError as exc:
    ...     failed = (type(exc), exc, exc.__traceback__)
    >>> record = logging.LogRecord("aiohttp.server", logging.ERROR, "", 0,
    ...     "Error handling request from %s", ("127.0.0.1",), failed)
    >>> WithoutRequest().filter(record), record.getMessage(), record.exc_info
    (True, 'Error handling request from 127.0.0.1', None)
    >>> "{}[path_name]" in record.exc_text, "jane" in record.exc_text
    (True, False)
    >>> print(record.exc_text.splitlines()[-1])
    KeyError (its message is left out: it may quote a customer)
    """

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, HttpProcessingError | RequestPayloadError):
            record.msg, record.args = "could not read a request (%s)", (type(error).__name__,)
            record.exc_info, record.exc_text, record.stack_info = None, None, None
        else:
            unsay(record)
        return True
