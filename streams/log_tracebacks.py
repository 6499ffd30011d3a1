"""Tracebacks in Moments' logs say where an error was raised, not what it said.

An exception's message may quote a customer: a ``KeyError`` of a customer id, a
``ValueError`` quoting an event's body, Redis's error for a script quoting its keys, a
msgspec error quoting a value. So a record that asks for a traceback (``log.exception``,
``exc_info=``: Moments' catch-all error logs, Faust's "Crashed reason=%r", asyncio's "Task
exception was never retrieved", the error a process dies of) keeps the frames and the
class of each exception in the chain (and in the exception groups there), without their
messages (:func:`unsaid`); and an exception that is the record's message or among its
arguments, or quoted in its text (by its repr or its message), is named by its class
alone.

Save one rule, easy to check: a chain every exception of which is an error of the
infrastructure (:data:`INFRASTRUCTURE`: a socket's or a file's, Redis or a Kafka broker
unreachable or slow, a broker's error code, the feature store's outages and Redis's
replies they were raised from) is shown whole, messages and all, since they name an
address, a path or a server's answer, which is what its operators need. One exception off
that list in the chain, and none of its messages is shown.

:class:`TracebacksUnsaid` does so on Moments' log handler (``streams.logs.configure``),
for text and JSON lines alike.

>>> who = "jane-" + "doe-42"
>>> try:
...     {}[who]
... except KeyError as exc:
...     record = logging.LogRecord("moments", logging.ERROR, "", 0, "crashed: %r", (exc,),
...                                (type(exc), exc, exc.__traceback__))
>>> TracebacksUnsaid().filter(record), record.getMessage()
(True, 'crashed: KeyError (its message is left out: it may quote a customer)')
>>> record.exc_info, "jane" in record.exc_text, record.exc_text.splitlines()[-1]
(None, False, 'KeyError (its message is left out: it may quote a customer)')
"""

from __future__ import annotations

import logging
import textwrap
import traceback
from collections.abc import Mapping
from typing import TypeGuard

# errors that speak of where and how a connection or a file failed, never of an event:
# a class, or a subclass of one, named here is shown with its message
INFRASTRUCTURE = frozenset(
    {
        "builtins.OSError",  # ConnectionError, TimeoutError, socket errors: address, path
        "redis.exceptions.ConnectionError",  # Redis unreachable, a connection lost
        "redis.exceptions.TimeoutError",
        "aiokafka.errors.KafkaConnectionError",  # a broker unreachable
        "aiokafka.errors.KafkaTimeoutError",
        "aiokafka.errors.BrokerResponseError",  # "[Error 7] RequestTimedOutError"
    }
)
# errors Moments raises only from an error of the infrastructure (the feature store's
# outages: Redis unreachable, full, loading, refusing a command): shown with their
# messages, and so is what each was raised ``from`` (Redis's own reply), however deep
FROM_INFRASTRUCTURE = frozenset({"feature_store.records.StoreUnavailable"})
LEFT_OUT = "(its message is left out: it may quote a customer)"
CAUSE = "\nThe above exception was the direct cause of the following exception:\n"
CONTEXT = "\nDuring handling of the above exception, another exception occurred:\n"


class TracebacksUnsaid(logging.Filter):
    """For a handler: a record that asks for a traceback is told as :func:`unsay` says."""

    def filter(self, record: logging.LogRecord) -> bool:
        unsay(record)
        return True


def unsay(record: logging.LogRecord) -> None:
    """Leave out of ``record``, if it asks for a traceback, the messages of exceptions
    that are not all of the infrastructure: in its traceback, in its arguments, and
    quoted by their repr in its text (asyncio's "exception=KeyError('...')").

    >>> refused = ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 6379)")
    >>> record = logging.LogRecord("moments", logging.ERROR, "", 0, "Redis: %s", (refused,),
    ...                            (type(refused), refused, None))
    >>> unsay(record); record.getMessage(), record.exc_info[1] is refused
    ("Redis: [Errno 111] Connect call failed ('127.0.0.1', 6379)", True)

    A record that asks for no traceback is as Moments wrote it (it chose what to quote).

    >>> record = logging.LogRecord("moments", logging.ERROR, "", 0, "%s", (KeyError(1),), None)
    >>> unsay(record); record.getMessage()
    '1'
    """
    if not record.exc_info:
        return
    if isinstance(record.args, tuple):
        record.args = tuple(_Named(a) if _unsayable(a) else a for a in record.args)
    elif isinstance(record.args, Mapping):  # "%(name)s" arguments
        record.args = {k: _Named(v) if _unsayable(v) else v for k, v in record.args.items()}
    if _unsayable(record.msg):  # log.exception(exc)
        record.msg = _Named(record.msg)
    error = record.exc_info[1]
    if error is None or not _unsayable(error):
        return
    if isinstance(record.msg, str):
        for told in every(error):
            for quoted in _quoted(told):
                record.msg = record.msg.replace(quoted, str(_Named(told)))
    record.exc_info, record.exc_text = None, unsaid(error)


# what is shorter is not looked for in a record's text: "" or "x" is found everywhere
QUOTED_AT_LEAST = 3


def _quoted(error: BaseException) -> list[str]:
    """How a record's text may quote ``error``: its repr, then its message (as ``str``
    gives it, "failed: " + str(exc)), each long enough to be told apart.

    >>> _quoted(KeyError("jane-doe")), _quoted(ValueError(""))
    (["KeyError('jane-doe')", "'jane-doe'"], ["ValueError('')"])
    """
    found = []
    for said in (repr, str):
        try:  # a filter that raised would fail the logging call itself
            text = said(error)
        except Exception:
            continue
        if len(text) >= QUOTED_AT_LEAST:
            found.append(text)
    return found


def chain(error: BaseException) -> list[BaseException]:
    """``error`` and the exceptions its traceback shows with it, as Python prints it (its
    cause, or else the one it was raised while handling, and so on), the last first.

    >>> try:
    ...     try:
    ...         {}["x"]
    ...     except KeyError as exc:
    ...         raise ValueError("no x") from exc
    ... except ValueError as exc:
    ...     [type(e).__name__ for e in chain(exc)]
    ['ValueError', 'KeyError']
    """
    found: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and all(current is not e for e in found):
        found.append(current)
        if current.__cause__ is not None or current.__suppress_context__:
            current = current.__cause__
        else:
            current = current.__context__
    return found


def every(error: BaseException) -> list[BaseException]:
    """The exceptions of ``error``'s :func:`chain`, and of each exception group's in it
    (those it holds, and their chains), each once.

    >>> group = ExceptionGroup("two", [KeyError("a"), OSError("b")])
    >>> [type(e).__name__ for e in every(group)]
    ['ExceptionGroup', 'KeyError', 'OSError']
    """
    found: list[BaseException] = []
    waiting = [error]
    while waiting:
        for current in chain(waiting.pop(0)):
            if any(current is e for e in found):
                continue
            found.append(current)
            if isinstance(current, BaseExceptionGroup):
                waiting.extend(current.exceptions)
    return found


def infrastructure(error: BaseException) -> bool:
    """Whether every exception in ``error``'s :func:`chain` (and in the groups there:
    :func:`every`) is an error of the infrastructure, whose message operators may read.

    >>> from redis.exceptions import ConnectionError as RedisConnectionError, ResponseError
    >>> infrastructure(TimeoutError()), infrastructure(RedisConnectionError("gone"))
    (True, True)
    >>> infrastructure(ResponseError("ERR script: key jane")), infrastructure(KeyError("x"))
    (False, False)
    >>> wrapped = RuntimeError("lost jane's batch"); wrapped.__cause__ = TimeoutError()
    >>> infrastructure(wrapped)
    False
    >>> infrastructure(ExceptionGroup("x", [TimeoutError(), KeyError("jane")]))
    False

    The feature store's outage is, and so is Redis's reply it was raised from; not an
    error it was raised while handling (:data:`FROM_INFRASTRUCTURE`).

    >>> from feature_store import StoreUnavailable
    >>> full = StoreUnavailable("OutOfMemoryError: command not allowed when used memory > "
    ...                         "'maxmemory'.")
    >>> full.__cause__ = ResponseError("command not allowed when used memory > 'maxmemory'.")
    >>> infrastructure(full)
    True
    >>> full.__cause__.__context__ = KeyError("jane")
    >>> infrastructure(full)
    False
    """
    found = every(error)
    vouched: list[BaseException] = []
    for e in found:
        if _of(e, FROM_INFRASTRUCTURE):
            cause = e.__cause__
            while cause is not None and all(cause is not v for v in vouched):
                vouched.append(cause)
                cause = cause.__cause__
    return all(
        _of(e, INFRASTRUCTURE | FROM_INFRASTRUCTURE) or any(e is v for v in vouched)
        for e in found
        if not isinstance(e, BaseExceptionGroup)  # a group is what it holds
    )


def _of(error: BaseException, kinds: frozenset[str]) -> bool:
    """Whether ``error``'s class, or one it derives from, is named in ``kinds``."""
    return any(f"{kind.__module__}.{kind.__qualname__}" in kinds for kind in type(error).__mro__)


def _unsayable(value: object) -> TypeGuard[BaseException]:
    return isinstance(value, BaseException) and not infrastructure(value)


class _Named:
    """An exception in a record's arguments, by its class alone, for ``%s`` and ``%r``."""

    def __init__(self, error: BaseException) -> None:
        self._said = f"{type(error).__qualname__} {LEFT_OUT}"

    def __str__(self) -> str:
        return self._said

    __repr__ = __str__


def unsaid(error: BaseException) -> str:
    """``error``'s traceback as Python prints it, causes and contexts included, each
    exception named by its class alone, without its message.

    >>> who = "jane-" + "doe-42"
    >>> try:
    ...     try:
    ...         raise KeyError(who)
    ...     except KeyError as exc:
    ...         raise ValueError(f"no customer {who}") from exc
    ... except ValueError as exc:
    ...     said = unsaid(exc)
    >>> "jane" in said, said.count("Traceback"), "direct cause" in said
    (False, 2, True)
    >>> [line.split()[0] for line in said.splitlines() if line.endswith(LEFT_OUT)]
    ['KeyError', 'ValueError']

    An exception group is followed by what it holds, each told the same way, indented.

    >>> said = unsaid(ExceptionGroup("two", [KeyError(who), OSError("b")]))
    >>> "jane" in said, [line.split()[1] for line in said.splitlines() if "----" in line]
    (False, ['1', '2'])
    """
    return _unsaid(error, [])


def _unsaid(error: BaseException, shown_before: list[BaseException]) -> str:
    shown = [e for e in chain(error) if all(e is not s for s in shown_before)][::-1]
    shown_before.extend(shown)  # a group's exceptions' chains may lead back: told once
    parts: list[str] = []
    for at, current in enumerate(shown):
        if at:
            parts.append(CAUSE if current.__cause__ is shown[at - 1] else CONTEXT)
        frames = "".join(traceback.format_tb(current.__traceback__))
        parts.append(f"Traceback (most recent call last):\n{frames}"
                     f"{type(current).__qualname__} {LEFT_OUT}")  # fmt: skip
        if isinstance(current, BaseExceptionGroup):
            for number, held in enumerate(current.exceptions, 1):
                told = _unsaid(held, shown_before)
                if told:
                    parts.append(f"  +---------------- {number} ----------------\n"
                                 + textwrap.indent(told, "    | "))  # fmt: skip
    return "\n".join(parts)
