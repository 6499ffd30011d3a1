"""The decisions Moments took, kept for learning and for the profile page: each
decision's context, each customer's newest decisions, and the outcomes claimed."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, Literal

from feature_store.connection import Call, StoreConnection
from feature_store.decision_contexts import restored, stored
from feature_store.facts import Fact
from feature_store.keys import CustomerKeys
from feature_store.pipelining import Command
from feature_store.records import LIVE_LAG_MS, DecisionRecord, StoreConfig
from feature_store.redis_errors import raise_failed, raise_unavailable

# what became of an outcome's claim ("relearn", "relabel_again", "superseded_again": read
# again from the record that claimed it)
Claim = Literal[
    "learn", "relearn", "skip", "no_context", "erased", "corrupt", "not_offered",
    "not_an_offer", "bad_context", "relabel", "relabel_again", "superseded",
    "superseded_again",
]  # fmt: skip
_CLAIMS: dict[int, Claim] = {1: "learn", 3: "relearn", 0: "skip", 2: "no_context", 4: "erased",
                             5: "not_offered", 6: "not_an_offer", 7: "bad_context",
                             8: "relabel", 9: "relabel_again", 10: "superseded",
                             11: "superseded_again"}  # fmt: skip
# how long a decision's claim (lua/own.lua) holds without its decision sent: a batch takes
# far less from its touchpoints' apply to their decisions' confirmation; a claim left by a
# batch given up is taken over after it (its letter re-driven)
CLAIM_LEASE_MS = 15 * 60 * 1000
FactCall = Callable[[Fact, int], tuple[tuple[str, ...], list[Any]]]  # the apply script's


class DecisionLog:
    """Decisions and their outcomes in Redis, under the customer's keys (erased with
    them)."""

    def __init__(
        self,
        conn: StoreConnection,
        keys: CustomerKeys,
        config: StoreConfig,
        clock: Callable[[], float],
        fact_call: FactCall,
    ) -> None:
        self._conn = conn
        self._keys = keys
        self._config = config
        self._clock = clock
        self._fact_call = fact_call

    async def record(
        self,
        records: Sequence[DecisionRecord],
        contacts: Sequence[Fact] = (),
        faults: dict[str, Exception] | None = None,
        refused: set[str] | None = None,
        outbox: Sequence[Command] = (),
        outbox_heard: Callable[[list[Any]], None] | None = None,
    ) -> list[bool]:
        """Remember decisions (context, recent list) and mark their touchpoints decided,
        so that a replay does not decide them again; apply the contacts they made, all in
        one round trip. A context is kept without its customer's id
        (:mod:`feature_store.decision_contexts`). Per record, whether it was kept: not
        for an erased customer, nor for a decision whose contact had ceilings and broke
        one (its contact is not applied; its id goes in ``refused``).

        With ``faults``, a customer whose keys fail a call (a key of another type) does
        not fail the others: the error goes in ``faults`` under their id, and none of
        their records counts as kept.

        ``outbox``: commands that keep the decisions in an API process's outbox
        (:mod:`feature_store.outbox`), sent in the same round trip; ``outbox_heard`` is
        given their replies (an error among them fails no decision)."""
        if not records and not contacts:
            return []
        now_ms = int(self._clock() * 1000)
        calls: list[Call] = [("apply", *self._fact_call(f, now_ms)) for f in contacts]
        # decision id -> its contact's id, for the decisions decided within ceilings
        guarded = {f.decision_id: f.fact_id for f in contacts if f.ceilings and f.decision_id}
        config = self._config
        contact_only_life_s, stranger_life_s = config.contact_only_life_s, config.stranger_life_s
        for r in records:
            k = self._keys.for_customer(r.customer_id)
            trigger = f"t:{r.trigger_event_id}" if r.trigger_event_id else ""
            keys = (k.context(r.decision_id), k.decisions, k.seen, k.tombstone,
                    k.decision_index, k.recent, k.profile,
                    *((k.claim(trigger),) if trigger else ()))  # fmt: skip
            own_ttl_s = config.context_ttl_s if r.offered else config.unoffered_context_ttl_s
            args = [
                stored(r.context, r.customer_id), config.context_ttl_s, r.ts_ms, r.decision_id,
                config.decisions_kept, trigger, now_ms, config.ttl_s, LIVE_LAG_MS, own_ttl_s,
                contact_only_life_s,
            ]  # fmt: skip
            # ARGV[12] its contact's id when that had ceilings, ARGV[13] 'r': its trigger
            # marked recorded, not decided ('' for none), ARGV[14] a stranger's ttl
            args += [guarded.get(r.decision_id, ""), "" if r.sent else "r", stranger_life_s]
            calls.append(("decision", keys, args))
        if faults is None:
            replies = await self._conn.eval_mixed(
                "decisions", calls, riding=outbox, heard=outbox_heard
            )
            _refused(records, replies[len(contacts) :], refused)
            return [int(r) == 1 for r in replies[len(contacts) :]]
        failed: dict[int, Exception] = {}
        replies = await self._conn.eval_mixed(
            "decisions", calls, faults=failed, riding=outbox, heard=outbox_heard
        )
        owners = [f.customer_id for f in contacts] + [r.customer_id for r in records]
        for i, exc in failed.items():
            faults.setdefault(owners[i], exc)
        # a contact that failed (a key of another type) was not refused: its fault says why
        _refused(records, replies[len(contacts) :], refused, faults)
        return [
            r is not None and int(r) == 1 and record.customer_id not in faults
            for r, record in zip(replies[len(contacts) :], records, strict=True)
        ]

    async def own(
        self,
        claims: Sequence[tuple[str, str, str]],
        faults: dict[str, Exception] | None = None,
        lease_ms: int = CLAIM_LEASE_MS,
    ) -> list[bool]:
        """Claim (customer id, trigger event id, owner) decisions for their owners, in
        one round trip, before any contact or budget unit of them is counted: per claim,
        whether its owner decides it. A touchpoint produced twice, to two partitions,
        reaches two workers at once; the first to claim its decision sends it, the
        other nothing (:mod:`agents.decision_owners`). The same owner (the same source
        record, read again) keeps its claim until the decision is marked sent; none is
        made for one sent already; another takes over one whose owner sent nothing within
        ``lease_ms``. With ``faults``, a customer whose keys
        fail the call (a key of another type) does not fail the others: the error goes
        in ``faults`` under their id, and their claim counts as owned (their decision's
        record fails the same way)."""
        if not claims:
            return []
        calls: list[Call] = []
        for customer_id, trigger_event_id, owner in claims:
            k = self._keys.for_customer(customer_id)
            trigger = f"t:{trigger_event_id}"
            calls.append(("own", (k.claim(trigger), k.seen, k.tombstone),
                          [trigger, owner, lease_ms]))  # fmt: skip
        failed: dict[int, Exception] = {}
        replies = await self._conn.eval_mixed(
            "decisions", calls, faults=None if faults is None else failed
        )
        for i, exc in failed.items():
            if faults is not None:
                faults.setdefault(claims[i][0], exc)
        return [i in failed or int(r) == 1 for i, r in enumerate(replies)]

    async def claim_outcomes(
        self,
        claims: Sequence[tuple[str, str, str, str]],
        faults: dict[int, Exception] | None = None,
        ran: dict[int, Claim] | None = None,
        rewards: Mapping[str, float] | None = None,
        before: dict[int, float] | None = None,
        teaches: Sequence[float | None] | None = None,
        unread: Collection[int] = (),
    ) -> list[Claim]:
        """Claim (customer id, decision id, "<decision>:<offer>:<outcome>", source record)
        for learning. One shown offer (decision, offer) is one example: its outcomes are
        claimed together, each kind once, with their ``rewards`` (by outcome; one not
        there teaches nothing). ``"learn"`` for its first one with a reward, claimed now
        (a new outcome), ``"relearn"`` for one to learn from again, claimed before by
        this same record (a learner restarted from a snapshot that lacks it reads it
        again: not a new outcome); ``"relabel"`` for a later outcome of the impression
        with a higher reward than learned (the example's reward is to be raised from
        the one in ``before``, by index), ``"relabel_again"`` for one read again;
        ``"superseded"`` for a later outcome whose reward is not higher (it teaches
        nothing), ``"superseded_again"`` for one read again; a claim made by the previous
        version (one per outcome kind) counts as learned with its outcome's reward.
        ``"skip"`` for a copy from another record, ``"erased"`` for an erased customer's,
        ``"no_context"`` when the decision's context is not stored (expired, unknown, or
        not recorded yet): that one is not claimed, so it can be sent back;
        ``"not_offered"`` when its decision made no such offer, ``"not_an_offer"`` when the
        context is no offer decision's (an intervention's), ``"bad_context"`` when no
        context can be read from its key: not claimed either (they teach nothing, and
        claims of made-up offers would grow without bound).
        A claim is kept as long as a decision context (``context_ttl_s``), then dropped.
        ``"corrupt"`` for one whose customer's keys Redis cannot serve as they should be
        (a key of another type): nothing is written, and its error goes in ``faults`` by
        index (without ``faults``, it is raised). When the connection goes before every
        reply came (:class:`RepliesUnknown`), ``ran`` is given those that came, by index.

        ``teaches``: per claim, the reward it teaches (None: none, as for one that cannot
        teach, dated before its decision, say), else its outcome's in ``rewards``;
        ``unread``: the indexes of claims whose decision context the caller read just
        before and did not find: a new one is ``"no_context"``, not claimed."""
        if not claims:
            return []
        now_ms = int(self._clock() * 1000)
        lifetime = self._config.context_ttl_s
        rewards = rewards or {}
        kinds = [part for kind, reward in rewards.items() for part in (kind, repr(reward))]
        calls = []
        for i, (customer_id, decision_id, what, source) in enumerate(claims):
            k = self._keys.for_customer(customer_id)
            keys = (k.outcomes, k.tombstone, k.outcome_times, k.context(decision_id))
            impression, _, outcome = what.rpartition(":")  # the outcome has no ":"
            offer_id = impression[len(decision_id) + 1 :]
            taught = rewards.get(outcome) if teaches is None else teaches[i]
            reward = "?" if i in unread else "" if taught is None else repr(taught)
            args = [impression, source, lifetime, now_ms, offer_id, outcome, reward, *kinds]
            calls.append(("claim", keys, args))
        came: dict[int, Any] = {}
        try:
            replies = await self._conn.eval_mixed("claim", calls, came, faults)
        finally:
            if ran is not None:
                ran.update((i, _claim(r, i, before)) for i, r in came.items())
        return [
            "corrupt" if faults and i in faults else _claim(r, i, before)
            for i, r in enumerate(replies)
        ]

    async def contexts(
        self, pairs: Sequence[tuple[str, str]], faults: dict[int, Exception] | None = None
    ) -> list[str | None]:
        """Contexts of (customer id, decision id) pairs, each with its customer's id, in
        one round trip. With
        ``faults``, a context Redis cannot serve as one (a key of another type) is
        ``None``, its error in ``faults`` by index, instead of raised."""
        if not pairs:
            return []
        pipe = self._conn.pipeline()
        for customer_id, decision_id in pairs:
            pipe.get(self._keys.for_customer(customer_id).context(decision_id))
        found = await self._conn.execute("context", pipe, raise_on_error=faults is None)
        for i, reply in enumerate(found):
            if isinstance(reply, Exception) and faults is not None:
                faults[i] = reply
        return [
            None if c is None or isinstance(c, Exception) else restored(str(c), customer_id)
            for c, (customer_id, _) in zip(found, pairs, strict=True)
        ]

    async def publishable(
        self, pairs: Sequence[tuple[str, str]], shown: Sequence[bool] = ()
    ) -> list[bool]:
        """Whether each (customer id, decision id) is a decision that was recorded (in
        the customer's index of decisions, kept a week and an hour) and whose customer is
        not erased, in one round trip: a decision refused over a cap, or never recorded,
        is no decision to publish, unless it was ``shown`` (true at its index: its
        caller was answered with it), which its customer's tombstone alone keeps back.
        A customer whose index Redis cannot read as one (a key of another type) does not
        hold up the others: their decision is told by the tombstone alone, as it was
        before the index was asked."""
        if not pairs:
            return []
        commands: list[Command] = []
        asked: list[bool] = []  # per pair, whether its index is asked
        for i, (customer_id, decision_id) in enumerate(pairs):
            k = self._keys.for_customer(customer_id)
            commands.append(("EXISTS", k.tombstone))
            asked.append(not (i < len(shown) and shown[i]))
            if asked[-1]:
                commands.append(("ZSCORE", k.decision_index, decision_id))
        replies = await self._conn.submit(commands)
        raise_unavailable(replies)
        found = iter(replies)
        tombstones: list[Any] = []
        indexes: list[Any] = []  # a shown decision's: as if indexed
        for asks in asked:
            tombstones.append(next(found))
            indexes.append(next(found) if asks else True)
        raise_failed(tombstones)  # a tombstone's EXISTS fails for no key's type
        return [
            not int(erased) and (indexed is not None or isinstance(indexed, Exception))
            for erased, indexed in zip(tombstones, indexes, strict=True)
        ]

    async def recent(
        self, customer_id: str, n: int | None = None, faults: list[Exception] | None = None
    ) -> list[str]:
        """Contexts of the customer's ``n`` newest decisions that are still kept, newest
        first, each with the customer's id (by default, as many as the recent list keeps:
        ``decisions_kept``).

        With ``faults``, a key Redis cannot serve as it should be (the list, or a
        context, a key of another type) is not raised: its error goes in ``faults``, and
        what else can be read is returned."""
        n = self._config.decisions_kept if n is None else n
        keys = self._keys.for_customer(customer_id)
        tolerant = faults is not None
        pipe = self._conn.pipeline()
        pipe.zrange(keys.decisions, 0, n - 1, desc=True)
        (ids,) = await self._conn.execute("recent_decisions", pipe, raise_on_error=not tolerant)
        if isinstance(ids, Exception) and faults is not None:
            faults.append(ids)
            return []
        if not ids:
            return []
        pipe = self._conn.pipeline()
        for decision_id in ids:
            pipe.get(keys.context(decision_id))
        found = await self._conn.execute("recent_decisions", pipe, raise_on_error=not tolerant)
        if faults is not None:
            faults += [c for c in found if isinstance(c, Exception)]
        return [restored(str(c), customer_id) for c in found
                if c is not None and not isinstance(c, Exception)]  # fmt: skip


def _claim(reply: Any, i: int, before: dict[int, float] | None) -> Claim:
    """claim.lua's reply: a code, or a relabel's code and the reward learned before it
    (put in ``before`` under ``i``)."""
    if isinstance(reply, list):
        code, learned = reply
        if before is not None:
            before[i] = float(learned)
        return _CLAIMS[int(code)]
    return _CLAIMS[int(reply)]


def _refused(
    records: Sequence[DecisionRecord],
    replies: Sequence[Any],
    refused: set[str] | None,
    faults: Mapping[str, Exception] | None = None,
) -> None:
    """Add to ``refused`` the ids of the decisions whose contact broke a ceiling."""
    if refused is not None:
        refused.update(
            r.decision_id
            for r, reply in zip(records, replies, strict=True)
            if reply is not None and int(reply) == 2 and not (faults and r.customer_id in faults)
        )
