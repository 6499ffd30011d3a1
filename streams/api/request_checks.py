"""Who is asking and about whom: the request's API key checked for a scope and its rate
(also before a body is invited, for ``Expect: 100-continue``), and the customer id its
path names."""

from __future__ import annotations

import math
import re
import urllib.parse
from collections.abc import Awaitable, Callable

from aiohttp import web

from schemas.customer_ids import id_fault
from streams.api.auth import ApiKey, AuthError
from streams.api.errors import ApiError, error_response, refused
from streams.api.protocol_errors import before_the_body, expect_continue
from streams.api.server import API_KEY, WRONG_KEYS, Api
from streams.api.visitors import visitor


def api_of(request: web.Request) -> Api:
    return request.app[API_KEY]


def authorise(request: web.Request, scope: str, key_in_query: bool = False) -> ApiKey:
    """Check the request's API key for ``scope`` and its rate (a valid key refused for
    its scope or origin takes from its rate too: past it, a 429). The key comes in the
    ``Authorization: Bearer`` or ``X-API-Key`` header; in the ``api_key`` query
    parameter only where ``key_in_query`` (the alert stream, for browsers' EventSource,
    which cannot send headers): keys in URLs end up in proxies' logs."""
    api = api_of(request)
    key = _checked_key(request, scope, key_in_query)
    wait = api.limiter.allow(key.name, visitor_of(request, key))
    if wait:
        raise rate_limited(wait, f"too many requests for key {key.name!r}")
    return key


UPLOADS_RETRY_AFTER_S = 1  # a body comes whole within a second, or is a slow client's


def announced_size(request: web.Request) -> int:
    """The bytes a body counts for in the process's budget of bodies being received
    (:mod:`streams.api.body_budget`): as announced; a chunked one as the body limit."""
    size = request.content_length
    return api_of(request).settings.api_max_body_bytes if size is None else size


def too_many_uploads() -> ApiError:
    return ApiError(503, "too_many_uploads", "this API process is receiving as many "
                    "request bodies as it may; retry shortly",
                    [{"retry_after_s": UPLOADS_RETRY_AFTER_S}],
                    headers={"Retry-After": str(UPLOADS_RETRY_AFTER_S)})  # fmt: skip


def check_announced_size(request: web.Request) -> None:
    """A 413 for a body whose ``Content-Length`` is over the limit, before any of it is
    read (it was refused once the limit's worth had arrived)."""
    if (request.content_length or 0) > api_of(request).settings.api_max_body_bytes:
        raise ApiError(413, "body_too_large", "the request body is too large")


def sent_once(request: web.Request, name: str) -> str | None:
    """The request's header ``name`` (None without it); a 400 ``duplicate_header`` when
    it comes more than once: a proxy in front of the API may act on another of its values
    than the API would, so a key, an origin, an encoding or a resume point is never a
    guess between them.

    >>> from aiohttp.test_utils import make_mocked_request
    >>> sent_once(make_mocked_request("GET", "/", headers={"Origin": "https://a"}), "Origin")
    'https://a'
    """
    values = request.headers.getall(name, ())
    if len(values) > 1:
        raise ApiError(400, "duplicate_header", f"the {name} header must come once, not "
                       f"{len(values)} times", [{"header": name}])  # fmt: skip
    return values[0] if values else None


def query_once(request: web.Request, name: str, default: str | None = None) -> str | None:
    """The query parameter ``name`` (``default`` without it); a 400 ``duplicate_parameter``
    when it comes more than once, as :func:`sent_once` does for headers: a proxy or
    gateway in front may check another of its values than the API acts on.

    >>> from aiohttp.test_utils import make_mocked_request
    >>> query_once(make_mocked_request("GET", "/?limit=2"), "limit", "3")
    '2'
    >>> query_once(make_mocked_request("GET", "/?limit=2&limit=9"), "limit")
    Traceback (most recent call last):
    ...
    streams.api.errors.ApiError: the limit parameter must come once, not 2 times
    """
    values = request.query.getall(name, ())
    if len(values) > 1:
        raise ApiError(400, "duplicate_parameter", f"the {name} parameter must come once, "
                       f"not {len(values)} times", [{"parameter": name}])  # fmt: skip
    return values[0] if values else default


def _presented_key(request: web.Request, key_in_query: bool) -> str | None:
    """The key the request presents: in ``Authorization: Bearer``, ``X-API-Key`` or (where
    ``key_in_query``) ``?api_key=``; a 400 ``conflicting_credentials`` when two of them
    hold different keys (the API would act on one, a gateway in front maybe on the other).
    """
    header = sent_once(request, "Authorization") or ""
    bearer = header[7:].strip() if header.lower().startswith("bearer ") else None
    api_key = sent_once(request, "X-API-Key")  # checked even when a bearer token comes
    in_query = query_once(request, "api_key") if key_in_query else None
    if len({key.strip() for key in (bearer, api_key, in_query) if key and key.strip()}) > 1:
        raise ApiError(400, "conflicting_credentials", "send one key: two different keys "
                       "came (in Authorization, X-API-Key or api_key)")  # fmt: skip
    return bearer or api_key or in_query


def _checked_key(request: web.Request, scope: str, key_in_query: bool = False) -> ApiKey:
    """The request's key if it may act in ``scope`` (see :func:`authorise`); raises
    :class:`AuthError` otherwise, or :class:`ApiError` 429 for a key that is not valid
    once the process has refused too many of those (see
    :data:`streams.api.server.WRONG_KEYS_PER_S`), and for a valid key refused for its
    scope or origin once it is over its rate (each such refusal takes from it)."""
    token = _presented_key(request, key_in_query)
    origin, referer = sent_once(request, "Origin"), sent_once(request, "Referer")
    api = api_of(request)
    try:
        return api.keys.authorise(token, scope, origin, referer)
    except AuthError as exc:
        if exc.status == 401 and token and (wait := api.wrong_keys.allow(WRONG_KEYS)):
            raise rate_limited(wait, "too many requests with API keys that are not valid") from None
        if exc.key is not None and (
            wait := api.limiter.allow(exc.key.name, visitor_of(request, exc.key))
        ):
            raise rate_limited(wait, f"too many requests for key {exc.key.name!r}") from None
        raise


def visitor_of(request: web.Request, key: ApiKey) -> str | None:
    """The visitor whose bucket a request with ``key`` takes from, for a key bound to web
    pages' origins (:mod:`streams.api.visitors`); None for any other key (its own bucket).
    Never logged: an address is personal data."""
    if not key.origins:
        return None
    forwarded = request.headers.getall("X-Forwarded-For", ())
    return visitor(request.remote, forwarded, api_of(request).trusted_proxies)


def rate_limited(wait: float, message: str) -> ApiError:
    """429, with whole seconds to wait, rounded up, in the body as in the header (a body
    saying 0.0 had clients retry at once)."""
    after = max(1, math.ceil(wait))
    return ApiError(429, "rate_limited", message, [{"retry_after_s": after}],
                    headers={"Retry-After": str(after)})  # fmt: skip


def continue_for(scope: str) -> Callable[[web.Request], Awaitable[web.StreamResponse | None]]:
    """The expect handler of a route that takes a body in ``scope``: ``Expect:
    100-continue`` invites the body only from a key that may send it now; any other is
    answered (401, 403, 429 for a key over its rate, 413 for a body announced too
    large, or 503 for one the process has no room to receive now) before the body
    comes."""

    async def expecting(request: web.Request) -> web.StreamResponse | None:
        if request.headers.get("Expect", "").lower() == "100-continue":
            try:
                key = _checked_key(request, scope)
                # taken once it is sent
                if wait := api_of(request).limiter.wait(key.name, visitor_of(request, key)):
                    raise rate_limited(wait, f"too many requests for key {key.name!r}")
                check_announced_size(request)
                if not api_of(request).uploads.has_room(
                    key.name, announced_size(request), visitor_of(request, key)
                ):
                    raise too_many_uploads()  # (taken once it is sent, if there is room then)
            except AuthError as exc:
                return before_the_body(request, refused(exc))
            except ApiError as exc:
                refusal = error_response(
                    exc.status, exc.code, exc.message, exc.details, exc.headers
                )
                return before_the_body(request, refusal)
        return await expect_continue(request)

    return expecting


_PERCENT_ENCODED = re.compile(r"(?:[^%]|%[0-9A-Fa-f]{2})*")


def customer_id_of(request: web.Request, to_act_on: bool = False) -> str:
    """The path's customer id. ``to_act_on``: one to decide for (which makes a profile),
    so also as touchpoints must name one (:mod:`schemas.customer_ids`); reading and
    erasing take any id within the length, so that a profile made before that rule
    can still be read and erased."""
    customer_id = request.match_info["customer_id"]
    if not 0 < len(customer_id) <= 256:
        raise ApiError(400, "invalid_customer_id", "customer id must be 1 to 256 characters")
    if "%" in customer_id or not customer_id.isascii():  # as sent: is it encoded well?
        # the request target as it came (yarl re-encodes what it finds ill-encoded), in
        # origin or absolute form: /v1/customers/{id}[/...][?...], http://host/v1/...
        sent = urllib.parse.urlsplit(request.raw_path).path.split("/")[3]
        try:
            if not _PERCENT_ENCODED.fullmatch(sent):
                raise ValueError(sent)
            urllib.parse.unquote_to_bytes(sent).decode("utf-8")
        except ValueError as exc:  # left as sent, "a%FF" would be the same id as "a%25FF"
            raise ApiError(400, "invalid_customer_id", "the customer id is not well "
                           "percent-encoded UTF-8") from exc  # fmt: skip
    fault = id_fault(customer_id) if to_act_on else None
    if fault is not None:
        raise ApiError(400, "invalid_customer_id", f"the customer id {fault}")
    return customer_id
