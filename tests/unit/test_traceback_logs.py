"""A record with a traceback, whoever logs it, is written by Moments' handler with the
traceback's frames and exception classes, not the exceptions' messages (which may quote a
customer id); errors of the infrastructure keep theirs."""

from __future__ import annotations

import asyncio
import gc
import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from redis.exceptions import OutOfMemoryError, ResponseError

from feature_store import StoreUnavailable
from feature_store.redis_errors import unavailable_when_transient
from streams import logs
from streams.api.errors import json_errors

CUSTOMER = "jane-" + "doe-42"  # never written whole in a line a traceback could show
FORMATS = ["text", "json"]


@contextmanager
def moments_log(line_format: str, *loggers: str) -> Iterator[io.StringIO]:
    """What Moments' own handler writes of ``loggers``' records."""
    written = io.StringIO()
    handler = logs.log_handler(line_format)
    handler.setStream(written)
    for name in loggers:
        logging.getLogger(name).addHandler(handler)
    try:
        yield written
    finally:
        for name in loggers:
            logging.getLogger(name).removeHandler(handler)


def traceback_of(written: io.StringIO, line_format: str) -> str:
    """The traceback of the one record written (the whole text, as text)."""
    if line_format == "text":
        return written.getvalue()
    [line] = written.getvalue().splitlines()
    return str(json.loads(line)["exception"])


def find_customer(customer_id: str) -> None:
    {}[customer_id]


@pytest.mark.parametrize("line_format", FORMATS)
def test_a_catch_all_error_log_keeps_the_frames_not_the_message(line_format: str) -> None:
    with moments_log(line_format, "moments.test") as written:
        try:
            find_customer(CUSTOMER)
        except KeyError:
            logging.getLogger("moments.test").exception("batch failed unexpectedly")
    said = traceback_of(written, line_format)
    assert CUSTOMER not in written.getvalue(), said
    assert "in find_customer" in said and "{}[customer_id]" in said, said
    assert "KeyError (its message is left out" in said, said


@pytest.mark.parametrize("line_format", FORMATS)
def test_an_error_of_the_infrastructure_keeps_its_message(line_format: str) -> None:
    with moments_log(line_format, "moments.test") as written:
        try:
            raise ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 6379)")
        except OSError:
            logging.getLogger("moments.test").exception("Redis down")
    said = traceback_of(written, line_format)
    assert "ConnectionRefusedError: [Errno 111] Connect call failed ('127.0.0.1', 6379)" in said
    assert "left out" not in said


@pytest.mark.parametrize(
    "cause",
    [KeyError(CUSTOMER), ResponseError(f"ERR Error running script: {CUSTOMER}")],
    ids=["key", "redis-reply"],
)
def test_a_chain_is_said_only_if_all_of_it_is_infrastructure(cause: Exception) -> None:
    """A connection lost while handling a customer's error: neither message is shown."""
    lost = "Connection lost to 127.0.0.1:" + "6379"
    with moments_log("json", "moments.test") as written:
        try:
            try:
                raise cause
            except Exception:
                raise ConnectionResetError(lost)  # noqa: B904 (raised while handling it)
        except OSError:
            logging.getLogger("moments.test").exception("lost")
    said = traceback_of(written, "json")
    assert CUSTOMER not in said and lost not in said, said
    assert "During handling" in said and "ConnectionResetError (its message" in said, said


def test_an_exception_among_a_records_arguments_is_named_by_its_class() -> None:
    """Faust logs an agent's crash as ``Crashed reason=%r``, the exception's repr."""
    with moments_log("text", "faust.agents.agent") as written:
        try:
            find_customer(CUSTOMER)
        except KeyError as exc:
            logging.getLogger("faust.agents.agent").exception("Crashed reason=%r", exc)
    assert CUSTOMER not in written.getvalue()
    assert "Crashed reason=KeyError (its message is left out" in written.getvalue()


def test_a_task_exception_never_retrieved_is_logged_without_its_message() -> None:
    """asyncio's own log of a task's error nobody read quotes the task, and its error."""

    async def decide() -> None:
        find_customer(CUSTOMER)

    loop = asyncio.new_event_loop()
    with moments_log("text", "asyncio") as written:
        try:
            task = loop.create_task(decide())
            loop.run_until_complete(asyncio.sleep(0))
            del task
            gc.collect()  # the task is collected, its error unread
        finally:
            loop.close()
    said = written.getvalue()
    assert "Task exception was never retrieved" in said, said
    assert CUSTOMER not in said and "exception=KeyError (its message is left out" in said, said
    assert "in find_customer" in said, said


@pytest.mark.parametrize("line_format", FORMATS)
async def test_an_unexpected_error_in_an_api_handler_logs_its_route_and_frames(
    line_format: str,
) -> None:
    async def profile(request: web.Request) -> web.Response:
        find_customer(request.match_info["customer_id"])
        return web.json_response({})

    app = web.Application(middlewares=[json_errors])
    app.router.add_get("/v1/customers/{customer_id}/profile", profile)
    with moments_log(line_format, "streams.api.errors") as written:
        async with TestClient(TestServer(app)) as client:
            reply = await client.get(f"/v1/customers/{CUSTOMER}/profile")
            assert reply.status == 500
            assert (await reply.json())["error"] == "internal_error"
    said = written.getvalue()
    assert CUSTOMER not in said, said
    assert "unexpected error on GET" in said and "/v1/customers/{customer_id}/profile" in said
    assert "in profile" in said and "in find_customer" in said and "KeyError" in said, said


class Quiet(Exception):
    """An exception whose repr says nothing: not looked for in the record's text."""

    def __repr__(self) -> str:
        return ""


@pytest.mark.parametrize("line_format", FORMATS)
@pytest.mark.parametrize(
    ("message", "args"),
    [
        ("{error}", ()),  # log.exception(exc): the exception is the message
        ("failed %(error)s", "mapping"),  # "%(name)s" arguments
        ("failed: {said}", ()),  # its message pasted into the text
    ],
    ids=["exception-as-message", "mapping-arguments", "message-in-text"],
)
def test_an_exception_told_in_the_record_itself_is_named_by_its_class(
    line_format: str, message: str, args: object
) -> None:
    with moments_log(line_format, "moments.test") as written:
        try:
            find_customer(CUSTOMER)
        except KeyError as exc:
            log = logging.getLogger("moments.test")
            if message == "{error}":
                log.exception(exc)
            elif args == "mapping":
                log.exception(message, {"error": exc})
            else:
                log.exception(message.format(said=str(exc)))
    text = written.getvalue()
    assert CUSTOMER not in text and "KeyError" in text


@pytest.mark.parametrize("line_format", FORMATS)
def test_an_exception_with_an_empty_repr_leaves_the_text_as_written(line_format: str) -> None:
    with moments_log(line_format, "moments.test") as written:
        try:
            raise Quiet(CUSTOMER)
        except Quiet:
            logging.getLogger("moments.test").exception("crashed at step two")
    assert "crashed at step two" in written.getvalue() and CUSTOMER not in written.getvalue()


@pytest.mark.parametrize("line_format", FORMATS)
def test_an_exception_group_shows_what_it_holds_by_class_and_frames(line_format: str) -> None:
    async def failing() -> None:
        find_customer(CUSTOMER)

    async def grouped() -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(failing())

    with moments_log(line_format, "moments.test") as written:
        try:
            asyncio.run(grouped())
        except BaseExceptionGroup:
            logging.getLogger("moments.test").exception("the sweep failed")
    told = traceback_of(written, line_format)
    assert CUSTOMER not in told
    assert "in find_customer" in told and "KeyError (its message is left out" in told


@pytest.mark.parametrize("line_format", FORMATS)
def test_the_stores_outage_keeps_redis_reply(line_format: str) -> None:
    """The feature store's outage (Redis full, a replica, loading) is raised from Redis's
    reply, which operators need to read, and which names no customer."""
    reply = "command not allowed when used memory > 'maxmemory'."
    with moments_log(line_format, "moments.test") as written:
        try:
            with unavailable_when_transient():
                raise OutOfMemoryError(reply)
        except StoreUnavailable:
            logging.getLogger("moments.test").exception("batch waits for Redis")
    said = traceback_of(written, line_format)
    assert f"OutOfMemoryError: {reply}" in said, said
    assert f"StoreFull: OutOfMemoryError: {reply}" in said, said
    assert "left out" not in said, said


def test_the_stores_outage_raised_while_handling_a_customers_error_says_neither() -> None:
    reply = "command not allowed " + "when used memory"  # not as the source line shows it
    with moments_log("json", "moments.test") as written:
        try:
            try:
                find_customer(CUSTOMER)
            except KeyError:
                with unavailable_when_transient():
                    raise OutOfMemoryError(reply)  # noqa: B904
        except StoreUnavailable:
            logging.getLogger("moments.test").exception("batch waits for Redis")
    said = traceback_of(written, "json")
    assert CUSTOMER not in said and reply not in said, said
    assert "StoreFull (its message is left out" in said, said
