"""The event type a touchpoint record holds, for counting it in a batch set aside whole."""

from __future__ import annotations

from agents.letters import SourceRecord
from schemas import InvalidEvent, decode_touchpoint
from schemas.errors import record_value


def type_of(record: SourceRecord) -> str:
    """The type of the touchpoint ``record`` holds; for one that cannot be decoded, the
    type it claims when Moments knows it (as its ``invalid`` count says), else "unknown".

    >>> from types import SimpleNamespace as Record
    >>> click = (b'{"type": "web_click", "event_id": "e1", "customer_id": "c1",'
    ...          b' "ts": "2026-01-01T00:00:00Z", "page": "/"}')
    >>> undated = b'{"type": "web_click", "ts": "yesterday"}'
    >>> [type_of(Record(value=v)) for v in (click, undated, b'{"type": "x"}', b"{", None)]
    ['web_click', 'web_click', 'unknown', 'unknown', 'unknown']
    """
    try:
        return decode_touchpoint(record_value(record.value)).kind
    except InvalidEvent as exc:
        return exc.kind
    except Exception:  # the decoder's own fault (which may be what failed the batch)
        return "unknown"
