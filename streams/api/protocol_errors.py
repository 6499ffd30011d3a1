"""JSON answers to the requests aiohttp answers itself, before any middleware runs.

A request its HTTP parser cannot read (a raw space or a non-ASCII byte in the path, a
control byte in a header, a broken chunk of body, a bad method) and an error that escapes
every middleware are answered by ``RequestHandler.handle_error``, in plain text that
quotes the offending bytes (and so a customer id in the path, a header or the body).
:class:`JsonErrorsAppRunner` serves an application with a request handler that keeps
aiohttp's status and closed connection but answers in the API's error shape
(:func:`streams.api.errors.error_response`) with a fixed description of the failure; a
request it could not read is logged as a warning, a line every few seconds at most
(:mod:`streams.api.unreadable_requests`), and errors of the server's own as errors.
An ``Expect`` header is answered before any middleware too: :func:`expect_continue`,
each route's expect handler, answers it in JSON, and the server answers it so for a path
no route has (:func:`answered_in_json`). A connection past the process's cap
(:mod:`streams.api.connection_cap`) is answered a JSON 503 as it opens, and closed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any

from aiohttp import HttpVersion11, web
from aiohttp.web_request import BaseRequest

from streams.api.connection_cap import OVERLOADED
from streams.api.errors import error_response
from streams.api.head_deadline import HeadDeadline
from streams.api.unreadable_requests import unreadable_requests

_CODES = {400: "bad_request", 500: "internal_error"}  # as the API's own errors say
Handle = Callable[[BaseRequest], Awaitable[web.StreamResponse]]


def describe(status: int, exc: BaseException | None) -> tuple[str, str]:
    """The error code and message for ``status`` caused by ``exc``: never the request's
    content (nor the exception's message, which quotes it), only the error's class.

    >>> from aiohttp.http_exceptions import BadStatusLine
    >>> describe(400, BadStatusLine("GET /v1/customers/john smith HTTP/1.1"))
    ('bad_request', 'the request could not be read as HTTP (BadStatusLine)')
    >>> describe(500, RuntimeError("john smith"))
    ('internal_error', 'something went wrong on our side')
    >>> describe(504, None)
    ('gateway_timeout', 'the server could not answer the request (Gateway Timeout)')
    """
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    code = _CODES.get(status) or phrase.lower().replace(" ", "_").replace("-", "_")
    if status == 500:
        return code, "something went wrong on our side"
    if status >= 500:
        return code, f"the server could not answer the request ({phrase})"
    kind = type(exc).__name__ if exc is not None else phrase
    return code, f"the request could not be read as HTTP ({kind})"


class JsonErrorsRequestHandler(web.RequestHandler):
    """aiohttp's request handler, with its own error answers in JSON, and a connection
    past the server's cap answered and closed as it opens."""

    _head: HeadDeadline | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        server = self._manager
        if isinstance(server, JsonErrorsServer) and server.full():
            # never served: no request is read, and the server does not count it
            server.refused()
            transport.write(OVERLOADED)  # type: ignore[attr-defined]
            transport.close()
            return
        super().connection_made(transport)
        if isinstance(server, JsonErrorsServer):  # its first head is due from now
            self._head = HeadDeadline(self._loop, server.head_timeout_s, self._head_overdue)
            self._head.start()

    def data_received(self, data: bytes) -> None:
        head = self._head
        # between requests on a connection kept alive, the next head is due from its first
        # byte (waiting for it with nothing sent is idling, which the idle timeout ends)
        if head is not None and not head.running and self._awaiting_a_request():
            head.start()
        super().data_received(data)
        if head is not None and self._messages:  # a whole head came: the request is read
            head.stop()

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._head is not None:
            self._head.stop()
        super().connection_lost(exc)

    def _awaiting_a_request(self) -> bool:
        return self._waiter is not None and not self._waiter.done() and not self._messages

    def _head_overdue(self) -> None:
        """Closed unanswered, as at the idle timeout: the head did not all come in time
        (never while a request is handled: a head that came is not cut off)."""
        if self._awaiting_a_request():
            self.force_close()

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        server = self._manager
        if status < 500 and isinstance(server, JsonErrorsServer):
            # a request that could not be read: the client's doing, which anyone could
            # repeat to fill the log, told as a warning, a line every few seconds at most
            server.unreadable.add(type(exc).__name__ if exc is not None else str(status))
            if request.writer.output_size > 0:  # as aiohttp's: no answer after an answer
                raise ConnectionError("part of a response was sent already")
        else:
            # aiohttp's: logs the error (streams.logs keeps the request out of the
            # record) and raises ConnectionError if part of a response was sent already.
            super().handle_error(request, status, exc, message)
        response = error_response(status, *describe(status, exc))
        response.force_close()
        return response


class JsonErrorsServer(web.Server):
    """``web.Server`` whose connections are served by :class:`JsonErrorsRequestHandler`,
    ``max_connections`` at most at once (``on_refused`` is told of each one past it), and
    the requests it could not read logged a few at a time (:attr:`unreadable`)."""

    max_connections: int = 1 << 20
    on_refused: Callable[[], None] | None = None
    head_timeout_s: float = 0.0  # none (see streams.api.head_deadline)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.unreadable = unreadable_requests()  # requests it could not read, to log

    def full(self) -> bool:
        return len(self._connections) >= self.max_connections

    def refused(self) -> None:
        if self.on_refused is not None:
            self.on_refused()

    def __call__(self) -> JsonErrorsRequestHandler:  # as web.Server.__call__ does
        try:
            return JsonErrorsRequestHandler(self, loop=self._loop, **self._kwargs)
        except TypeError:
            # Failsafe creation: remove all custom handler_args
            kwargs = {k: v for k, v in self._kwargs.items() if k in ["debug", "access_log_class"]}
            handler = JsonErrorsRequestHandler(self, loop=self._loop, **kwargs)
            handler.logger.warning(
                "Failed to create request handler with custom kwargs %r, "
                "falling back to filtered kwargs. This may indicate a "
                "misconfiguration.",
                self._kwargs,
            )
            return handler


class JsonErrorsAppRunner(web.AppRunner):
    """``web.AppRunner`` whose server answers unreadable requests in JSON, and whose
    cleanup gives requests under way ``stop_within_s`` in all (aiohttp waits its
    ``shutdown_timeout`` twice: for the handlers to end, then for them once cancelled)."""

    def __init__(
        self,
        app: web.Application,
        *,
        stop_within_s: float = 60.0,
        max_connections: int = 1 << 20,
        on_refused: Callable[[], None] | None = None,
        head_timeout_s: float = 0.0,
        **kwargs: Any,
    ):
        super().__init__(app, shutdown_timeout=stop_within_s / 2, **kwargs)
        self._max_connections = max_connections
        self._on_refused = on_refused
        self._head_timeout_s = head_timeout_s

    async def _make_server(self) -> web.Server:
        # aiohttp's runner starts the application up and builds its server; the same
        # server is built again, as a JsonErrorsServer, from what aiohttp gave it.
        plain = await super()._make_server()
        server = JsonErrorsServer(
            answered_in_json(plain.request_handler),
            request_factory=plain.request_factory,
            handler_cancellation=plain.handler_cancellation,
            loop=plain._loop,
            **plain._kwargs,
        )
        server.max_connections, server.on_refused = self._max_connections, self._on_refused
        server.head_timeout_s = self._head_timeout_s
        return server


EXPECTATION_FAILED = "only Expect: 100-continue is supported"


def answered_in_json(handle: Handle) -> Handle:
    """The application's ``handle``, with an HTTP error raised before any middleware runs
    answered in JSON: aiohttp's own expect handler, that of a path no route has, raises
    a 417 it answers in plain text, quoting the header."""

    async def handler(request: BaseRequest) -> web.StreamResponse:
        try:
            return await handle(request)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            if exc.status == 417:
                refusal = error_response(417, "expectation_failed", EXPECTATION_FAILED)
                return before_the_body(request, refusal)
            return counted(request, error_response(exc.status, *describe(exc.status, exc)))

    return handler


# How the application counts an answer no middleware saw (the request metric): each
# refusal sent before the body, and each error escaping the application's handler
ANSWER_COUNTER: web.AppKey[Callable[[web.Request, int], None]] = web.AppKey("answer_counter")


def counted(request: BaseRequest, response: web.StreamResponse) -> web.StreamResponse:
    """``response``, answered before any middleware ran, counted as the middlewares count
    every other answer (with its route, status and method)."""
    if isinstance(request, web.Request) and (count := request.app.get(ANSWER_COUNTER)):
        count(request, response.status)
    return response


def before_the_body(request: BaseRequest, response: web.StreamResponse) -> web.StreamResponse:
    """``response``, a refusal of ``request`` sent before its body was read (counted),
    closing the connection if a body was announced: the client may not send it, and
    what it sent next on the connection would be read as that body."""
    if request.body_exists:
        response.force_close()
    return counted(request, response)


async def expect_continue(request: web.Request) -> web.StreamResponse | None:
    """``Expect: 100-continue`` answered as aiohttp does; any other expectation gets a
    JSON 417 (aiohttp's own answer is plain text that quotes the header). It runs
    before the middlewares, so it answers by returning, not raising."""
    if request.headers.get("Expect", "").lower() != "100-continue":
        refusal = error_response(417, "expectation_failed", EXPECTATION_FAILED)
        return before_the_body(request, refusal)
    if request.version == HttpVersion11:
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0  # the answer's own size starts after it
    return None
