"""What a Kafka client saw of each bootstrap broker it could not use, for the line a
process stops with at start (:func:`streams.kafka_security.connection_trouble`).

aiokafka logs each bootstrap address it could not use (``Unable connect to "h:p": why``)
and then raises an error that names none of the reasons. A broker that accepts the
connection but never answers (a wrong port, a port that is not Kafka, a load balancer
with nothing behind it) gives a timeout, whose text is empty: the log line ended in
``": "`` and the process's last line pointed at it. :class:`BootstrapFailures` keeps
what each address gave and says a timeout in words.

>>> seen: dict[str, BaseException] = {}
>>> record = logging.LogRecord("aiokafka", logging.ERROR, "", 0, UNABLE,
...                            ("127.0.0.1", 9, TimeoutError()), None)
>>> BootstrapFailures(seen).filter(record), record.getMessage()
(True, 'Unable connect to "127.0.0.1:9": TimeoutError: no answer within 40 s')
>>> said_of(seen, accepts=lambda address: True)
'127.0.0.1:9 accepted the connection but gave no answer within 40 s'
>>> said_of({"k:9092": ConnectionRefusedError(111, "Connection refused")}, lambda a: None)
'k:9092: ConnectionRefusedError: [Errno 111] Connection refused'
"""

from __future__ import annotations

import inspect
import logging
import socket
from collections.abc import Callable

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaConnectionError

UNABLE = 'Unable connect to "%s:%s": %s'  # aiokafka's, for each bootstrap address
# how long the clients that reach Kafka first at start (ensure_topics' admin client)
# wait for an answer: aiokafka's default, which they keep
REQUEST_TIMEOUT_S = (
    inspect.signature(AIOKafkaAdminClient).parameters["request_timeout_ms"].default / 1000
)
PROBE_S = 2.0  # how long the stopping process waits to see if an address takes connections
SEEN: dict[str, BaseException] = {}  # this process's: by "host:port", the last reason


class BootstrapFailures(logging.Filter):
    """Keeps, in ``seen``, why each bootstrap address could not be used; and words a
    timeout's empty reason in the log line."""

    def __init__(self, seen: dict[str, BaseException] = SEEN) -> None:
        super().__init__()
        self.seen = seen

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if record.msg != UNABLE or not isinstance(args, tuple) or len(args) != 3:
            return True
        host, port, error = args
        if isinstance(error, BaseException):
            self.seen[f"{host}:{port}"] = error
            if not str(error):
                record.args = (host, port, _reason(error))
        return True


def bootstrap_failed(error: BaseException) -> bool:
    """Whether ``error`` is aiokafka's for a client that could use no bootstrap address,
    the one error the addresses' reasons in :data:`SEEN` explain: those are kept for the
    process's life, so one from a broker down in a rolling restart, bootstrapped past,
    says nothing of a later refusal (an ACL, a topic missing).

    >>> bootstrap_failed(KafkaConnectionError("Unable to bootstrap from [('k', 9092)]"))
    True
    >>> bootstrap_failed(KafkaConnectionError("No connection to node with id 1"))
    False
    """
    return isinstance(error, KafkaConnectionError) and "Unable to bootstrap" in str(error)


def said_of(seen: dict[str, BaseException], accepts: Callable[[str], bool | None]) -> str:
    """What was seen of each address, ``; ``-separated (empty: nothing). For a timeout,
    ``accepts`` tells whether the address takes connections now (None: not known)."""
    parts = []
    for address, error in seen.items():
        if isinstance(error, TimeoutError):
            taken = accepts(address)
            parts.append(
                f"{address} accepted the connection but gave no answer within "
                f"{REQUEST_TIMEOUT_S:g} s"
                if taken
                else f"{address}: {_reason(error)}"
                + (" (it does not take connections either)" if taken is False else "")
            )
        else:
            parts.append(f"{address}: {_reason(error)}")
    return "; ".join(parts)


def accepts(address: str, within_s: float = PROBE_S) -> bool | None:
    """Whether ``host:port`` takes a TCP connection within ``within_s`` (None: the address
    cannot be read or resolved)."""
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=within_s):
            return True
    except (ValueError, socket.gaierror):
        return None
    except OSError:
        return False


def _reason(error: BaseException) -> str:
    said = str(error)
    if isinstance(error, TimeoutError) and not said:
        said = f"no answer within {REQUEST_TIMEOUT_S:g} s"
    return f"{type(error).__name__}: {said}"
