"""Properties of what the HTTP API does with what clients send: customer ids in the path,
rate limits per key, CORS origins, and the JSON body of every error.

These are the API's promises to websites, contact-centre screens and back ends
(docs/http-api.md): an id reaches the customer it names, a key never gets more than its rate,
only configured web pages may call from a browser, and every error is JSON a client can
act on.
"""

from __future__ import annotations

import asyncio
import copy
import json
import math
import string
import urllib.parse
from collections.abc import Awaitable, Callable
from functools import cache
from typing import Any, TypeVar

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from hypothesis import example, given, settings
from hypothesis import strategies as st

from schemas.customer_ids import id_fault
from streams.api.cors import CorsPolicy
from streams.api.errors import ApiError, error_response, json_errors
from streams.api.origins import parse_origins
from streams.api.ratelimit import RateLimiter
from streams.api.request_checks import customer_id_of
from tests.unit.api_app import api_app

T = TypeVar("T")


def run(coroutine: Awaitable[T]) -> T:
    """Run ``coroutine`` on an event loop of its own (the tests' shared loop untouched)."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coroutine)
    finally:
        loop.close()


# --------------------------------------------------------------------------------------
# Customer ids in the path
# --------------------------------------------------------------------------------------

CUSTOMER_PATHS = ["/v1/customers/{}/recommendations", "/v1/customers/{}", "/v1/customers/{}/export"]
# characters a client may leave unencoded in a path segment (RFC 3986 sub-delims, ":",
# "@", unreserved), and braces, which some clients leave too
LEFT_AS_THEY_ARE = ["", "!$&'()*+,;=:@", "~-._", "{}"]


@cache
def app() -> web.Application:
    return api_app()


async def path_match(method: str, path: str) -> web.Request:
    """A request for ``path`` with what the API's router matched in it."""
    match = await app().router.resolve(make_mocked_request(method, path, app=app()))
    assert match.http_exception is None, (path, match.http_exception)
    return make_mocked_request(method, path, app=app(), match_info=dict(match))


@settings(max_examples=60, deadline=None)
@given(
    st.text(min_size=1, max_size=256).filter(lambda s: s not in (".", "..")),
    st.sampled_from(CUSTOMER_PATHS),
    st.sampled_from(LEFT_AS_THEY_ARE),
)
@example("%", CUSTOMER_PATHS[0], "")
@example("a/b", CUSTOMER_PATHS[1], "")
@example("%2e%2e", CUSTOMER_PATHS[2], "")
@example("{x}", CUSTOMER_PATHS[1], "{}")
@example("Jose\u0301", CUSTOMER_PATHS[0], "")
@example("\u202eevil", CUSTOMER_PATHS[0], "")
def test_a_percent_encoded_customer_id_reaches_its_customer_exactly(
    customer_id: str, path: str, left: str
) -> None:
    """Any id of 1 to 256 characters, percent-encoded as UTF-8 (``/``, ``%``, ``..``
    inside and braces included), reaches the customer routes exactly as it is (reading and
    erasing take any such id); deciding for it refuses exactly the ids the contract
    refuses, with ``invalid_customer_id``."""
    request = run(path_match("GET", path.format(urllib.parse.quote(customer_id, safe=left))))
    assert customer_id_of(request) == customer_id
    if id_fault(customer_id) is None:
        assert customer_id_of(request, to_act_on=True) == customer_id
    else:
        with pytest.raises(ApiError) as info:
            customer_id_of(request, to_act_on=True)
        assert (info.value.status, info.value.code) == (400, "invalid_customer_id")


# --------------------------------------------------------------------------------------
# Rate limits
# --------------------------------------------------------------------------------------

# the gap before each round of requests: none, a fraction of a second, or a long idle
# spell; and how many a key sends at once then
gaps = st.just(0.0) | st.floats(0, 1) | st.floats(0, 600)
rounds = st.lists(
    st.tuples(gaps, st.sampled_from(["shop", "screen"]), st.integers(1, 12)), max_size=30
)
requests = rounds.map(
    lambda rs: [(gap if i == 0 else 0.0, key) for gap, key, n in rs for i in range(n)]
)
rates = st.floats(0.01, 1000)
bursts = st.integers(1, 8) | st.integers(1, 400)


@settings(max_examples=80, deadline=None)
@given(rates, bursts, requests)
def test_a_key_never_gets_more_than_its_burst_plus_its_rate(
    rate: float, burst: int, sent: list[tuple[float, str]]
) -> None:
    """Over any span of time t, however requests are spread, each key is let through at
    most burst + rate x t times (a key idle for long saves up its burst and no more)."""
    limiter = RateLimiter(rate, burst)
    now = 0.0
    allowed: dict[str, list[float]] = {"shop": [], "screen": []}
    for gap, key in sent:
        now += gap
        if limiter.allow(key, now) == 0.0:
            allowed[key].append(now)
    for times in allowed.values():
        # from the i-th to the j-th let through, j - i + 1 in t_j - t_i: for each j, the
        # worst i (the largest rate * t_i - i) is kept as j goes (float rounding aside)
        worst = -math.inf
        for j, t in enumerate(times):
            worst = max(worst, rate * t - j)
            assert (j + 1 - rate * t) + worst <= burst + 1e-3


@settings(max_examples=80, deadline=None)
@given(rates, bursts, requests)
def test_a_refused_request_is_told_a_wait_that_is_enough(
    rate: float, burst: int, sent: list[tuple[float, str]]
) -> None:
    """``wait`` answers what ``allow`` then does, taking nothing; a refusal's wait is at
    most one token's time, and a request sent again after it goes through (what
    ``Retry-After`` tells a client)."""
    limiter = RateLimiter(rate, burst)
    now = 0.0
    for gap, key in sent:
        now += gap
        waited = limiter.wait(key, now)
        answer = limiter.allow(key, now)
        assert (waited == 0.0) == (answer == 0.0)
        assert math.isclose(waited, answer, rel_tol=1e-9, abs_tol=1e-12)
        if answer > 0.0:
            assert answer <= 1 / rate * (1 + 1e-9)
            later = copy.deepcopy(limiter)
            assert later.allow(key, now + answer * (1 + 1e-9) + 1e-9) == 0.0


# --------------------------------------------------------------------------------------
# CORS origins
# --------------------------------------------------------------------------------------

_labels = st.text(string.ascii_letters + string.digits, min_size=1, max_size=8)
hosts = st.lists(_labels | _labels.map(lambda label: f"{label}-{label}"), min_size=1, max_size=4)


@st.composite
def origins(draw: st.DrawFn) -> str:
    """An origin as an operator may write it: scheme in any case, a port or none (the
    default one written or not), a trailing slash or none."""
    scheme = draw(st.sampled_from(["http", "https", "HTTP", "Https"]))
    port = draw(st.none() | st.sampled_from([80, 443]) | st.integers(1, 65535))
    slash = draw(st.sampled_from(["", "/"]))
    return f"{scheme}://{'.'.join(draw(hosts))}" + ("" if port is None else f":{port}") + slash


def as_browsers_send(origin: str) -> str:
    """The ``Origin`` header a browser sends from a page of ``origin`` (RFC 6454: scheme
    and host in lower case, no default port, no path)."""
    url = urllib.parse.urlsplit(origin)
    scheme, port = url.scheme.lower(), url.port
    default = {"http": 80, "https": 443}[scheme]
    return f"{scheme}://{url.hostname}" + ("" if port in (None, default) else f":{port}")


# what a page elsewhere may send that looks like an allowed origin
LOOK_ALIKES: list[Callable[[str], str]] = [
    lambda o: o + "x",  # a longer host, or another port
    lambda o: o + ".evil.test",
    lambda o: o + ":8443",
    lambda o: o.replace("://", "://www.", 1),
    lambda o: o.replace("https://", "http://", 1) if o.startswith("https") else "https" + o[4:],
    lambda o: o + "/",
]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(origins(), min_size=1, max_size=4),
    origins(),
    st.sampled_from(LOOK_ALIKES),
    st.sampled_from([",", ", "]),
)
def test_cors_allows_exactly_the_configured_origins_as_browsers_send_them(
    configured: list[str], other: str, look_alike: Callable[[str], str], separator: str
) -> None:
    """Each origin of ``MOMENTS_API_CORS_ORIGINS``, however written, is allowed as
    browsers send it (and echoed back); any other origin is not, one that looks like an
    allowed one included; ``*`` allows any, and a request with no ``Origin`` gets no CORS
    headers."""
    policy = CorsPolicy(parse_origins(separator.join(configured)))
    sent = {as_browsers_send(origin) for origin in configured}
    for origin in sent:
        assert policy.allowed(origin) == origin
    for stranger in (as_browsers_send(other), look_alike(min(sent))):
        assert (policy.allowed(stranger) is not None) == (stranger in sent), stranger
        assert CorsPolicy(parse_origins("*")).allowed(stranger) == "*"
    assert policy.allowed(None) is None


# --------------------------------------------------------------------------------------
# Error bodies
# --------------------------------------------------------------------------------------

# header bytes that were not UTF-8 come in as lone surrogates (U+DC80..U+DCFF)
messages = st.text(max_size=60) | st.lists(
    st.characters() | st.integers(0xDC80, 0xDCFF).map(chr), max_size=20
).map("".join)
details = st.none() | st.lists(
    st.fixed_dictionaries({"index": st.integers(0, 1000), "reason": st.text(max_size=30)}),
    max_size=3,
)


def error_body(response: web.StreamResponse) -> dict[str, Any]:
    """The JSON of an error answer, checked to be just the documented fields."""
    assert isinstance(response, web.Response) and response.body is not None
    assert response.content_type == "application/json"
    assert isinstance(response.body, bytes)
    body = json.loads(response.body.decode("utf-8"))
    assert isinstance(body, dict) and set(body) <= {"error", "message", "details"}
    assert isinstance(body["error"], str) and isinstance(body["message"], str)
    return body


def as_utf8(text: str) -> str:
    """What the API answers for ``text``: itself, or with the lone surrogates (header
    bytes that were not UTF-8) escaped."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode()
    return text


@settings(max_examples=80, deadline=None)
@given(st.integers(400, 599), st.text(max_size=20), messages, details)
def test_an_error_is_json_with_its_code_message_and_details(
    status: int, code: str, message: str, listed: list[dict[str, Any]] | None
) -> None:
    """``error_response``: the status given, a JSON body ``{"error", "message"}``, with
    ``"details"`` exactly when there are some; any message can be answered, lone
    surrogates included."""
    body = error_body(error_response(status, code, message, listed))
    assert (body["error"], body["message"]) == (code, as_utf8(message))
    assert body.get("details") == listed and ("details" in body) == (listed is not None)


failures = st.one_of(
    st.builds(ApiError, st.integers(400, 599), st.text(max_size=20), messages, details),
    st.sampled_from(
        [
            web.HTTPBadRequest(),
            web.HTTPNotFound(),
            web.HTTPForbidden(),
            web.HTTPConflict(),
            web.HTTPMethodNotAllowed("PUT", ["GET", "DELETE"]),
            web.HTTPRequestEntityTooLarge(10, 20),
            web.HTTPUnsupportedMediaType(),
            web.HTTPServiceUnavailable(),
            web.HTTPGatewayTimeout(),
        ]
    ),
    st.builds(RuntimeError, st.text(max_size=40)),  # logged: no lone surrogates
    st.builds(KeyError, st.text(max_size=40)),
)


@settings(max_examples=50, deadline=None)
@given(failures)
def test_whatever_a_view_raises_the_answer_is_a_json_error(failure: Exception) -> None:
    """Whatever a view raises (an API error, an HTTP exception, a bug), the API answers
    a JSON error with its status; an unexpected one is a 500 that says nothing of it."""

    async def view(_: web.Request) -> web.StreamResponse:
        raise failure

    request = make_mocked_request("PUT", "/v1/customers/c-42")
    body = error_body(run(json_errors(request, view)))
    if isinstance(failure, ApiError):
        assert (body["error"], body["message"]) == (failure.code, as_utf8(failure.message))
    elif not isinstance(failure, web.HTTPException):
        assert body == {"error": "internal_error", "message": "something went wrong on our side"}
