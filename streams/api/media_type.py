"""The media type a posted body must be sent as: JSON, in UTF-8.

Items go on to Kafka as sent, and JSON between systems is UTF-8 (RFC 8259 section 8.1):
a body declared in another charset is refused, not read as UTF-8 regardless (a Latin-1
``José`` that happens to be valid UTF-8 would have been stored as another customer id;
a UTF-16 body was called malformed). No charset, ``utf-8`` or ``utf8`` in any case, is
taken.

>>> json_charset_fault("application/json; charset=UTF-8") is None
True
>>> json_charset_fault('application/json; charset="iso-8859-1"')
"charset 'iso-8859-1'"
>>> json_charset_fault("application/json; charset=utf-8; charset=latin-1")
"charset 'latin-1'"
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.helpers import parse_mimetype

from streams.api.errors import ApiError

UTF8 = ("utf-8", "utf8")
SHOWN = 40  # characters of a refused charset named in the answer, at most


def json_charset_fault(content_type: str) -> str | None:
    """The charset a ``Content-Type`` of JSON names other than UTF-8 (the first, when it
    names several), as a phrase; None when it names none or only UTF-8."""
    for charset in parse_mimetype(content_type).parameters.getall("charset", ()):
        if charset.lower() not in UTF8:
            return f"charset {charset[:SHOWN]!r}"
    return None


def check_json_body(request: web.Request) -> None:
    """A 415 ``unsupported_media_type`` for a body not sent as JSON in UTF-8."""
    if request.content_type != "application/json":
        raise ApiError(415, "unsupported_media_type", "send the body as application/json")
    fault = json_charset_fault(request.headers.get("Content-Type", ""))
    if fault is not None:
        raise ApiError(415, "unsupported_media_type", f"the body's {fault} is not UTF-8: "
                       "send it as application/json in UTF-8")  # fmt: skip
