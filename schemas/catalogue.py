"""The offer catalogue that CRM analysts maintain (a TOML or JSON file)."""

from __future__ import annotations

import functools
import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Literal, get_args

import msgspec

from schemas.contact_rules import ContactRules

OfferChannel = Literal["web", "email", "sms", "call"]
OFFER_CHANNELS: tuple[OfferChannel, ...] = get_args(OfferChannel)  # where offers are made
Segment = Literal["model", "growth", "at_risk", "dangling", "new"]
Instant = Annotated[datetime, msgspec.Meta(tz=True)]  # with its UTC offset
# Upper bounds that also keep infinity out (NaN never passes a bound): what is worth more,
# weighs more, or waits longer than this is a typo, and would break the arithmetic.
MAX_VALUE = 1e12  # a purchase's amount may be as large (in any currency: yen, dong)
MAX_PRIORITY = 1e6
MAX_COOLDOWN_S = 366 * 86_400  # a year


# A key the catalogue does not know is refused, naming it: a misspelt limit (a campaign's
# end, a budget, a cap) would otherwise be dropped without a word.
class Offer(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    offer_id: Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}\Z")]
    title: str
    channels: Annotated[list[OfferChannel], msgspec.Meta(min_length=1)]
    segments: list[Segment] = msgspec.field(default_factory=list)
    categories: list[str] = msgspec.field(default_factory=list)
    value: Annotated[float, msgspec.Meta(ge=0, le=MAX_VALUE)] = 0.0
    # the share of ``value`` the business keeps (0 to 1); not given: the whole of it
    margin: Annotated[float, msgspec.Meta(ge=0, le=1)] | None = None
    priority: Annotated[float, msgspec.Meta(gt=0, le=MAX_PRIORITY)] = 1.0
    cooldown_s: Annotated[int, msgspec.Meta(ge=0, le=MAX_COOLDOWN_S)] = 0
    # how long after the customer accepted it the offer is not made to them again: not
    # given, for good (as long as Moments keeps their profile): a customer who took the
    # premium upgrade is not offered it again; 0: as soon as its cool-down allows (an
    # offer taken again and again, free shipping say)
    after_accepted_s: Annotated[int, msgspec.Meta(ge=0, le=MAX_COOLDOWN_S)] | None = None
    min_purchases: Annotated[int, msgspec.Meta(ge=0)] = 0
    # per customer, over seven of their days (today and the six before it, from their
    # local midnight: the fatigue caps' week)
    max_per_week: Annotated[int, msgspec.Meta(ge=1)] | None = None
    daily_limit: Annotated[int, msgspec.Meta(ge=1)] | None = None  # across all customers
    script: str = ""
    available_from: Instant | None = None  # a campaign's first moment
    available_until: Instant | None = None  # and the moment it ends (not included)

    def __post_init__(self) -> None:
        start, end = self.available_from, self.available_until
        if start is not None and end is not None and end <= start:
            raise ValueError(
                f"offer {self.offer_id!r} ends ({end.isoformat()}) before it starts "
                f"({start.isoformat()})"
            )

    @property
    def worth(self) -> float:
        """What showing it is worth to the business, as both policies rank by: its value
        times the share kept (``margin``; not given, all of it), at least 1, so that an
        offer worth little never outranks one worth more; times its ``priority``.

        >>> [Offer(offer_id="o", title="O", channels=["web"], value=100.0, margin=m).worth
        ...  for m in (None, 0.5, 0.0)]
        [100.0, 50.0, 1.0]
        """
        margin = 1.0 if self.margin is None else self.margin  # 0: it earns nothing
        return max(self.value * margin, 1.0) * self.priority

    def available_at(self, now: datetime) -> bool:
        """Whether the offer may be made at ``now`` (an offer without dates always may).

        >>> from datetime import UTC, datetime
        >>> sale = Offer(offer_id="sale", title="Sale", channels=["web"],
        ...              available_from=datetime(2026, 12, 1, tzinfo=UTC),
        ...              available_until=datetime(2027, 1, 1, tzinfo=UTC))
        >>> [sale.available_at(datetime(2026, m, 1, tzinfo=UTC)) for m in (11, 12)]
        [False, True]
        >>> sale.available_at(datetime(2027, 1, 1, tzinfo=UTC))
        False
        """
        start, end = self.available_from, self.available_until
        return (start is None or start <= now) and (end is None or now < end)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _in_utc(said: object) -> object:
    """``said`` (builtins) with every instant in UTC; one that UTC cannot write (a
    campaign that "never ends", ``9999-12-31T23:59:59-05:00``) as microseconds since
    1970.

    >>> from datetime import timedelta, timezone
    >>> _in_utc([datetime(2026, 12, 1, 1, tzinfo=timezone(timedelta(hours=1)))])
    [datetime.datetime(2026, 12, 1, 0, 0, tzinfo=datetime.timezone.utc)]
    >>> far = [datetime(9999, 12, 31, h, tzinfo=timezone(timedelta(hours=h - 28)))
    ...        for h in (23, 22)]  # 10000-01-01T04:00Z, written two ways
    >>> [_in_utc(instant) for instant in far]
    [253402315200000000, 253402315200000000]
    """
    if isinstance(said, datetime):
        try:
            return said.astimezone(UTC)
        except OverflowError:
            return (said - _EPOCH) // timedelta(microseconds=1)
    if isinstance(said, dict):
        return {key: _in_utc(value) for key, value in said.items()}
    if isinstance(said, list):
        return [_in_utc(value) for value in said]
    return said


# dict=True: room for the offers' index, worked out once per catalogue (it never changes)
class OfferCatalogue(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, dict=True
):
    version: str
    offers: Annotated[list[Offer], msgspec.Meta(min_length=1)]
    default_offers: list[str] = msgspec.field(default_factory=list)
    contact_policy: ContactRules = msgspec.field(default_factory=ContactRules)

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for offer in self.offers:
            if offer.offer_id in seen:
                raise ValueError(f"duplicate offer_id {offer.offer_id!r}")
            seen.add(offer.offer_id)
        unknown = [o for o in self.default_offers if o not in seen]
        if unknown:
            raise ValueError(f"default_offers names unknown offers {unknown}")
        repeated = sorted({o for o in self.default_offers if self.default_offers.count(o) > 1})
        if repeated:  # a fallback would show (and log) one offer twice
            raise ValueError(f"default_offers names offers more than once: {repeated}")
        limited = [o.offer_id for o in self.offers
                   if o.offer_id in self.default_offers and o.daily_limit is not None]  # fmt: skip
        if limited:  # fallbacks are answered when the budgets cannot be read
            raise ValueError(f"default offers cannot have a daily_limit: {limited}")

    def digest(self) -> str:
        """A short fingerprint of what the catalogue says (not of how its file is laid
        out): two processes with one version and different contents tell apart by it.
        The order of the offers and of their lists counts, as written.

        >>> def titled(title: str) -> OfferCatalogue:
        ...     offer = Offer(offer_id="a", title=title, channels=["web"])
        ...     return OfferCatalogue(version="v1", offers=[offer])
        >>> one, two = titled("A"), titled("B")
        >>> len(one.digest()), one.digest() == two.digest()
        (12, False)
        """
        # in a fixed order: the file's order of a table's keys changes no digest; and an
        # instant counts as the same written in any UTC offset
        said = msgspec.to_builtins(self, builtin_types=(datetime,), order="deterministic")
        return hashlib.sha256(msgspec.json.encode(_in_utc(said))).hexdigest()[:12]

    def daily_limits(self) -> dict[str, int]:
        """The offers with a daily budget across all customers, and their limits."""
        return {o.offer_id: o.daily_limit for o in self.offers if o.daily_limit is not None}

    @functools.cached_property
    def _index(self) -> dict[str, Offer]:
        return {o.offer_id: o for o in self.offers}

    def by_id(self, offer_id: str) -> Offer | None:
        return self._index.get(offer_id)

    def defaults_for(self, channel: str, now: datetime, limit: int) -> list[Offer]:
        """The safe default offers (for fallback answers) that may be made on ``channel``
        at ``now``, in the catalogue's order of ``default_offers``."""
        found = (self.by_id(offer_id) for offer_id in self.default_offers)
        usable = [o for o in found if o and channel in o.channels and o.available_at(now)]
        return usable[:limit]


class CatalogueError(ValueError):
    """The catalogue file is missing or invalid; the message says where and why."""


def load_catalogue(path: str | Path, raw: bytes | None = None) -> OfferCatalogue:
    """Load and validate a catalogue file (``.toml`` or ``.json``); ``raw`` is its
    content when the caller has read it already."""
    path = Path(path)
    if raw is None:
        raw = read_catalogue(path)
    try:
        if path.suffix == ".json":
            return msgspec.json.decode(raw, type=OfferCatalogue)
        return msgspec.toml.decode(raw, type=OfferCatalogue)
    except msgspec.DecodeError as exc:
        raise CatalogueError(f"invalid offer catalogue {path}: {exc}") from exc


def read_catalogue(path: str | Path) -> bytes:
    """The catalogue file's content, unparsed."""
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise CatalogueError(f"cannot read offer catalogue {path}: {exc.strerror}") from exc
