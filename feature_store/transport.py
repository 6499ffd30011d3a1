"""One connection to one Redis server, shared by every caller, with automatic pipelining.

Commands are written in the order callers send them, everything sent in one turn of
the event loop in one write; each caller gets its replies as soon as they arrive. Many
round trips can be in flight at once, and no caller waits for another's. Replies are
parsed by hiredis (C); error replies come back as exception values, in place.

A lost connection fails the calls in flight with :class:`redis.exceptions.ConnectionError`
(a command written may or may not have run; :class:`RepliesLost` when some of the call's
replies had come, with those); the next call connects again, and so does
the next call after a ``READONLY`` reply (the server became a replica: a failover behind
the same address). Callers that come while a connection is being made share that
attempt, and its failure. A call whose
replies do not come within the request timeout (a connection that a NAT or firewall
dropped silently, a frozen server) drops the connection and fails with
:class:`redis.exceptions.TimeoutError`, as do the calls in flight with it; TCP keepalive
finds such a connection while it is idle.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import urlsplit

import hiredis
from redis.connection import SSLConnection, parse_url
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import DataError, NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

Command = tuple[Any, ...]

CONNECT_TIMEOUT_S = 5.0
# How long a round trip may take before its connection counts as dead: far above the
# milliseconds Redis answers in, and above a slow moment (a fork for a snapshot), so
# that only a connection that is gone, or a server that has stopped, reaches it.
REQUEST_TIMEOUT_S = 5.0


def keepalive_options() -> dict[int, int]:
    """TCP keepalive that finds a dead idle connection in about a minute (probes after
    30 s idle, every 10 s, three lost), where the system offers these options."""
    wanted = {"TCP_KEEPIDLE": 30, "TCP_KEEPINTVL": 10, "TCP_KEEPCNT": 3}
    return {getattr(socket, name): v for name, v in wanted.items() if hasattr(socket, name)}


def _keep_alive(transport: asyncio.BaseTransport) -> None:
    sock = transport.get_extra_info("socket")
    if sock is None:
        return
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for option, value in keepalive_options().items():
            sock.setsockopt(socket.IPPROTO_TCP, option, value)
    except OSError:  # not a TCP socket: nothing to keep alive
        pass


URL_OPTIONS = frozenset({"db", "username", "password"})  # what a Redis URL may set


def _marks_in_userinfo(after_scheme: str) -> bool:
    """Whether an ``@`` comes after a ``/`` or ``?`` that would end the URL's host part:
    a password holding them (``redis://app:a/b@cache``), not a query's ``@``
    (``?username=a@b``).

    >>> [_marks_in_userinfo(u) for u in ("app:a/b@cache:6379/0", "app:a?b@cache",
    ...                                  "app:pw@cache:6379/0", "cache/0?username=a@b")]
    [True, True, False, False]
    """
    head = after_scheme.rpartition("@")[0]
    query = head.find("?")
    if query >= 0:
        return "=" not in head[query:]  # an @ within the query's values is the query's
    return "/" in head


_UNREADABLE = (
    "it cannot be read as redis[s]://[[user]:password@]host[:port][/db] (is the "
    "port a number? write a / ? # or @ in the user or password %2F %3F %23 %40)"
)


@dataclass(frozen=True, slots=True)
class RedisAddress:
    """Where and how to connect, from a ``redis://`` or ``rediss://`` URL, read as
    redis-py reads it (the store's other connections are redis-py's): ``db``,
    ``username`` and ``password`` may be given as query options too; any other query
    option is refused, as this connection could not honour it.

    >>> RedisAddress.from_url("rediss://app:s%40cret@cache:6380/2")
    RedisAddress(host='cache', port=6380, db=2, username='app', tls=True)
    >>> RedisAddress.from_url("redis://localhost?db=3").password is None
    True
    >>> RedisAddress.from_url("rediss://cache?ssl_cert_reqs=none")
    Traceback (most recent call last):
    ...
    ValueError: Redis URL option ssl_cert_reqs is not supported (db, username and password are)
    """

    host: str
    port: int = 6379
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False

    @classmethod
    def from_url(cls, url: str) -> RedisAddress:
        """The address ``url`` names. Its errors never quote the URL (it may hold a
        password): a user or password holding an unescaped ``/``, ``?`` or ``#`` is
        refused, as the URL would be read otherwise (another host, no password)."""
        if not url.startswith(("redis://", "rediss://")):
            raise ValueError(f"not a redis:// or rediss:// URL: {url.partition(':')[0]}://…")
        after = url.partition("://")[2]
        if "#" in after:
            raise ValueError("a Redis URL has no #fragment (write a # in its user or password "
                             "%23)")  # fmt: skip
        if _marks_in_userinfo(after):
            raise ValueError("its user or password holds an unescaped / or ? (write them %2F "
                             "and %3F)")  # fmt: skip
        try:
            path = urlsplit(url).path.strip("/")
        except ValueError:
            raise ValueError(_UNREADABLE) from None
        # redis-py reads "/1/5" as database 15, and "/abc" as 0
        if path and not (path.isascii() and path.isdigit()):
            raise ValueError(f"the URL's path must be a database number, not /{path}")
        try:
            found: dict[str, Any] = parse_url(url)  # type: ignore[no-untyped-call]
        except ValueError:  # its message quotes the part it could not read
            raise ValueError(_UNREADABLE) from None
        tls = found.pop("connection_class", None) is SSLConnection
        unsupported = sorted(set(found) - {"host", "port", *URL_OPTIONS})
        if unsupported:
            raise ValueError(f"Redis URL option {unsupported[0]} is not supported "
                             "(db, username and password are)")  # fmt: skip
        return cls(
            host=found.get("host") or "localhost",
            port=int(found.get("port") or 6379),
            db=int(found.get("db") or 0),
            username=found.get("username") or None,
            password=found.get("password") or None,
            tls=tls,
        )

    def handshake(self) -> list[Command]:
        """The commands that prepare a new connection, ending with a PING: whatever the
        server says unasked on a new connection (a full server's "max number of
        clients") is then its answer, never a caller's reply."""
        commands: list[Command] = []
        if self.password is not None:
            auth = (self.username, self.password) if self.username else (self.password,)
            commands.append(("AUTH", *auth))
        if self.db:
            commands.append(("SELECT", self.db))
        commands.append(("PING",))
        return commands


class NotSent(RedisConnectionError):
    """Redis could not be reached, or the connection was gone, before the call's commands
    were written: Redis cannot have run them."""


class RepliesLost(RedisConnectionError):
    """The connection went after the first ``len(replies)`` of a call's replies came: those
    commands ran (the ones after them may have too)."""

    def __init__(self, message: str, replies: list[Any]) -> None:
        super().__init__(message)
        self.replies = replies


def _packed(commands: Sequence[Command]) -> bytes:
    try:
        return b"".join([hiredis.pack_command(command) for command in commands])
    except TypeError as exc:
        raise DataError(str(exc)) from exc


class _Resp(asyncio.Protocol):
    """The wire: writes once per loop turn, hands each caller its replies in order, and
    drops the connection when the oldest call has waited longer than ``timeout_s`` with
    nothing heard from Redis meanwhile (replies come in order: all later ones wait behind
    it; a long script answers late, but the replies before it came). One timer watches
    every call."""

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout_s: float) -> None:
        self._loop = loop
        self._timeout_s = timeout_s
        self._reader = hiredis.Reader(encoding="utf-8", replyError=ResponseError)
        self._transport: asyncio.Transport | None = None
        self._out: list[bytes] = []
        # per call: its number of commands, the replies so far, its answer, its deadline
        self._waiting: deque[tuple[int, list[Any], asyncio.Future[list[Any]], float]] = deque()
        self._watchdog: asyncio.TimerHandle | None = None
        self._heard = 0.0  # when Redis last sent anything (loop time)
        self.open = False
        self.writes = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # a stream transport (uvloop's are not subclasses of asyncio.Transport)
        self._transport = cast(asyncio.Transport, transport)
        self.open = True

    def send(self, commands: Sequence[Command]) -> asyncio.Future[list[Any]]:
        reply: asyncio.Future[list[Any]] = self._loop.create_future()
        if not commands:
            reply.set_result([])
            return reply
        packed = _packed(commands)
        if not self.open:
            reply.set_exception(NotSent("the connection to Redis was lost"))
            return reply
        if not self._out:
            self._loop.call_soon(self._flush)
        self._out.append(packed)
        self._waiting.append((len(commands), [], reply, self._loop.time() + self._timeout_s))
        if self._watchdog is None:
            self._watchdog = self._loop.call_later(self._timeout_s, self._watch)
        return reply

    def _watch(self) -> None:
        self._watchdog = None
        if not self._waiting or not self.open:
            return
        deadline = max(self._waiting[0][3], self._heard + self._timeout_s)
        if self._loop.time() < deadline:
            self._watchdog = self._loop.call_at(deadline, self._watch)
        else:
            self.abort(RedisTimeoutError(f"no reply from Redis in {self._timeout_s:g}s"))

    def _flush(self) -> None:
        if self._out and self.open and self._transport is not None:
            self._transport.write(b"".join(self._out))
            self.writes += 1
        self._out.clear()

    def data_received(self, data: bytes) -> None:
        self._heard = self._loop.time()
        self._reader.feed(data)
        demoted = False
        try:
            while (reply := self._reply()) is not False:
                if type(reply) is ResponseError:
                    if str(reply).startswith("NOSCRIPT"):
                        reply = NoScriptError(str(reply))
                    elif str(reply).startswith("READONLY"):
                        demoted = True
                count, replies, answer, _ = self._waiting[0]
                replies.append(reply)
                if len(replies) == count:
                    self._waiting.popleft()
                    if not answer.done():  # its caller may have given up
                        answer.set_result(replies)
                    if demoted:
                        break
        except (hiredis.ProtocolError, IndexError) as exc:
            # garbage, or a reply nobody asked for
            self.abort(RedisConnectionError(f"Redis protocol error: {exc!r}"))
            return
        if demoted:  # a replica now (a failover behind the same address): connect again
            self.abort(RedisConnectionError("Redis answered READONLY: connecting again"))

    def _reply(self) -> Any:
        """The next whole reply (``False``: none yet). A value that is not UTF-8 (written by
        another client, or corrupted) is its own call's error, as a key of another type
        is: the reader has taken the whole reply, and the connection stays in step."""
        try:
            return self._reader.gets()
        except UnicodeDecodeError as exc:
            return ResponseError(f"a value Redis holds is not UTF-8 ({exc.reason})")

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(RedisConnectionError(f"the connection to Redis was lost: {exc!r}"))

    def _fail(self, error: Exception) -> None:
        self.open = False
        self._out.clear()
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        while self._waiting:
            _, replies, answer, _ = self._waiting.popleft()
            if not answer.done():
                answer.set_exception(RepliesLost(str(error), replies) if replies else error)

    def abort(self, error: Exception) -> None:
        """Drop the connection at once; the calls in flight fail with ``error``."""
        self._fail(error)
        if self._transport is not None:
            self._transport.abort()

    def close(self) -> None:
        self.open = False
        if self._transport is not None:
            self._transport.close()


class RedisPipe:
    """Send commands, get their replies; one connection, pipelined for every caller.

    >>> pipe = RedisPipe("redis://127.0.0.1:1")  # nothing listens there
    >>> try:
    ...     asyncio.run(pipe.execute([("PING",)]))
    ... except RedisConnectionError as exc:
    ...     print("refused:", type(exc).__name__)
    refused: NotSent
    """

    def __init__(
        self,
        url: str,
        ssl_ca_certs: str | None = None,
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
        request_timeout_s: float = REQUEST_TIMEOUT_S,
    ) -> None:
        self._address = RedisAddress.from_url(url)
        self._ssl_ca_certs = ssl_ca_certs
        self._connect_timeout_s = connect_timeout_s
        self._request_timeout_s = request_timeout_s
        self._wire: _Resp | None = None
        # the attempt to connect under way: callers that arrive meanwhile share it, and
        # its failure (each would wait the connect timeout again, one after another)
        self._attempt: asyncio.Future[_Resp] | None = None
        self._writes_before = 0  # by connections that are gone

    @property
    def writes(self) -> int:
        """Writes to Redis so far: each carries every command sent in one loop turn."""
        return self._writes_before + (self._wire.writes if self._wire is not None else 0)

    async def execute(self, commands: Sequence[Command]) -> list[Any]:
        """The replies to ``commands``, in order; an error reply is an exception value.

        Raises :class:`redis.exceptions.ConnectionError` when Redis cannot be reached
        or the connection is lost before every reply came, and
        :class:`redis.exceptions.TimeoutError` when the replies do not come in time (the
        connection is dropped then: the next call connects again).
        """
        wire = self._wire
        if wire is None or not wire.open:
            wire = await self._connect()
        return await wire.send(commands)

    async def _connect(self) -> _Resp:
        """The connection, once made: one attempt at a time, shared by every caller
        that comes while it is under way (a caller that gives up does not end it)."""
        attempt = self._attempt
        if attempt is None:
            attempt = self._attempt = asyncio.ensure_future(self._open())
            attempt.add_done_callback(self._attempt_over)
        return await asyncio.shield(attempt)

    def _attempt_over(self, attempt: asyncio.Future[_Resp]) -> None:
        if self._attempt is attempt:
            self._attempt = None
        if not attempt.cancelled():
            attempt.exception()  # taken: its callers may all have given up

    async def _open(self) -> _Resp:
        if self._wire is not None and self._wire.open:
            return self._wire
        if self._wire is not None:
            self._writes_before += self._wire.writes
            self._wire = None
        loop = asyncio.get_running_loop()
        address = self._address
        context = ssl.create_default_context(cafile=self._ssl_ca_certs) if address.tls else None
        wire = None
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                transport, wire = await loop.create_connection(
                    lambda: _Resp(loop, self._request_timeout_s),
                    address.host,
                    address.port,
                    ssl=context,
                )
                _keep_alive(transport)
                for reply in await wire.send(address.handshake()):
                    if isinstance(reply, Exception):
                        raise NotSent(f"Redis refused the handshake: {reply}") from reply
        except BaseException as exc:
            if wire is not None:
                wire.close()
            if isinstance(exc, (OSError, TimeoutError, RedisTimeoutError)):
                raise NotSent(f"cannot connect to Redis: {exc!r}") from exc
            raise
        self._wire = wire
        return wire

    async def close(self) -> None:
        if self._attempt is not None:  # not to leave a connection made after the close
            self._attempt.cancel()
        if self._wire is not None:
            self._writes_before += self._wire.writes
            self._wire.close()
            self._wire = None
