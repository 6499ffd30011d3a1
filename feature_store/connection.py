"""How the feature store talks to Redis: round trips and Lua scripts (what Redis's errors
say: :mod:`feature_store.redis_errors`)."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Sequence
from importlib import resources
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError

from feature_store.cluster_ping import ClusterPing
from feature_store.pipelining import Command, SharedRoundTrips
from feature_store.records import Observer, RepliesUnknown, StoreUnavailable
from feature_store.redis_errors import (
    raise_failed,
    raise_unavailable,
    transient,
    unavailable,
    unavailable_when_transient,
)
from feature_store.transport import RedisPipe, RepliesLost


def _lua(name: str) -> str:
    return resources.files("feature_store").joinpath(f"lua/{name}.lua").read_text()


def _calls(script: str) -> list[str]:
    """The commands ``script`` calls, by name (each written out: none is built)."""
    return sorted({c.upper() for c in re.findall(r"redis\.p?call\(['\"](\w+)", script)})


def _guarded(script: str) -> str:
    """``script`` refused whole, before it writes, should Redis refuse any command it
    calls (lua/guard.lua)."""
    listed = ", ".join(f"'{command}'" for command in _calls(script))
    return _lua("guard").replace("--[[COMMANDS]]", listed) + script


# the budget scripts share the check of their counts (a function loaded before each)
_BUDGET_COUNTS = ("spend", "take", "unspend")
# those that write once, or only delete (erase: run again, it ends its work), and those
# that only read go unguarded
_UNGUARDED = ("erase", "view", "before", "permissions")


def _script(name: str) -> str:
    text = (_lua("budget_counts") if name in _BUDGET_COUNTS else "") + _lua(name)
    return text if name in _UNGUARDED else _guarded(text)


SCRIPTS = {
    name: _script(name)
    for name in (
        "apply", "decision", "own", "erase", "claim", "claim_examples", "publish", "view", "settle",
        "permissions", "outbox_lease", "outbox_retire", "before", "accepted", *_BUDGET_COUNTS,
    )
}  # fmt: skip
# Every command the store runs: those its scripts call, and those it sends itself.
COMMANDS = tuple(sorted(
    {c for s in SCRIPTS.values() for c in _calls(s)}
    | {"GET", "SET", "HGETALL", "HMGET", "HGET", "ZRANGE", "EXISTS", "SCAN", "PING", "WAIT",
       "SMEMBERS",
       # an API process's outbox (feature_store.outbox)
       "HSET", "PEXPIRE", "HDEL", "SADD", "SREM", "HSCAN", "HLEN"}
))  # fmt: skip

PROBE = "return 1"  # a script that does nothing, run at start

Call = tuple[str, Sequence[str], Sequence[Any]]  # (script, keys, args)


def hash_reply(flat: list[str] | dict[str, str]) -> dict[str, str]:
    """A hash from a flat [field, value, ...] reply (redis-py gives HGETALL as a dict)."""
    if isinstance(flat, dict):
        return flat
    it = iter(flat)
    return dict(zip(it, it, strict=True))


class StoreConnection:
    """Round trips to one Redis server or a Redis Cluster.

    The hot path (scripts and decision reads) goes through ``pipe``, one pipelined
    connection to a single server; without it (a cluster), through redis-py's pipelines,
    shared by concurrent callers. The less frequent calls use ``client``'s pipelines.
    """

    def __init__(
        self,
        client: aioredis.Redis | aioredis.RedisCluster,
        pipe: RedisPipe | None = None,
        observe: Observer | None = None,
    ) -> None:
        self.client = client
        self._cluster_ping = (
            ClusterPing(client) if isinstance(client, aioredis.RedisCluster) else None
        )
        self._pipe = pipe
        self._observe = observe
        self._shared = SharedRoundTrips(self._send)
        self._shas: dict[str, str] = {}
        self._loading = asyncio.Lock()
        self._round_trips = 0

    @property
    def round_trips(self) -> int:
        """Writes to Redis so far (each one round trip, shared by concurrent callers)."""
        return self._round_trips + (self._pipe.writes if self._pipe is not None else 0)

    def observe(self, op: str, started: float) -> None:
        """Report how long ``op`` took since ``started`` (a perf_counter time)."""
        if self._observe is not None:
            self._observe(op, time.perf_counter() - started)

    async def submit(self, commands: list[Command]) -> list[Any]:
        """Commands in one round trip, shared with other callers' commands made meanwhile;
        errors of single commands come back as values."""
        if self._pipe is None:
            return await self._shared.submit(commands)
        with unavailable_when_transient():
            return await self._pipe.execute(commands)

    def pipeline(self) -> Any:
        """A redis-py pipeline (no transaction) for :meth:`execute`."""
        return self.client.pipeline(transaction=False)

    async def execute(self, op: str, pipe: Any, raise_on_error: bool = True) -> list[Any]:
        """Run a pipeline built with :meth:`pipeline` in one round trip. Without
        ``raise_on_error``, a command's own error (a key of another type) is its reply;
        one that says Redis cannot serve now is still raised, as StoreUnavailable."""
        started = time.perf_counter()
        replies = await self._run(pipe, raise_on_error=raise_on_error)
        if not raise_on_error:
            raise_unavailable(replies)
        self.observe(op, started)
        return replies

    async def _send(self, commands: list[Command]) -> list[Any]:
        pipe = self.pipeline()
        for command in commands:
            pipe.execute_command(*command)
        return await self._run(pipe, raise_on_error=False)

    async def _run(self, pipe: Any, raise_on_error: bool) -> list[Any]:
        with unavailable_when_transient():
            replies: list[Any] = await pipe.execute(raise_on_error=raise_on_error)
        self._round_trips += 1
        return replies

    async def _load_scripts(self, stale: dict[str, str] | None = None) -> dict[str, str]:
        """Load every script, on the connection that runs them (after a failover behind
        the same address, redis-py's and the pipe's connections may reach different
        servers for a while). Callers that arrive meanwhile wait for the same load, and
        one whose ``stale`` scripts were loaded again meanwhile takes those (the scripts
        become visible all at once, never half loaded)."""
        async with self._loading:
            if self._shas and self._shas is not stale:
                return self._shas
            loaded = {}
            if self._pipe is None:  # a cluster: redis-py loads them on every primary
                with unavailable_when_transient():
                    for name, source in SCRIPTS.items():
                        loaded[name] = str(await self.client.script_load(source))
            else:
                replies = await self.submit([("SCRIPT", "LOAD", s) for s in SCRIPTS.values()])
                raise_failed(replies)
                loaded = {name: str(sha) for name, sha in zip(SCRIPTS, replies, strict=True)}
            self._shas = loaded
        return self._shas

    async def refused_commands(self, key: str) -> list[str]:
        """Load every script now, rather than at the first call that needs them, and
        return the commands of :data:`COMMANDS` that Redis would refuse this user on
        ``key``, asked both ways the store runs scripts (EVALSHA, and EVAL where it waits
        for replicas). Raises :class:`StoreRefused` when Redis refuses the scripts
        themselves (or the key)."""
        shas = await self._load_scripts()  # on every primary of a cluster
        replies = await self.submit([
            ("EVALSHA", shas["permissions"], 1, key, *COMMANDS),
            ("EVAL", PROBE, 1, key),  # to the same node as the key
        ])  # fmt: skip
        raise_failed(replies)
        return [str(command) for command in replies[0]]

    async def eval_confirmed(
        self,
        op: str,
        script: str,
        call: tuple[Sequence[str], Sequence[Any]],
        replicas: int,
        within_ms: int,
    ) -> tuple[Any, int]:
        """Run one script, then wait until ``replicas`` replicas confirm its writes, for
        ``within_ms`` at most (Redis's WAIT): its reply, and how many did. On a connection
        of its own, so that the wait holds up no other caller's round trip. A single
        server's replicas only: a cluster's WAIT would count those of other primaries."""
        if isinstance(self.client, aioredis.RedisCluster):
            raise ValueError("waiting for replicas needs a single Redis server, not a cluster")
        keys, args = call
        pipe = self.pipeline()
        pipe.eval(SCRIPTS[script], len(keys), *keys, *args)  # its own connection: the source
        pipe.execute_command("WAIT", replicas, within_ms)
        reply, confirmed = await self.execute(op, pipe)
        return reply, int(confirmed)

    async def eval_many(
        self,
        op: str,
        script: str,
        calls: Sequence[tuple[Sequence[str], Sequence[Any]]],
        ran: dict[int, Any] | None = None,
    ) -> list[Any]:
        """Run one script per (keys, args) call in one round trip (``ran``: see
        :meth:`eval_mixed`)."""
        return await self.eval_mixed(op, [(script, keys, args) for keys, args in calls], ran)

    async def eval_mixed(
        self,
        op: str,
        calls: Sequence[Call],
        ran: dict[int, Any] | None = None,
        faults: dict[int, Exception] | None = None,
        riding: Sequence[Command] = (),
        heard: Callable[[list[Any]], None] | None = None,
    ) -> list[Any]:
        """Run (script, keys, args) calls in one round trip, shared with other callers'
        calls made meanwhile (see :mod:`feature_store.pipelining`); reload the scripts
        if Redis lost them. When a call fails, the others have run all the same: ``ran``
        is given the reply of each call that ran (by index) before the error is raised,
        as :class:`StoreUnavailable` if any of them says Redis cannot serve now. So it is
        when the connection goes after some replies came: those calls ran, and the rest
        may have (:class:`RepliesUnknown` names them).

        With ``faults``, a call that fails for its own sake (a key of another type) is
        not raised: its error goes in ``faults`` by index, and its reply is ``None``.

        ``riding``: plain commands sent after the calls in the first round trip (keys of
        other slots, as an API process's outbox), their replies not looked at: the
        calls' outcome does not hang on them; ``heard`` is given those replies (errors
        among them as they came) once the round trip is back."""
        shas = self._shas or await self._load_scripts()
        results: list[Any] = [None] * len(calls)
        pending = list(range(len(calls)))
        for _attempt in range(3):
            started = time.perf_counter()
            try:
                replies = await self.submit([
                    ("EVALSHA", shas[calls[i][0]], len(calls[i][1]), *calls[i][1], *calls[i][2])
                    for i in pending
                ] + list(riding))  # fmt: skip
                if riding:
                    if heard is not None:
                        heard(replies[len(pending) :])
                    replies, riding = replies[: len(pending)], ()
            except StoreUnavailable as exc:  # the connection went: the replies that came ran
                came = exc.__cause__.replies if isinstance(exc.__cause__, RepliesLost) else []
                for i, reply in zip(pending, came, strict=False):
                    if ran is not None and not isinstance(reply, Exception):
                        ran[i] = reply
                raise RepliesUnknown(str(exc), pending[len(came) :]) from exc
            self.observe(op, started)
            missing = []
            failed: list[Exception] = []
            for i, reply in zip(pending, replies, strict=True):
                if isinstance(reply, NoScriptError):
                    missing.append(i)
                elif isinstance(reply, Exception):
                    if faults is not None and not transient(reply):
                        faults[i] = reply
                    else:
                        failed.append(reply)
                else:
                    results[i] = reply
                    if ran is not None:
                        ran[i] = reply
            if failed:
                down = next((e for e in failed if transient(e)), None)
                raise unavailable(down) if down is not None else failed[0]
            if not missing:
                return results
            pending = missing
            shas = await self._load_scripts(stale=shas)
        # loaded, and gone again at once: a server flushing its scripts, or connections
        # that reach different servers (a failover under way)
        raise StoreUnavailable("Redis keeps losing the feature-store scripts")

    async def ping(self, within_s: float) -> bool:
        """Whether Redis answers within ``within_s``: on a cluster, every primary
        (:mod:`.cluster_ping`); :class:`StoreUnavailable` when it does not."""
        try:
            if self._cluster_ping is None:
                async with asyncio.timeout(within_s):
                    with unavailable_when_transient():
                        return bool(await self.client.ping())
            async with asyncio.timeout(2 * within_s):  # reading the map, then the PINGs
                with unavailable_when_transient():
                    silent = await self._cluster_ping.silent_primaries(within_s)
        except TimeoutError as exc:  # (the bound's own: redis-py's is an outage too)
            raise StoreUnavailable(f"no answer to PING within {within_s} s") from exc
        for node, why in silent:
            if not isinstance(why, TimeoutError) and not transient(why):
                raise why
            said = "no answer" if isinstance(why, TimeoutError) else f"{type(why).__name__}"
            raise StoreUnavailable(f"Redis Cluster node {node}: {said} to PING within "
                                   f"{within_s} s") from why  # fmt: skip
        return True

    async def close(self) -> None:
        if self._cluster_ping is not None:
            self._cluster_ping.close()
        if self._pipe is not None:
            await self._pipe.close()
        await self.client.aclose()
