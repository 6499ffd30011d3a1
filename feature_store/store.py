"""The feature store: a narrow async interface over Redis that hides keys and Lua."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any

import redis.asyncio as aioredis

from feature_store.acceptances import OfferAcceptances
from feature_store.budgets import OfferBudgets
from feature_store.connection import StoreConnection
from feature_store.decision_log import DecisionLog
from feature_store.erasure import erase_customer
from feature_store.fact_calls import fact_call
from feature_store.facts import WITHDRAWAL_FIELDS, Fact, mark_bursts, touchpoint_fact
from feature_store.feature_views import FeatureViews
from feature_store.features import CustomerFeatures, RecentTouchpoint, recent_touchpoint
from feature_store.keys import CustomerKeys
from feature_store.layout import StoreLayout
from feature_store.models import ModelSnapshots
from feature_store.outbox import DecisionOutboxes
from feature_store.pipelining import Command
from feature_store.records import ApplyStatus, ErasureReceipt, Observer, StoreConfig
from feature_store.redis_clients import redis_clients
from feature_store.redis_errors import raise_failed, raise_unavailable
from feature_store.redis_server import RedisServer
from feature_store.risk_snapshots import RiskSnapshots
from feature_store.subject_access import CustomerRecord, customer_record
from feature_store.transport import REQUEST_TIMEOUT_S, RedisPipe
from schemas import TouchpointEvent


class FeatureStore:
    """Per-customer features in Redis (a single server or a Redis Cluster).

    ``apply`` updates many events in one pipelined round trip, each atomically (one
    EVALSHA) and at most once per ``event_id``; ``read`` / ``read_many`` /
    ``read_for_decisions`` return :class:`CustomerFeatures`; ``export`` returns all that is
    kept about a customer, as stored; ``erase`` removes every key of a customer. Round
    trips, scripts and errors are :class:`~feature_store.connection.StoreConnection`'s.
    The rest has its own narrow interface:

    - ``decisions``: decisions, their contexts and outcomes (:class:`~.decision_log.DecisionLog`);
    - ``acceptances``: when customers accepted offers (:class:`~.acceptances.OfferAcceptances`);
    - ``risks``: churn-risk snapshots waiting for a label (:class:`~.risk_snapshots.RiskSnapshots`);
    - ``models``: model snapshots (:class:`~.models.ModelSnapshots`);
    - ``budgets``: daily counts of offers with a budget (:class:`~.budgets.OfferBudgets`);
    - ``layout``: the layout and secret marks of the store's prefix (:class:`~.layout.StoreLayout`);
    - ``server``: what the Redis servers say of themselves: version, memory, persistence
      (:class:`~.redis_server.RedisServer`).
    """

    def __init__(
        self,
        client: aioredis.Redis | aioredis.RedisCluster,
        config: StoreConfig,
        observe: Observer | None = None,
        clock: Callable[[], float] = time.time,
        pipe: RedisPipe | None = None,
    ) -> None:
        self._conn = StoreConnection(client, pipe, observe)
        self._config = config
        self._keys = CustomerKeys(config.secret, config.prefix)
        self._clock = clock
        self._views = FeatureViews(config, clock)
        self.models = ModelSnapshots(self._conn, config.prefix, config.dedupe_horizon_s, clock)
        self.budgets = OfferBudgets(self._conn, config.prefix, config.secret)
        self.layout = StoreLayout(self._conn, config.prefix, config.secret)
        self.decisions = DecisionLog(self._conn, self._keys, config, clock, self._call)
        self.outboxes = DecisionOutboxes(self._conn, config.prefix)
        self.risks = RiskSnapshots(self._conn, self._keys)
        self.acceptances = OfferAcceptances(self._conn, self._keys)
        self.server = RedisServer(self._conn)

    @classmethod
    def from_url(
        cls,
        url: str,
        config: StoreConfig,
        observe: Observer | None = None,
        cluster: bool = False,
        ssl_ca_certs: str | None = None,
        clock: Callable[[], float] = time.time,
        timeout_s: float = REQUEST_TIMEOUT_S,
    ) -> FeatureStore:
        """A store on a Redis URL (``rediss://`` for TLS; ``user:password@`` for an ACL).
        A call that hears nothing from Redis for ``timeout_s`` fails as an outage
        (:class:`StoreUnavailable`); so does a connection not made within that time."""
        client, pipe = redis_clients(url, cluster, ssl_ca_certs, timeout_s)
        return cls(client, config, observe, clock, pipe)

    @property
    def context_ttl_s(self) -> int:
        """How long a decision's context is kept, from the decision: an outcome read
        later joins it no more."""
        return self._config.context_ttl_s

    @property
    def round_trips(self) -> int:
        """Writes to Redis so far (each one round trip, shared by concurrent callers)."""
        return self._conn.round_trips

    def pseudonym(self, customer_id: str) -> str:
        return self._keys.pseudonym(customer_id)

    def _call(self, fact: Fact, now_ms: int) -> tuple[tuple[str, ...], list[Any]]:
        return fact_call(self._keys, self._config, fact, now_ms)

    async def apply(
        self,
        events: Sequence[TouchpointEvent],
        ran: dict[int, ApplyStatus] | None = None,
        newest_before: dict[str, RecentTouchpoint | None] | None = None,
    ) -> list[ApplyStatus]:
        """Apply touchpoints in order; per event, whether it was new or a duplicate
        (``ran``: see :meth:`apply_facts`).

        With ``newest_before``, each of their customers' newest recent touchpoint as it
        was before these events (``None``: none), read in the same round trip: the recent
        list keeps so few that a burst of one customer's touchpoints can push it out. Read
        again once they were applied (a batch whose worker stopped before its decisions
        were recorded, or whose replies were lost), it is the one the store kept when it
        applied the customer's first of them (lua/before.lua), not the batch's own, for
        a customer with at least the recent list's length of them (a burst: the others'
        list still holds it, and the store keeps it for none of theirs). A
        customer whose newest entry cannot be read (a key of another type, an entry in
        a form this version does not write) is left out of it, and the others are read."""
        facts = [touchpoint_fact(e, self._config.money) for e in events]
        if newest_before is None:
            return await self.apply_facts(facts, ran)
        # the first touchpoint of a customer's burst keeps the one before it (read again
        # below); a rebuild, reading nothing, keeps none
        facts = mark_bursts(facts, self._config.recent_len)
        firsts: dict[str, str] = {}  # customer -> the fact id of their first touchpoint
        for fact in facts:
            if fact.customer_id not in firsts or (fact.recent and not firsts[fact.customer_id]):
                firsts[fact.customer_id] = fact.fact_id if fact.recent else ""
        customers = list(firsts)
        calls = [("before", (k.seen, k.recent), (firsts[c],))
                 for c in customers for k in (self._keys.for_customer(c),)]  # fmt: skip
        faults: dict[int, Exception] = {}
        reading = self._conn.eval_mixed("read", calls, faults=faults)
        # the read is written first (gather starts its calls in order): it sees none of
        # them, or finds what was kept of the customer's first one when they were applied
        # already. Taken even when applying fails.
        both = await asyncio.gather(reading, self.apply_facts(facts, ran), return_exceptions=True)
        found: list[Any] | BaseException = both[0]
        statuses: list[ApplyStatus] | BaseException = both[1]
        if not isinstance(found, BaseException):
            for at, (customer_id, entry) in enumerate(zip(customers, found, strict=True)):
                if at in faults:  # a key of another type: not known
                    continue
                try:
                    newest_before[customer_id] = recent_touchpoint(entry) if entry else None
                except (ValueError, OverflowError, OSError):  # an entry in another form
                    continue  # (another version's, a tool's): not known, for them alone
        if isinstance(statuses, BaseException):
            raise statuses
        return statuses

    async def apply_facts(
        self, facts: Sequence[Fact], ran: dict[int, ApplyStatus] | None = None
    ) -> list[ApplyStatus]:
        """Apply facts in order, in one round trip (plus one if Redis lost the script).
        When one fails, the others are applied all the same: ``ran`` is given each one's
        status (by index) before the error is raised, so that a retry can tell the facts
        it applied itself from duplicates."""
        if not facts:
            return []
        now_ms = int(self._clock() * 1000)
        calls = [self._call(f, now_ms) for f in facts]
        replies: dict[int, Any] = {}
        try:
            await self._conn.eval_many("apply", "apply", calls, replies)
        finally:
            if ran is not None:
                ran.update((i, ApplyStatus(int(r))) for i, r in replies.items())
        return [ApplyStatus(int(replies[i])) for i in range(len(facts))]

    async def read_for_decisions(
        self,
        customer_ids: Sequence[str],
        now: float | None = None,
        faults: dict[str, Exception] | None = None,
        home_timezone: str = "UTC",
    ) -> list[tuple[bool, CustomerFeatures | None]]:
        """(erased?, features) per customer, in one round trip, with what offer decisions
        use: the activity counts per window, channel mix, recent touchpoints and other
        descriptive figures are left empty (see :func:`feature_store.features.build_features`).

        Plain reads, cheaper for Redis than a script. They are not one snapshot: a
        touchpoint applied meanwhile may show in one hash and not yet in another, which
        the next read puts right. The tombstone is read last, so that an erasure made
        meanwhile is always seen.

        With ``faults``, a customer whose keys cannot be read as features (a key of
        another type, a value that is not a number) does not fail the others: their error
        goes in ``faults`` under their id, and their entry is ``(False, None)``.

        ``home_timezone`` (the catalogue's): whose days the contact counts of a customer
        count when no touchpoint told their own timezone.
        """
        if not customer_ids:
            return []
        commands: list[Command] = []
        for customer_id in customer_ids:
            k = self._keys.for_customer(customer_id)
            commands += [("HGETALL", k.profile), ("HGETALL", k.windows),
                         ("HGETALL", k.contacts), ("HGETALL", k.optouts),
                         ("EXISTS", k.tombstone)]  # fmt: skip
        started = time.perf_counter()
        replies = await self._conn.submit(commands)
        self._conn.observe("read", started)
        if faults is None:
            raise_failed(replies)
        else:
            raise_unavailable(replies)
        views: list[tuple[Any, ...]] = [
            (replies[i + 4], replies[i], replies[i + 1], replies[i + 2], [], replies[i + 3])
            for i in range(0, len(replies), 5)
        ]
        if faults is None:
            return self._views.features(views, now, False, home_timezone)
        failed = [  # an erased customer's keys are not read
            None if int(view[0]) else next((r for r in view[1:] if isinstance(r, Exception)), None)
            for view in views
        ]
        return self._views.features_apart(
            customer_ids, views, failed, now, False, faults, home_timezone
        )

    async def erased(self, customer_ids: Sequence[str]) -> list[bool]:
        """Whether each customer was erased, in one round trip (nothing about them is
        remembered in this process)."""
        keys = self._keys
        return await self.erased_subjects([keys.pseudonym(c) for c in customer_ids])

    async def erased_subjects(self, subjects: Sequence[str]) -> list[bool]:
        """Whether each customer named by their keyed hash (``subject``: a churn-risk
        example's customer, say) was erased, in one round trip."""
        if not subjects:
            return []
        replies = await self._conn.submit(
            [("EXISTS", self._keys.for_subject(s).tombstone) for s in subjects]
        )
        raise_failed(replies)
        return [bool(int(reply)) for reply in replies]

    async def read_views(
        self,
        customer_ids: Sequence[str],
        now: float | None = None,
        faults: dict[str, Exception] | None = None,
        home_timezone: str = "UTC",
    ) -> list[tuple[bool, CustomerFeatures | None]]:
        """(erased?, features) of many customers in one round trip: an erased customer
        is told apart from one Moments does not know. With ``faults``, as
        :meth:`read_for_decisions`: a customer whose keys cannot be read as features
        fails alone (their error under their id, their entry ``(False, None)``);
        ``home_timezone`` as there."""
        if not customer_ids:
            return []
        calls = []
        for customer_id in customer_ids:
            k = self._keys.for_customer(customer_id)
            calls.append(("view", (k.tombstone, k.profile, k.windows, k.contacts, k.recent,
                                   k.optouts), ()))  # fmt: skip
        if faults is None:
            views = await self._conn.eval_mixed("read", calls)
            return self._views.features(views, now, True, home_timezone)
        failed: dict[int, Exception] = {}
        views = await self._conn.eval_mixed("read", calls, faults=failed)
        by_view = [failed.get(i) for i in range(len(views))]
        return self._views.features_apart(
            customer_ids, views, by_view, now, True, faults, home_timezone
        )

    async def read(
        self, customer_id: str, now: float | None = None, home_timezone: str = "UTC"
    ) -> CustomerFeatures | None:
        """The customer's features as of ``now`` (default: the clock), or ``None``;
        ``home_timezone`` as :meth:`read_for_decisions`'s."""
        return (await self.read_many([customer_id], now, home_timezone))[0]

    async def read_many(
        self, customer_ids: Sequence[str], now: float | None = None, home_timezone: str = "UTC"
    ) -> list[CustomerFeatures | None]:
        """Features of many customers in one round trip (``None`` for an unknown or
        erased customer); ``home_timezone`` as :meth:`read_for_decisions`'s."""
        views = await self.read_views(customer_ids, now, home_timezone=home_timezone)
        return [features for _, features in views]

    async def raw(self, customer_id: str) -> dict[str, Any]:
        """The customer's keys as Redis holds them (profile, windows, recent, contacts,
        seen, optouts), for tests to check what was written."""
        keys = self._keys.for_customer(customer_id)
        pipe = self._conn.pipeline()
        pipe.hgetall(keys.profile)
        pipe.hgetall(keys.windows)
        pipe.zrange(keys.recent, 0, -1, withscores=True)
        pipe.hgetall(keys.contacts)
        pipe.zrange(keys.seen, 0, -1)
        pipe.hgetall(keys.optouts)
        profile, windows, recent, contacts, seen, optouts = await self._conn.execute("raw", pipe)
        return {
            "profile": profile,
            "windows": windows,
            "recent": {member: int(score) for member, score in recent},
            "contacts": contacts,
            "seen": sorted(seen),
            "optouts": optouts,
        }

    async def export(self, customer_id: str) -> CustomerRecord:
        """Everything kept about the customer, as stored (:mod:`.subject_access`)."""
        return await customer_record(self._conn, self._keys, customer_id)

    async def erase(
        self,
        customer_id: str,
        erased_at_ms: int | None = None,
        replicas: int = 0,
        within_ms: int = 1000,
        withdrawals: Sequence[str] = (),
    ) -> ErasureReceipt:
        """Remove every key of the customer and block the id (by its keyed hash) so
        that replays and late events cannot bring the profile back.

        The block lasts the tombstone TTL from the erasure: from now, or, replaying an
        erasure made earlier (``erased_at_ms``), for what is left of it. One whose block
        has run out erases nothing (``blocked`` is False): the id may have come back as a
        new customer since. A block already longer is never shortened.

        The receipt tells what erasing the customer removed, by this call or an earlier
        one (retried, or replayed), and when they were first erased (an erasure made now
        is never the first of an erased customer, whatever this process's clock says).
        With ``replicas``, it also tells how many of the server's replicas confirmed the
        erasure within ``within_ms`` (a failover to a replica that had not would bring the
        customer back; a single server's replicas only).

        The customer's withdrawals (the fields of
        :data:`feature_store.facts.WITHDRAWAL_FIELDS` that said "0") are kept beside the
        tombstone, by name alone and as long (a suppression list), with ``withdrawals``
        (those an erasure record carries, replayed) and an earlier erasure's: the receipt
        names them all (:meth:`withdrawals_kept` reads them).

        Raises :class:`ErasureUnknown` when the script was sent and Redis did not answer
        in time (it may have run, or run later), :class:`StoreUnavailable` when Redis
        could not be reached or refused it (it did not run)."""
        return await erase_customer(self._conn, self._keys, self._config, self._clock,
                                    customer_id, erased_at_ms, replicas, within_ms,
                                    withdrawals)  # fmt: skip

    async def withdrawals_kept(self, customer_id: str) -> list[str]:
        """The withdrawals an erasure of the customer kept beside their tombstone (fields
        of :data:`feature_store.facts.WITHDRAWAL_FIELDS`, in that order); none for a
        customer not erased, or whose block ran out."""
        keys = self._keys
        kept = keys.for_subject(keys.pseudonym(customer_id)).suppression
        (reply,) = await self._conn.submit([("SMEMBERS", kept)])
        raise_failed([reply])
        names = {str(name) for name in reply}
        return [field for field in WITHDRAWAL_FIELDS if field in names]

    async def has_any_customer(self) -> bool:
        """Whether any customer key of this store's prefix exists (on every node of a
        cluster)."""
        return await self.layout.holds_customers()

    async def refused_commands(self) -> list[str]:
        """Load the store's scripts into Redis now, and name the commands the store runs
        that Redis would refuse its user on the store's keys: at start, a Redis that
        refuses any (an ACL without ``+@write``, say) is found before any touchpoint is
        taken. Raises :class:`StoreRefused` when it refuses the scripts themselves (a
        user without ``+@scripting``, a command renamed away)."""
        return await self._conn.refused_commands(self._keys.probe_key())

    async def ping(self, within_s: float = 1.0) -> bool:
        """Whether Redis answers (on a cluster, every primary); :class:`StoreUnavailable`
        when it cannot, or not within ``within_s`` (a frozen Redis must not hold a
        readiness probe past its timeout)."""
        return await self._conn.ping(within_s)

    async def close(self) -> None:
        await self._conn.close()
