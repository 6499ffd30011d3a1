"""Every error as JSON: ``{"error": code, "message": text, "details": [...]}``."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from aiohttp import web

from feature_store import StoreUnavailable
from streams.api.auth import AuthError

log = logging.getLogger(__name__)
_encoder = msgspec.json.Encoder()

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: list[Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details
        self.headers = headers


KAFKA_RETRY_S = 5  # a write Kafka did not take: when to try again


def kafka_unavailable(message: str) -> ApiError:
    """The 503 of a write to Kafka that failed, or was not acknowledged in time."""
    return ApiError(503, "kafka_unavailable", message, [{"retry_after_s": KAFKA_RETRY_S}],
                    headers={"Retry-After": str(KAFKA_RETRY_S)})  # fmt: skip


def json_response(
    body: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=_encoder.encode(body),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def error_response(
    status: int, code: str, message: str, details: list[Any] | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:  # fmt: skip
    body: dict[str, Any] = {"error": code, "message": _encodable(message)}
    if details is not None:
        body["details"] = details
    return json_response(body, status, headers)


def _encodable(text: str) -> str:
    """``text``, with what UTF-8 cannot carry (lone surrogates: header bytes that were not
    UTF-8) escaped, so that the error can still be answered as JSON.

    >>> _encodable("fine"), _encodable("G\\udcffT")
    ('fine', 'G\\\\udcffT')
    """
    try:
        text.encode()
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode()
    return text


_CODES = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
    405: "method_not_allowed", 413: "body_too_large", 415: "unsupported_media_type",
    429: "rate_limited",
}  # fmt: skip


def refused(exc: AuthError) -> web.Response:
    """The answer to a request whose key is missing, unknown or out of its scope; a 401
    names the schemes that take a key (RFC 9110 asks it of every 401)."""
    challenge = {"WWW-Authenticate": 'Bearer realm="moments"'} if exc.status == 401 else None
    return error_response(exc.status, _CODES[exc.status], exc.message, headers=challenge)


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.code, exc.message, exc.details, exc.headers)
    except AuthError as exc:
        return refused(exc)
    except StoreUnavailable:
        return error_response(503, "store_unavailable", "the feature store is unavailable; retry",
                              headers={"Retry-After": "1"})  # fmt: skip
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        message = exc.text or exc.reason
        if exc.status == 413:
            message = "the request body is too large"
        elif exc.status == 404:  # not the path itself: it may hold a customer id
            message = "no such path (see /openapi.json)"
        elif exc.status == 405:
            allowed = exc.headers.get("Allow", "")
            message = f"{request.method} is not allowed on this path; only {allowed}"
        allow = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        return error_response(exc.status, _CODES.get(exc.status, "error"), message, headers=allow)
    except Exception:
        log.exception("unexpected error on %s %s", request.method, request.match_info.route)
        return error_response(500, "internal_error", "something went wrong on our side")
