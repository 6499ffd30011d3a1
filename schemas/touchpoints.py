"""Touchpoint events: every kind of customer contact, as a tagged union on ``type``.

>>> event = decode_touchpoint(
...     b'{"type": "web_click", "event_id": "e1", "customer_id": "c1",'
...     b' "ts": "2026-11-23T14:05:00.123Z", "page": "/offers"}'
... )
>>> type(event).__name__, event.page
('WebClick', '/offers')
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import msgspec

from schemas.customer_ids import check_customer_id
from schemas.duplicate_keys import duplicate_key
from schemas.errors import InvalidEvent, decode_wire, describe
from schemas.timezones import is_timezone

Timestamp = Annotated[datetime, msgspec.Meta(tz=True)]
CALENDAR_ENDS = (1, 9999)  # years Python cannot always put in UTC or a customer's zone
# Of an event's time, only the last is refused: year 1 is the "zero" time of Go and .NET,
# which a producer that left it unset sends, and such an event is taken as expired (a
# consent withdrawal it carries is kept), as any event that old
LAST_YEAR = (9999,)
Sentiment = Annotated[float, msgspec.Meta(ge=-1.0, le=1.0)]
NonEmpty = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
# copied into the alerts a call raises: a longer one could make the alert too large for
# Kafka, and its whole batch would be given up
Label = Annotated[str, msgspec.Meta(max_length=256)]
Channel = Literal["email", "sms", "call", "web", "all"]
# kept in the customer's profile for as long as it lives, one field each
Category = Annotated[str, msgspec.Meta(max_length=256)]
MAX_CATEGORIES = 1000  # distinct or not, per purchase


class Touchpoint(msgspec.Struct, tag_field="type", frozen=True, kw_only=True):
    """Fields every touchpoint carries; ``event_id`` is the idempotency key.

    ``timezone`` (optional, an IANA name such as ``"Europe/Paris"``) is the customer's
    own, where the producer knows it (a browser, a phone number's country): quiet hours
    are then read in it. It is an extension of the contract, whose unknown fields are
    ignored: a producer may already send a ``timezone`` of its own kind (``"UTC+1"``,
    minutes east), so any value that is not an IANA name is taken as no timezone, and
    the event as it is.
    """

    event_id: NonEmpty
    customer_id: NonEmpty
    ts: Timestamp
    timezone: Any = None  # after decoding: an IANA name, or None

    def __post_init__(self) -> None:
        check_customer_id(self.customer_id)
        check_ts(self.ts, LAST_YEAR)
        if (first := on_the_calendar(self.ts)) is not self.ts:
            msgspec.structs.force_setattr(self, "ts", first)
        if self.timezone is not None and not (
            isinstance(self.timezone, str) and is_timezone(self.timezone)
        ):
            msgspec.structs.force_setattr(self, "timezone", None)

    @property
    def kind(self) -> str:
        """The wire ``type`` of this event."""
        return str(type(self).__struct_config__.tag)


FIRST_INSTANT = datetime(1, 1, 1, tzinfo=UTC)


def on_the_calendar(ts: datetime) -> datetime:
    """``ts``, or the calendar's first instant in UTC for a time before it: a zero time
    written with a local offset east of UTC (``0001-01-01T00:00:00+01:00``, as Go's
    ``time.Date(1, 1, 1, ...)`` in a local zone or .NET's ``DateTime.MinValue`` with its
    ``K`` give it) is year 0 in UTC, which no ``datetime`` holds. Taken as the year-1 time
    it means (expired, a withdrawal it carries kept).

    >>> on_the_calendar(datetime.fromisoformat("0001-01-01T00:00:00+14:00"))
    datetime.datetime(1, 1, 1, 0, 0, tzinfo=datetime.timezone.utc)
    """
    if not isinstance(ts, datetime):  # (typed by the decoder)
        return ts
    offset = ts.utcoffset()
    if ts.year == 1 and offset is not None and offset > timedelta(0):
        try:
            ts.astimezone(UTC)
        except OverflowError:
            return FIRST_INSTANT
    return ts


def check_ts(ts: datetime, years: tuple[int, ...] = CALENDAR_ENDS) -> None:
    """Raise :class:`ValueError` for a time in one of ``years`` (by default the
    calendar's first and last, which no decision is dated in): counting it in a
    customer's day, a budget's or UTC could take it past the calendar's end (for a
    decoder's ``__post_init__``).

    >>> check_ts(datetime.fromisoformat("9999-12-31T23:00:00-05:00"))
    Traceback (most recent call last):
    ...
    ValueError: ts 9999-12-31T23:00:00-05:00 is in year 9999, at an end of the calendar - at `$.ts`
    """
    if isinstance(ts, datetime) and ts.year in years:  # (typed by the decoder)
        raise ValueError(
            f"ts {ts.isoformat()} is in year {ts.year}, at an end of the calendar - at `$.ts`"
        )


class WebClick(Touchpoint, tag="web_click", frozen=True, kw_only=True):
    page: str
    category: Category | None = None
    product_id: str | None = None
    session_id: str | None = None


# Upper bounds of the figures Moments adds up in 64-bit counters (amounts in cents): far
# beyond any real purchase or audience, and low enough that a customer's sums overflow
# only after some 92,000 purchases of the largest amount (the store then refuses the
# event whole, before any write, and the worker sets it aside).
MAX_AMOUNT = 1e12
MAX_REACH = 10**10


def queue_named(queue: str | None) -> str | None:
    """A contact-centre queue as named, none for a blank name: an alert for no queue in
    particular, which every screen shows.

    >>> queue_named("billing"), queue_named(""), queue_named("  "), queue_named(None)
    ('billing', None, None, None)
    """
    return queue if queue and not queue.isspace() else None


class Call(Touchpoint, tag="call", frozen=True, kw_only=True):
    status: Literal["started", "ended"]
    direction: Literal["inbound", "outbound"]
    reason: Literal["sales", "support", "billing", "complaint", "cancel", "other"]
    duration_s: Annotated[float, msgspec.Meta(ge=0)] | None = None
    sentiment: Sentiment | None = None
    queue: Label | None = None
    agent_id: Label | None = None
    # the alert an outbound call was made from (its ``intervention_id``): such a call is
    # counted against the customer's call caps (feature_store/card_calls.py)
    intervention_id: Label | None = None


class Email(Touchpoint, tag="email", frozen=True, kw_only=True):
    action: Literal["sent", "delivered", "opened", "clicked", "bounced", "unsubscribed", "replied"]
    campaign_id: str | None = None


class SocialMention(Touchpoint, tag="social_mention", frozen=True, kw_only=True):
    """``reach`` is a whole number, which JSON may write as ``1200``, ``1200.0`` or
    ``1.2e3`` alike (it is kept as an int)."""

    platform: str
    sentiment: Sentiment
    reach: (
        Annotated[int, msgspec.Meta(ge=0, le=MAX_REACH)]
        | Annotated[float, msgspec.Meta(ge=0, le=MAX_REACH)]
        | None
    ) = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.reach, float):
            if not self.reach.is_integer():
                raise ValueError(f"reach {self.reach} is not a whole number - at `$.reach`")
            msgspec.structs.force_setattr(self, "reach", int(self.reach))


class Purchase(Touchpoint, tag="purchase", frozen=True, kw_only=True):
    """``currency`` is three letters, kept in upper case (``eur`` is ``EUR``); the
    optional ``categories`` may be null, as none."""

    order_id: NonEmpty
    amount: Annotated[float, msgspec.Meta(ge=0, le=MAX_AMOUNT)]
    currency: Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z]{3}\Z")]
    categories: Annotated[list[Category], msgspec.Meta(max_length=MAX_CATEGORIES)] | None = (
        msgspec.field(default_factory=list)
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.currency.isupper():
            msgspec.structs.force_setattr(self, "currency", self.currency.upper())
        if self.categories is None:
            msgspec.structs.force_setattr(self, "categories", [])


class Survey(Touchpoint, tag="survey", frozen=True, kw_only=True):
    score: float
    scale: Literal["csat5", "nps"]

    def __post_init__(self) -> None:
        super().__post_init__()
        low, high = (1, 5) if self.scale == "csat5" else (0, 10)
        if not low <= self.score <= high:
            raise ValueError(
                f"score {self.score} is outside {low}..{high} for scale {self.scale} - at `$.score`"
            )


class Consent(Touchpoint, tag="consent", frozen=True, kw_only=True):
    channel: Channel
    granted: bool


TouchpointEvent = WebClick | Call | Email | SocialMention | Purchase | Survey | Consent
TOUCHPOINT_TYPES: tuple[type[Touchpoint], ...] = (
    WebClick,
    Call,
    Email,
    SocialMention,
    Purchase,
    Survey,
    Consent,
)
EVENT_TYPES: tuple[str, ...] = tuple(str(t.__struct_config__.tag) for t in TOUCHPOINT_TYPES)

# annotated: older msgspec stubs give a decoder of a union the type Decoder[Any]
_decoder: msgspec.json.Decoder[TouchpointEvent] = msgspec.json.Decoder(TouchpointEvent)
_many_decoder = msgspec.json.Decoder(list[TouchpointEvent])
_encoder = msgspec.json.Encoder()


class _Typed(msgspec.Struct):
    type: str


_typed_decoder = msgspec.json.Decoder(_Typed)


def claimed_type(raw: bytes | str) -> str:
    """The event type a record names, when it is one Moments knows; else ``"unknown"``
    (a metric label: never anything a producer made up).

    >>> claimed_type(b'{"type": "web_click", "ts": "yesterday"}'), claimed_type(b'{"type": "x"}')
    ('web_click', 'unknown')
    """
    try:
        kind = decode_wire(_typed_decoder, raw).type
    except msgspec.DecodeError:
        return "unknown"
    return kind if kind in EVENT_TYPES else "unknown"


def decode_touchpoint(raw: bytes | str) -> TouchpointEvent:
    """Decode one touchpoint; raises :class:`InvalidEvent` naming the field and problem,
    and the type the record claims (see :func:`claimed_type`). A record naming a key
    twice is refused (:mod:`schemas.duplicate_keys`)."""
    try:
        event = decode_wire(_decoder, raw)
    except msgspec.DecodeError as exc:
        raise InvalidEvent(describe(exc), claimed_type(raw)) from exc
    twice = duplicate_key(raw)
    if twice is not None:
        raise InvalidEvent(twice, event.kind)
    return event


def decode_touchpoints(raw: bytes | str) -> list[TouchpointEvent]:
    """Decode a JSON list of touchpoints (all or nothing)."""
    try:
        events = decode_wire(_many_decoder, raw)
    except msgspec.DecodeError as exc:
        raise InvalidEvent(describe(exc)) from exc
    twice = duplicate_key(raw)
    if twice is not None:
        raise InvalidEvent(twice)
    return events


def encode_touchpoint(event: Touchpoint) -> bytes:
    """Encode a touchpoint to its wire JSON (``type`` first)."""
    return _encoder.encode(event)
