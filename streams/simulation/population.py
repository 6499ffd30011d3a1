"""Synthetic customers and their touchpoints: a seeded stand-in for live CRM traffic.

Pure and deterministic: no I/O and no global random state. Events arrive as a Poisson
process; follow-ups (a call ending, an email being opened) come out later in the stream.

>>> from datetime import UTC, datetime
>>> start = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
>>> population = CustomerPopulation(size=50, seed=7)
>>> events = list(population.touchpoints(3, start, rate=2.0))
>>> [event.event_id for event in events]
['sim-7-000000000', 'sim-7-000000001', 'sim-7-000000002']
>>> events == list(CustomerPopulation(size=50, seed=7).touchpoints(3, start, rate=2.0))
True
"""

from __future__ import annotations

import hashlib
import heapq
import math
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from itertools import accumulate
from typing import Literal, Protocol

from schemas.catalogue import Offer
from schemas.touchpoints import (
    Call,
    Channel,
    Consent,
    Email,
    Purchase,
    SocialMention,
    Survey,
    TouchpointEvent,
    WebClick,
)

CHANNELS = ("web", "email", "call", "social")
CATEGORIES = ("electronics", "home", "fashion", "sports", "beauty", "books", "grocery", "travel")
PLATFORMS = ("x", "instagram", "facebook", "tiktok", "trustpilot")
HOME_ZONES = {"Europe/London": 0.5, "Europe/Paris": 0.3, "Europe/Madrid": 0.1,
              "America/New_York": 0.1}  # fmt: skip
KINDS = ("web_click", "email", "call", "social_mention", "purchase", "survey", "consent")

CallReason = Literal["sales", "support", "billing", "complaint", "cancel", "other"]
EmailAction = Literal[
    "sent", "delivered", "opened", "clicked", "bounced", "unsubscribed", "replied"
]
_REASONS: tuple[CallReason, ...] = ("sales", "support", "billing", "complaint", "cancel", "other")
_QUEUES = {"cancel": "retention", "sales": "sales", "billing": "billing"}  # else "support"
_CONSENT_CHANNELS: tuple[Channel, ...] = ("email", "sms", "call", "web", "all")


@dataclass(frozen=True, slots=True)
class SimulatedCustomer:
    """A synthetic customer's hidden traits; every touchpoint is drawn from these."""

    customer_id: str
    value: float  # expected annual spend, EUR
    satisfaction: float  # 0 furious .. 1 delighted
    channel_habits: dict[str, float]  # weights over CHANNELS, summing to 1
    category_tastes: dict[str, float]  # weights over CATEGORIES, summing to 1
    churn_prone: bool
    activity: float  # relative contact frequency, 1.0 typical
    email_engagement: float  # chance of opening a delivered email
    platform: str  # favourite social platform
    timezone: str = "Europe/London"  # at home: their browser tells it on every page view

    @property
    def unhappiness(self) -> float:
        """``1 - satisfaction``."""
        return 1.0 - self.satisfaction


class _Build(Protocol):
    """A touchpoint waiting for its id and time."""

    def __call__(self, *, event_id: str, ts: datetime) -> TouchpointEvent: ...


Episode = list[tuple[float, _Build]]  # (delay after the previous step in seconds, step)


def _clamp(x: float, low: float, high: float) -> float:
    return min(high, max(low, x))


def _dirichlet(rng: random.Random, keys: Sequence[str], alpha: float) -> dict[str, float]:
    draws = [rng.gammavariate(alpha, 1.0) + 1e-9 for _ in keys]
    total = sum(draws)
    return {key: draw / total for key, draw in zip(keys, draws, strict=True)}


def _pick(rng: random.Random, weights: dict[str, float]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def simulated_customer_id(index: int) -> str:
    """The id of the simulated customer at ``index`` (from 0), whatever the seed.

    >>> simulated_customer_id(42)
    'cust-000042'
    """
    return f"cust-{index:06d}"


def _new_customer(rng: random.Random, index: int) -> SimulatedCustomer:
    satisfaction = rng.betavariate(4.0, 2.0)
    return SimulatedCustomer(
        customer_id=simulated_customer_id(index),
        value=round(rng.lognormvariate(math.log(450.0), 0.9), 2),
        satisfaction=satisfaction,
        channel_habits=_dirichlet(rng, CHANNELS, 1.0),
        category_tastes=_dirichlet(rng, CATEGORIES, 0.4),
        churn_prone=rng.random() < 0.03 + 0.6 * (1.0 - satisfaction) ** 2,
        activity=rng.lognormvariate(0.0, 0.7),
        email_engagement=_clamp(rng.betavariate(2.0, 5.0) + 0.2 * satisfaction, 0.02, 0.9),
        platform=rng.choice(PLATFORMS),
        # drawn apart, so that adding the trait left every other draw as it was
        timezone=_pick(random.Random(f"timezone-{index}"), HOME_ZONES),
    )


def _kind_mix(c: SimulatedCustomer) -> list[float]:
    """Relative weights of KINDS for one customer's next episode."""
    h, u = c.channel_habits, c.unhappiness
    return [
        3.0 * h["web"],
        1.2 * h["email"],
        0.6 * h["call"] * (0.4 + 2.0 * u),
        0.5 * h["social"] * (0.6 + u),
        0.3 * (0.4 + c.satisfaction),
        0.06,
        0.02,
    ]


class CustomerPopulation:
    """``size`` synthetic customers built from ``seed``, and replayable touchpoint streams."""

    def __init__(self, size: int, seed: int, currency: str = "EUR") -> None:
        if size < 1:
            raise ValueError(f"size must be at least 1, got {size}")
        self.seed = seed
        self.currency = currency  # what they pay in (their values are of euro size)
        rng = random.Random(seed)
        self.customers = tuple(_new_customer(rng, i) for i in range(size))
        self._by_id = {c.customer_id: c for c in self.customers}
        self._quirks: dict[tuple[str, str], float] = {}
        # Valuable and active customers get in touch more often.
        self._pick_weights = list(
            accumulate(math.sqrt(c.value) * c.activity for c in self.customers)
        )
        self._mixes = [list(accumulate(_kind_mix(c))) for c in self.customers]
        self._stream_seed = rng.getrandbits(64)
        self._episodes: dict[str, Callable[[random.Random, SimulatedCustomer, int], Episode]] = {
            "web_click": self._web_session,
            "email": self._email,
            "call": self._call,
            "social_mention": self._social_mention,
            "purchase": self._purchase,
            "survey": lambda rng, c, n: [(0.0, self._survey(rng, c))],
            "consent": self._consent,
        }

    def __len__(self) -> int:
        return len(self.customers)

    def customer(self, customer_id: str) -> SimulatedCustomer:
        """The customer with this id; raises ``KeyError`` if unknown."""
        return self._by_id[customer_id]

    def acceptance(
        self, customer_id: str, offer: Offer, channel: str, category: str | None
    ) -> float:
        """Hidden: the chance that this customer accepts ``offer`` shown on ``channel``
        while looking at ``category``. Only simulators and the oracle may call it."""
        key = (customer_id, offer.offer_id)
        quirk = self._quirks.get(key)
        if quirk is None:
            quirk = self._quirks[key] = offer_quirk(self.seed, customer_id, offer.offer_id)
        return acceptance_probability(self._by_id[customer_id], offer, channel, category, quirk)

    def touchpoints(
        self, count: int, start: datetime, rate: float, run: str = ""
    ) -> Iterator[TouchpointEvent]:
        """Yield ``count`` events after ``start``, arriving at ``rate`` per second (Poisson).

        Event ``n`` has id ``sim-<seed>-<n:09d>`` (``sim-<seed>-<run>-<n:09d>`` with a
        ``run``: another run of the same stream, whose events are not replays of the
        first's); the same arguments give the same stream.
        """
        if count < 0 or not rate > 0 or start.utcoffset() is None:
            raise ValueError("need count >= 0, rate > 0 and a timezone-aware start")
        rng = random.Random(self._stream_seed)
        prefix = f"sim-{self.seed}-{run}-" if run else f"sim-{self.seed}-"
        pending: list[tuple[float, int, _Build]] = []  # (due, tie-break, step)
        elapsed, queued = 0.0, 0
        for n in range(count):
            elapsed += rng.expovariate(rate)
            if pending and pending[0][0] <= elapsed:
                build = heapq.heappop(pending)[2]
            else:
                index = rng.choices(range(len(self.customers)), cum_weights=self._pick_weights)[0]
                customer = self.customers[index]
                kind = rng.choices(KINDS, cum_weights=self._mixes[index])[0]
                (_, build), *follow_ups = self._episodes[kind](rng, customer, n)
                due = elapsed
                for delay, step in follow_ups:
                    due += delay
                    heapq.heappush(pending, (due, queued, step))
                    queued += 1
            yield build(event_id=f"{prefix}{n:09d}", ts=start + timedelta(seconds=elapsed))

    def _web_session(self, rng: random.Random, c: SimulatedCustomer, n: int) -> Episode:
        session = f"sess-{self.seed}-{n:09d}"
        clicks = 1 + min(int(rng.expovariate(0.4)), 9)
        return [
            (rng.uniform(3.0, 90.0) if i else 0.0, _page(rng, c, session)) for i in range(clicks)
        ]

    def _call(self, rng: random.Random, c: SimulatedCustomer, n: int) -> Episode:
        u = c.unhappiness
        if rng.random() < 0.15:  # the contact centre rings out
            direction: Literal["inbound", "outbound"] = "outbound"
            reason: CallReason = "other" if c.churn_prone else "sales"
            queue = "retention" if c.churn_prone else "sales"
        else:
            direction = "inbound"
            cancel = 0.01 + 0.3 * u * u + (0.12 if c.churn_prone else 0.0)
            weights = [0.05 + 0.25 * c.satisfaction, 0.3, 0.15, 0.03 + 0.5 * u, cancel, 0.05]
            reason = rng.choices(_REASONS, weights=weights)[0]
            queue = _QUEUES.get(reason, "support")
        upset = reason in ("complaint", "cancel")
        duration = round(rng.lognormvariate(math.log(240.0), 0.6) * (1.6 if upset else 1.0), 1)
        mood = 1.8 * c.satisfaction - 0.9 - (0.3 if upset else 0.0) + rng.gauss(0.0, 0.2)
        agent, sentiment = f"agent-{rng.randrange(1, 120):03d}", round(_clamp(mood, -1, 1), 3)

        def call(status: Literal["started", "ended"], ended: bool) -> _Build:
            return partial(
                Call,
                customer_id=c.customer_id,
                status=status,
                direction=direction,
                reason=reason,
                queue=queue,
                agent_id=agent,
                duration_s=duration if ended else None,
                sentiment=sentiment if ended else None,
            )

        return [(0.0, call("started", False)), (duration, call("ended", True))]

    def _email(self, rng: random.Random, c: SimulatedCustomer, n: int) -> Episode:
        u, campaign = c.unhappiness, f"cmp-{rng.randrange(1, 40):03d}"

        def step(action: EmailAction) -> _Build:
            return partial(Email, customer_id=c.customer_id, campaign_id=campaign, action=action)

        funnel: Episode = [(0.0, step("sent"))]
        if rng.random() < 0.03:
            return [*funnel, (rng.uniform(1.0, 20.0), step("bounced"))]
        funnel.append((rng.uniform(1.0, 30.0), step("delivered")))
        if rng.random() >= c.email_engagement:
            return funnel
        funnel.append((rng.expovariate(1 / 600.0), step("opened")))
        if rng.random() < 0.01 + 0.1 * u + (0.06 if c.churn_prone else 0.0):
            funnel.append((rng.uniform(5.0, 60.0), step("unsubscribed")))
        elif rng.random() < 0.15 + 0.35 * c.satisfaction:
            funnel.append((rng.uniform(3.0, 120.0), step("clicked")))
        elif rng.random() < 0.03:
            funnel.append((rng.uniform(60.0, 900.0), step("replied")))
        return funnel

    def _social_mention(self, rng: random.Random, c: SimulatedCustomer, n: int) -> Episode:
        platform = c.platform if rng.random() < 0.7 else rng.choice(PLATFORMS)
        mood = 1.6 * c.satisfaction - 0.85 + rng.gauss(0.0, 0.3)
        post = partial(
            SocialMention,
            customer_id=c.customer_id,
            platform=platform,
            sentiment=round(_clamp(mood, -1.0, 1.0), 3),
            reach=min(int(10 * rng.paretovariate(1.1)), 10_000_000),  # most posts go nowhere
        )
        return [(0.0, post)]

    def _purchase(self, rng: random.Random, c: SimulatedCustomer, n: int) -> Episode:
        basket = c.value / 6.0 * rng.lognormvariate(0.0, 0.5)  # about six orders a year
        picks = rng.choices(CATEGORIES, weights=list(c.category_tastes.values()), k=3)
        lines = 1 + (rng.random() < 0.3) + (rng.random() < 0.1)
        order = partial(
            Purchase,
            customer_id=c.customer_id,
            order_id=f"ord-{self.seed}-{n:09d}",
            amount=round(max(1.0, basket), 2),
            currency=self.currency,
            categories=list(dict.fromkeys(picks[:lines])),
        )
        if rng.random() < 0.15:  # post-purchase CSAT
            return [(0.0, order), (rng.expovariate(1 / 1800.0), self._survey(rng, c, "csat5"))]
        return [(0.0, order)]

    def _survey(
        self, rng: random.Random, c: SimulatedCustomer, scale: Literal["csat5", "nps"] | None = None
    ) -> _Build:
        sat, cid = c.satisfaction, c.customer_id
        if scale == "csat5" or (scale is None and rng.random() < 0.6):
            score = _clamp(round(1 + 4 * sat + rng.gauss(0.0, 0.6)), 1, 5)
            return partial(Survey, customer_id=cid, scale="csat5", score=float(score))
        score = _clamp(round(10 * sat + rng.gauss(0.0, 1.2)), 0, 10)
        return partial(Survey, customer_id=cid, scale="nps", score=float(score))

    def _consent(self, rng: random.Random, c: SimulatedCustomer, n: int) -> Episode:
        channel = rng.choices(_CONSENT_CHANNELS, weights=[0.4, 0.2, 0.15, 0.15, 0.1])[0]
        keep = 0.85 - 0.35 * c.unhappiness - (0.25 if c.churn_prone else 0.0)
        granted = rng.random() < _clamp(keep, 0.2, 0.95)
        return [
            (0.0, partial(Consent, customer_id=c.customer_id, channel=channel, granted=granted))
        ]


# --------------------------------------------------------------------------------------
# Hidden preferences: how a simulated customer answers an offer. Policies never see
# these; the simulated websites (responder, evaluate) and the oracle do. Most of what
# matters can be inferred from the features (tastes show in clicks and purchases, the
# category in view is in the context, satisfaction shows as experience, spend as value),
# but not all of it: channel habits and a per-customer-per-offer quirk stay hidden.
# --------------------------------------------------------------------------------------

CHANNEL_MOOD = {"web": 0.0, "email": -0.5, "call": 0.4, "sms": -0.7}
QUIRK_SD = 0.6  # spread of the per-customer-per-offer idiosyncratic taste, in log-odds
_HAPPY_SEGMENTS = frozenset({"model", "growth"})
_UNHAPPY_SEGMENTS = frozenset({"at_risk", "dangling"})


def price_sensitivity(c: SimulatedCustomer) -> float:
    """0 (indifferent) .. 1 (counts every cent): the less a customer spends, the more."""
    return 1.0 / (1.0 + c.value / 450.0)


def offer_quirk(seed: int, customer_id: str, offer_id: str, sd: float = QUIRK_SD) -> float:
    """A customer's idiosyncratic liking of one offer (log-odds), fixed by the seed."""
    digest = hashlib.blake2b(f"{seed}:{customer_id}:{offer_id}".encode(), digest_size=8).digest()
    return random.Random(int.from_bytes(digest, "big")).gauss(0.0, sd)


def acceptance_probability(
    c: SimulatedCustomer, offer: Offer, channel: str, category: str | None, quirk: float = 0.0
) -> float:
    """The chance (0..1) that customer ``c`` accepts ``offer`` on ``channel`` while looking
    at ``category`` (``None``: nothing in particular). Pure: a logistic model of how well
    the offer fits their tastes and what is in view, their mood, their price sensitivity
    against the offer's value, whether the offer is meant for people like them, and
    ``quirk`` (see :func:`offer_quirk`).

    >>> from schemas import Offer
    >>> books = Offer(offer_id="b", title="b", channels=["web"], categories=["books"], value=12)
    >>> reader = SimulatedCustomer("c", 450.0, 0.7, dict.fromkeys(CHANNELS, 0.25),
    ...     {k: 0.9 if k == "books" else 0.1 / 7 for k in CATEGORIES}, False, 1.0, 0.3, "x")
    >>> p_books = acceptance_probability(reader, books, "web", "books")
    >>> p_other = acceptance_probability(reader, books, "web", "travel")
    >>> 0 < p_other < p_books < 1
    True
    """
    z = -3.8 + quirk + 1.2 * (c.satisfaction - 0.65)
    z += CHANNEL_MOOD.get(channel, 0.0) + 1.5 * (c.channel_habits.get(channel, 0.25) - 0.25)
    if channel == "email":
        z += 2.0 * (c.email_engagement - 0.3)
    if offer.categories:
        fit = sum(c.category_tastes.get(k, 0.0) for k in offer.categories)
        z += 3.5 * fit
        if category is not None:
            z += 1.0 if category in offer.categories else -0.3
    else:
        z += 1.0  # broad offers appeal a little to everyone
    segments = set(offer.segments)
    if segments and segments <= _UNHAPPY_SEGMENTS:  # service recovery: the upset welcome it
        z += 3.5 * (c.unhappiness - 0.35)
    elif segments and segments <= _HAPPY_SEGMENTS:  # loyalty: the happy and the big spenders
        z += 2.5 * (c.satisfaction - 0.6) + 0.6 * math.log(c.value / 450.0)
    z -= 3.5 * price_sensitivity(c) * (offer.value / 100.0 - 0.15)
    return 1.0 / (1.0 + math.exp(-z))


def _page(rng: random.Random, c: SimulatedCustomer, session: str) -> _Build:
    """One page view: mostly products the customer likes; support and cancel when unhappy."""
    u, cid = c.unhappiness, c.customer_id
    where = _pick(
        rng,
        {
            "product": 0.6,
            "/offers": 0.12,
            "/": 0.08,
            "/cart": 0.06 * c.satisfaction,
            "/support": 0.02 + 0.12 * u,
            "/account/cancel": 0.002 + 0.04 * u * u + (0.02 if c.churn_prone else 0.0),
        },
    )
    if where != "product":
        return partial(WebClick, customer_id=cid, session_id=session, page=where,
                       timezone=c.timezone)  # fmt: skip
    category = _pick(rng, c.category_tastes)
    product = f"{category[:3]}-{rng.randrange(1, 400):04d}"
    page = f"/products/{category}/{product}"
    return partial(
        WebClick,
        customer_id=cid,
        session_id=session,
        page=page,
        category=category,
        product_id=product,
        timezone=c.timezone,
    )
