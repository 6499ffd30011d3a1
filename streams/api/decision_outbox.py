"""This API process's outbox: the decisions it recorded and Kafka has not acknowledged
yet, kept in Redis (:mod:`feature_store.outbox`) so that another API process publishes
them should this one be killed outright (see :mod:`streams.api.outbox_sweeper`).

The decisions go in with the round trip that records them (:meth:`DecisionOutbox.hold`
gives the commands); they leave once Kafka acknowledged them, or once they are not to
be published (not recorded: their customer erased, their contact refused; Kafka
refused them for good), riding the next round trip that records decisions, or in one
removal of all those settled within ``RELEASE_EVERY_S`` when none comes.
A decision its caller was answered with before Redis said whether it recorded it (the
latency budget ran out while it was written; or answered outside its batch's write) is
marked shown (:meth:`DecisionOutbox.shown`, a round trip of its own, made for those
alone): should the process die before it is recorded (refused over a cap, it is recorded
again without the caps, in a second write), the sweeper publishes it all the same,
unless its customer is erased. A lease, renewed every second, says the process is
alive. At a clean stop the outbox goes, and the lease with it; what Kafka did not take
by then stays, for another API process to publish at once.

The outbox is named by a random process id; the decisions in it hold their customer's
id (as their Kafka records do), never its key.

>>> decision_id_of(b'{"decision_id":"d-1","customer_id":"c-1"}')
'd-1'
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar

import msgspec

from feature_store import StoreUnavailable
from feature_store.outbox import DecisionOutboxes, held_ids
from feature_store.pipelining import Command

log = logging.getLogger(__name__)
T = TypeVar("T")
# the round trip that records decisions: given the commands that keep them in the outbox,
# to send with it, and what hears their replies (see DecisionLog.record)
Recording = Callable[[Sequence[Command], Callable[[list[Any]], None]], Awaitable[T]]

LEASE_S = 5.0  # a process whose lease is not renewed for this long is taken for dead
RENEW_EVERY_S = 1.0
RELEASE_EVERY_S = 0.1  # the decisions settled meanwhile leave the outbox together
# An outbox nobody sweeps (no API process left alive) is gone after this long, its
# decisions unpublished; each write and each renewal of the lease starts it again.
TTL_S = 3600
# The most decisions an outbox holds: some 50 MB of Redis at about 1 KB each, a minute of
# decisions at 1,000 a second with Kafka away. Past it (a long Kafka outage) new
# decisions wait for Kafka in the process's memory alone, as before the outbox, rather
# than fill Redis, which the decisions themselves need.
MAX_HELD = 50_000


class _Named(msgspec.Struct):
    decision_id: str


_named = msgspec.json.Decoder(_Named)


def decision_id_of(raw: bytes) -> str:
    """The id of a decision from its JSON (its other fields are skipped, not built)."""
    return _named.decode(raw).decision_id


def new_process_id() -> str:
    """A random name for this process's outbox (nothing about the host or a customer)."""
    return secrets.token_hex(8)


class DecisionOutbox:
    """The decisions this process holds in Redis until Kafka has them."""

    def __init__(
        self,
        outboxes: DecisionOutboxes,
        process: str | None = None,
        most: int = MAX_HELD,
        unwritten: Callable[[int], None] = lambda count: None,
    ) -> None:
        """``unwritten`` counts the decisions published whose write to the outbox failed
        (they wait for Kafka in this process alone), each once however many writes of
        it failed (:meth:`publishing`)."""
        self._outboxes = outboxes
        self._most = most
        self._unwritten = unwritten
        self._unwriting = False  # a write failed, and none has succeeded since
        self._full = False  # it said it is full, and has not said it has room again
        self._unremoving: float | None = None  # when removals began to fail, if they do
        self.process = process or new_process_id()
        self._held: set[str] = set()  # decision ids in the outbox (as far as this one knows)
        # held, but their latest write to the outbox failed: counted once published
        self._unkept: set[str] = set()
        self._shown: set[str] = set()  # of those, or to be, the ones marked shown
        self._marking: set[asyncio.Task[None]] = set()  # marks on their way to Redis
        self._releasing: list[str] = []  # settled, to remove at the next removal
        self._release_due: asyncio.TimerHandle | None = None
        self._removing: asyncio.Task[None] | None = None
        self._renewing: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self._held)

    def hold(self, entries: Sequence[tuple[str, bytes]]) -> list[Command]:
        """The commands that keep ``entries`` (decision id, JSON), for the round trip
        that records them; none past ``most`` held (those wait in memory alone). The
        decisions settled since the last removal ride with them, leaving the outbox
        sooner than the next removal of their own (a process killed meanwhile would
        leave them to be published again)."""
        commands = self._outboxes.hold(self.process, self._admit(entries), TTL_S)
        if self._releasing and not self._marking:  # (a mark after its removal would
            gone = self._releasing[:]  # put it back for good)
            marked = [d for d in gone if d in self._shown]
            commands += self._outboxes.removal(self.process, gone, marked)
        return commands

    def _admit(self, entries: Sequence[tuple[str, bytes]]) -> Sequence[tuple[str, bytes]]:
        """Those of ``entries`` the outbox takes (within ``most``), now held."""
        room = self._most - len(self._held)
        if room < len(entries):
            if not self._full:
                log.warning("the outbox holds %d decisions, its most: newer ones wait "
                            "for Kafka in this process alone until it has room",
                            len(self._held))  # fmt: skip
            self._full = True
            entries = entries[: max(room, 0)]
        elif self._full and room > self._most // 2:
            log.warning("the outbox has room again")
            self._full = False
        for decision_id, _ in entries:
            self._held.add(decision_id)
        return entries

    def shown(self, decision_ids: Sequence[str], entries: Sequence[tuple[str, bytes]] = ()) -> None:
        """Mark decisions shown, their callers answered with them before Redis said
        whether it recorded them: ``decision_ids`` held by their batch's write (sent, or
        about to be), ``entries`` (decision id, JSON) as they were answered, outside it
        (written over what the outbox holds under their ids: a decision stripped of the
        offers a cap refused, which its batch's write held with them). Sent at once, in a
        round trip of its own; a failure is logged (the decisions then depend on being
        recorded, as before the marks)."""
        self._admit([(d, raw) for d, raw in entries if d not in self._held])
        written = [(d, raw) for d, raw in entries if d in self._held]
        marked = [d for d in decision_ids if d not in self._shown]
        if not marked and not written:
            return
        self._shown.update(marked)
        self._shown.update(d for d, _ in written)
        marking = asyncio.get_running_loop().create_task(self._mark(marked, written))
        self._marking.add(marking)
        marking.add_done_callback(self._marking.discard)

    async def _mark(
        self, decision_ids: Sequence[str], entries: Sequence[tuple[str, bytes]]
    ) -> None:
        try:
            await self._outboxes.keep_shown(self.process, decision_ids, entries, TTL_S)
        except Exception as exc:
            log.warning("could not mark %d decisions shown in the outbox (a process killed "
                        "before they are recorded loses them): %s",
                        len(decision_ids) + len(entries), why(exc))  # fmt: skip

    async def recording(self, entries: Sequence[tuple[str, bytes]], record: Recording[T]) -> T:
        """Run ``record``, the round trip that records the decisions of ``entries``
        (decision id, JSON), with the commands that keep them (:meth:`hold`) riding it;
        their replies are heard (:meth:`written`) once it is over, knowing whether it
        failed."""
        held = self.hold(entries)
        replies: list[Any] = []  # (none when the connection went before they came)
        try:
            result = await record(held, replies.extend)
        except BaseException:
            if replies:
                self.written(held, replies, recorded=False)
            raise
        if replies:
            self.written(held, replies)
        return result

    def written(
        self, commands: Sequence[Command], replies: Sequence[Any], recorded: bool = True
    ) -> None:
        """The replies to the commands :meth:`hold` gave, which rode a round trip
        (``recorded``: the round trip did not fail): an error among them (Redis full, a
        Redis Cluster node of the outbox's slot away) leaves those decisions in this
        process alone, said once per outage, and counted as they are published."""
        gone, unmarked = self._outboxes.removed(self.process, commands, replies)
        if gone:  # those that rode with them
            self._removed(gone, unmarked)
            if not self._releasing and self._release_due is not None:
                self._release_due.cancel()
                self._release_due = None
        kept = [reply for command, reply in zip(commands, replies, strict=False)
                if command[0] != "HDEL"]  # fmt: skip
        errors = [reply for reply in kept if isinstance(reply, Exception)]
        ids = held_ids(commands)
        if not errors:
            self._unkept.difference_update(ids)  # (a write of theirs failed before)
            if self._unwriting:
                log.warning("decisions are kept in the outbox again")
            self._unwriting = False
            return
        self._unkept.update(d for d in ids if d in self._held)  # (not settled meanwhile)
        if not self._unwriting:
            state = "recorded" if recorded else "their record failed too"
            log.warning("could not keep %d decisions in the outbox (%s; those published "
                        "wait for Kafka in this process alone, counted in "
                        "moments_outbox_write_failures_total): %s",
                        len(ids), state, why(errors[0]))  # fmt: skip
        self._unwriting = True

    def publishing(
        self, records: Sequence[tuple[bytes, bytes]], decision_ids: Sequence[str] | None
    ) -> None:
        """Decisions go to Kafka (``decision_ids``: their ids, when their sender gave
        them): those the outbox does not hold, their write to it having failed, are
        counted, each once."""
        if not self._unkept:
            return
        ids = _ids_of(records) if decision_ids is None else decision_ids
        unkept = {d for d in ids if d in self._unkept}
        if unkept:
            self._unkept -= unkept
            self._unwritten(len(unkept))

    def release(self, decision_ids: Iterable[str]) -> None:
        """These decisions are settled (acknowledged by Kafka, or not to be sent): they
        leave the outbox with the next removal."""
        for decision_id in decision_ids:
            self._unkept.discard(decision_id)
            if decision_id in self._held or decision_id in self._shown:
                self._held.discard(decision_id)
                self._releasing.append(decision_id)
        if self._releasing and self._release_due is None:
            loop = asyncio.get_running_loop()
            self._release_due = loop.call_later(RELEASE_EVERY_S, self._remove_soon)

    def settled(
        self, records: Sequence[tuple[bytes, bytes]], decision_ids: Sequence[str] | None
    ) -> None:
        """:meth:`release` for decisions delivered: by their ids when their sender gave
        them (a batch's), else as :meth:`release_records` reads them (fallbacks)."""
        if decision_ids is None:
            self.release_records(records)
        else:
            self.release(decision_ids)

    def release_records(self, records: Iterable[tuple[bytes, bytes]]) -> None:
        """:meth:`release` for keyed decisions (their JSON names them; one that does not
        decode was never held: Moments encoded every one it holds)."""
        self.release(_ids_of(records))

    def _remove_soon(self) -> None:
        self._release_due = None
        if self._removing is None or self._removing.done():
            self._removing = asyncio.get_running_loop().create_task(self._remove())
        # else: the removal under way takes these too once it is done

    async def _remove(self) -> None:
        while self._releasing:
            if self._marking:  # a mark after its removal would put it back for good
                await asyncio.wait(self._marking)
            gone = self._releasing[:]  # out of the list once removed (not if cancelled)
            marked = [d for d in gone if d in self._shown]
            try:
                await self._outboxes.release(self.process, gone, marked)
                self._removed(gone, marked)  # (some may have left riding a write meanwhile)
            except Exception as exc:  # tried again with the next ones, once a second
                if self._unremoving is None:  # said once an outage, and once it is over
                    log.warning("could not remove %d published decisions from the outbox "
                                "(tried again every second): %s", len(gone), why(exc))  # fmt: skip
                    self._unremoving = time.monotonic()
                await asyncio.sleep(RENEW_EVERY_S)

    def _removed(self, gone: Sequence[str], unmarked: Sequence[str]) -> None:
        """``gone`` left the outbox, and the marks of ``unmarked`` with them."""
        settled = set(gone)
        self._releasing = [d for d in self._releasing if d not in settled]
        self._shown.difference_update(unmarked)
        if self._unremoving is not None:
            log.warning("published decisions leave the outbox again, after %.0f s",
                        time.monotonic() - self._unremoving)  # fmt: skip
        self._unremoving = None

    def start(self) -> None:
        """Keep the lease renewed (and the process in the registry) until :meth:`stop`."""
        self._renewing = asyncio.get_running_loop().create_task(self._keep_alive())

    async def _keep_alive(self) -> None:
        failing = False
        while True:
            try:
                await self._outboxes.renew(self.process, int(LEASE_S * 1000), TTL_S)
                if failing:
                    log.warning("the outbox's lease is renewed again")
                failing = False
            except Exception as exc:  # Redis away: recording fails meanwhile too
                if not failing:
                    log.warning("could not renew the outbox's lease: %s", why(exc))
                failing = True
            await asyncio.sleep(RENEW_EVERY_S)

    async def stop(self) -> None:
        """The process stops, having handed to Kafka what it could: the decisions
        settled leave, and the outbox with its lease when nothing is left in it; what
        is left (Kafka away) stays, its lease gone, for another API process to publish."""
        if self._renewing is not None:
            self._renewing.cancel()
        if self._release_due is not None:
            self._release_due.cancel()
            self._release_due = None
        if self._removing is not None:
            self._removing.cancel()  # its decisions are still in _releasing: removed here
        if self._marking:  # (quick: they log their own failures)
            await asyncio.wait(self._marking)
        try:
            gone, self._releasing = self._releasing, []
            marked = [d for d in gone if d in self._shown]
            await self._outboxes.release(self.process, gone, marked)
            left = await self._outboxes.retire(self.process, self.process)
        except Exception as exc:
            log.warning("could not close the outbox (its lease expires in %g s, then "
                        "another API process publishes what it holds): %s", LEASE_S,
                        why(exc))  # fmt: skip
            return
        if left is None:  # stalled past its lease: the sweeper that took it publishes
            log.warning("another API process holds the outbox's lease, and publishes "
                        "what it holds")  # fmt: skip
        elif left:
            log.warning("%d decisions Kafka did not acknowledge are left in the outbox, "
                        "for another API process to publish", left)  # fmt: skip


def _ids_of(records: Iterable[tuple[bytes, bytes]]) -> list[str]:
    """The ids of keyed decisions (one whose JSON does not decode has none)."""
    ids = []
    for _, value in records:
        try:
            ids.append(decision_id_of(value))
        except (msgspec.DecodeError, UnicodeDecodeError):
            continue
    return ids


def why(exc: Exception) -> str:
    """An error's kind, and its message when it is Redis's own (no customer in it)."""
    return str(exc) if isinstance(exc, StoreUnavailable) else type(exc).__name__
