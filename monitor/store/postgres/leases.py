"""The leases of a cluster on PostgreSQL: who is alive, who owns which slot, who coordinates.

One renew is ONE transaction (``renew``): the agent's heartbeat, then its leases renewed
(``expires_at = now() + lease_ttl``, database time), then free slots taken up to its fair
share ``ceil(slots / live agents)`` with ``FOR UPDATE SKIP LOCKED`` (two agents taking at the
same moment get disjoint slots) and ``epoch + 1``, and the coordinator lease renewed or taken.

A lease whose row still names this agent is renewed even if it expired meanwhile: nobody took
it (taking writes the taker's name), so nobody wrote under a newer epoch. A slot of another
agent that expired is taken only when ``take_others`` says so: an agent that has just
(re)connected must not take the slots of agents that are reconnecting too after a database
outage, before they had a chance to renew them.

The leases use a connection of their own, outside the store's pool: a renew must not queue
behind the store's writes, and its timing decides when the agent fences itself. A
``NOTIFY watchdesk_cluster`` (a wake-up hint, never carrying anything correctness depends on)
tells the other agents to renew now when an agent joins, releases slots or leaves.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import psycopg

from monitor.errors import StoreError
from monitor.store.postgres.connect import describe, options, redact, sever, within

CHANNEL = "watchdesk_cluster"
TTL = "make_interval(secs => %(ttl)s)"
REGISTER = (
    "INSERT INTO agents (agent_id, vantage, host, pid, listen, version)"
    " VALUES (%(me)s, %(vantage)s, %(host)s, %(pid)s, %(listen)s, %(version)s)"
    " ON CONFLICT (agent_id) DO UPDATE SET heartbeat_at = now()"
)
ENSURE_SLOTS = (
    "INSERT INTO shard_lease (vantage, slot) SELECT %(vantage)s, g"
    " FROM generate_series(0, %(slots)s - 1) AS g ON CONFLICT DO NOTHING"
)
# The live agents of the vantage (this one included) and how many live leases each holds.
LIVE_AGENTS = (
    "SELECT a.agent_id, COUNT(l.slot) FROM agents a LEFT JOIN shard_lease l"
    " ON l.owner = a.agent_id AND l.vantage = a.vantage AND l.expires_at > now()"
    f" WHERE a.vantage = %(vantage)s AND a.heartbeat_at > now() - {TTL} GROUP BY a.agent_id"
)
RENEW = (
    f"UPDATE shard_lease SET expires_at = now() + {TTL} WHERE vantage = %(vantage)s"
    " AND owner = %(me)s AND slot < %(slots)s RETURNING slot, epoch"
)
TAKE = (
    "WITH free AS (SELECT slot FROM shard_lease WHERE vantage = %(vantage)s"
    " AND slot < %(slots)s AND (owner IS NULL OR (%(others)s AND expires_at <= now()))"
    " ORDER BY owner IS NULL DESC, slot LIMIT %(room)s FOR UPDATE SKIP LOCKED)"
    f" UPDATE shard_lease l SET owner = %(me)s, epoch = l.epoch + 1, expires_at = now() + {TTL}"
    " FROM free WHERE l.vantage = %(vantage)s AND l.slot = free.slot RETURNING l.slot, l.epoch"
)
COORDINATE = (
    "UPDATE coordinator_lease SET epoch = CASE WHEN owner = %(me)s THEN epoch ELSE epoch + 1"
    f" END, owner = %(me)s, expires_at = now() + {TTL} WHERE id = 1 AND (owner = %(me)s"
    " OR owner IS NULL OR (%(others)s AND expires_at <= now())) RETURNING epoch"
)
# Agents gone for a day are forgotten (``watchdesk cluster`` shows them until then).
FORGET_GONE = "DELETE FROM agents WHERE heartbeat_at < now() - interval '1 day'"
RELEASE = (
    "UPDATE shard_lease SET owner = NULL, expires_at = '-infinity' WHERE vantage = %s"
    " AND owner = %s AND slot = ANY(%s)"
)
NOTIFY = f"SELECT pg_notify('{CHANNEL}', %s)"


@dataclass(frozen=True)
class Registration:
    """How an agent shows in the ``agents`` table (and in ``watchdesk cluster``)."""

    agent_id: str
    vantage: str
    host: str
    pid: int
    listen: str
    version: str


@dataclass(frozen=True)
class Renewal:
    """What one renew found: the slots this agent holds now (slot -> epoch), which of them it
    just took, the live agents of its vantage, its fair share, the fewest slots another live
    agent holds (None: it is alone), and the coordinator lease's epoch if it holds that."""

    held: dict[int, int]
    taken: frozenset[int]
    agents: int
    share: int
    fewest_elsewhere: int | None
    coordinator: int | None


class LeaseTable:
    def __init__(self, url: str, me: Registration, slots: int, ttl: float, limit: float) -> None:
        self._url = url
        self._where = describe(url)
        self.me = me
        self.slots = slots
        self.ttl = ttl
        # A renew (or a release) that takes longer than this is abandoned: the connection is
        # dropped and the next one starts afresh.
        self.limit = limit
        self._conn: psycopg.AsyncConnection[tuple[Any, ...]] | None = None
        self._known_slots = False
        self._abandoned = asyncio.Event()

    def _params(self, **extra: object) -> dict[str, object]:
        me = self.me
        return {
            "me": me.agent_id,
            "vantage": me.vantage,
            "host": me.host,
            "pid": me.pid,
            "listen": me.listen,
            "version": me.version,
            "slots": self.slots,
            "ttl": self.ttl,
            **extra,
        }

    async def _connection(self) -> psycopg.AsyncConnection[tuple[Any, ...]]:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = await psycopg.AsyncConnection.connect(
                self._url, **options(f"watchdesk {self.me.vantage} leases")
            )
        return self._conn

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(TimeoutError, psycopg.Error, OSError):
                await asyncio.wait_for(conn.close(), 1.0)

    async def _run(self, what: str, work: Callable[[Any], Any]) -> Any:
        """``work(connection)`` within ``limit`` seconds; StoreError (naming the database,
        never its URL) when it fails, and the connection is dropped. A call past the limit
        (or on a table given up by ``abandon``) has its connection severed, not cancelled:
        cancelling would wait on the lost link for the server's cancel (``connect.within``)."""
        try:
            started = asyncio.get_running_loop().time()
            conn = await self._connect()
            left = self.limit - (asyncio.get_running_loop().time() - started)
            return await within(conn, work(conn), max(0.0, left))
        except (psycopg.Error, OSError, TimeoutError, StoreError) as exc:
            await self._drop()
            reason = "timed out" if isinstance(exc, TimeoutError) else str(exc).strip()
            raise StoreError(
                f"{what} on the {self._where} failed: {redact(reason, self._url)}"
            ) from None

    async def _connect(self) -> psycopg.AsyncConnection[tuple[Any, ...]]:
        """The connection, within ``limit``, or StoreError as soon as ``abandon`` is called
        (a connect is cancelled at no cost: no query runs yet)."""
        if self._abandoned.is_set():
            raise StoreError("the agent gave the database up: stopping")
        connecting = asyncio.ensure_future(self._connection())
        giving_up = asyncio.ensure_future(self._abandoned.wait())
        try:
            await asyncio.wait(
                {connecting, giving_up}, timeout=self.limit, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            giving_up.cancel()
            connecting.cancel()  # nothing if it is done
        if giving_up.done() and not giving_up.cancelled():
            raise StoreError("the agent gave the database up: stopping")
        if not connecting.done() or connecting.cancelled():
            raise TimeoutError
        return connecting.result()

    def abandon(self) -> None:
        """The agent stops and the database does not answer: the renew or release under way
        fails now, and every later one at once."""
        self._abandoned.set()
        if self._conn is not None:
            sever(self._conn)

    async def renew(self, take_others: bool, announce: bool = False) -> Renewal:
        """Heartbeat, renew, take up to the fair share, and the coordinator lease: one
        transaction. ``announce`` wakes the other agents (this one just joined)."""

        async def work(conn: psycopg.AsyncConnection[tuple[Any, ...]]) -> Renewal:
            params = self._params(others=take_others)
            async with conn.transaction():
                await conn.execute(REGISTER, params)
                if not self._known_slots:
                    await conn.execute(ENSURE_SLOTS, params)
                live = dict(await (await conn.execute(LIVE_AGENTS, params)).fetchall())
                live.setdefault(self.me.agent_id, 0)
                agents = len(live)
                others = [int(n) for agent, n in live.items() if agent != self.me.agent_id]
                held = {s: e for s, e in await (await conn.execute(RENEW, params)).fetchall()}
                share = math.ceil(self.slots / agents)
                taken: dict[int, int] = {}
                if share > len(held):
                    cursor = await conn.execute(TAKE, {**params, "room": share - len(held)})
                    taken = {s: e for s, e in await cursor.fetchall()}
                found = await (await conn.execute(COORDINATE, params)).fetchone()
                coordinator = int(found[0]) if found else None
                if coordinator is not None:
                    await conn.execute(FORGET_GONE)
                if announce:
                    await conn.execute(NOTIFY, (self.me.agent_id,))
            self._known_slots = True
            return Renewal(
                {**held, **taken},
                frozenset(taken),
                agents,
                share,
                min(others, default=None),
                coordinator,
            )

        result: Renewal = await self._run("renewing the leases", work)
        return result

    async def release(self, slots: Mapping[int, int]) -> None:
        """Give these slots up (their state is flushed): free for any agent, now."""

        async def work(conn: psycopg.AsyncConnection[tuple[Any, ...]]) -> None:
            async with conn.transaction():
                await conn.execute(RELEASE, (self.me.vantage, self.me.agent_id, list(slots)))
                await conn.execute(NOTIFY, (self.me.agent_id,))

        await self._run("releasing slots", work)

    async def leave(self) -> None:
        """A graceful stop: every lease of this agent released, its row removed, the others
        woken to take over at once."""

        async def work(conn: psycopg.AsyncConnection[tuple[Any, ...]]) -> None:
            me = self.me.agent_id
            async with conn.transaction():
                await conn.execute(
                    "UPDATE shard_lease SET owner = NULL, expires_at = '-infinity'"
                    " WHERE owner = %s",
                    (me,),
                )
                await conn.execute(
                    "UPDATE coordinator_lease SET owner = NULL, expires_at = '-infinity'"
                    " WHERE owner = %s",
                    (me,),
                )
                await conn.execute("DELETE FROM agents WHERE agent_id = %s", (me,))
                await conn.execute(NOTIFY, (me,))

        try:
            await self._run("leaving the cluster", work)
        finally:
            await self._drop()

    async def listen(self, wake: Callable[[], None], retry: float) -> None:
        """Call ``wake`` whenever another agent says the slots changed; forever, reconnecting
        after ``retry`` seconds when the connection is lost."""
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(
                    self._url, **options(f"watchdesk {self.me.vantage} listen")
                )
            except psycopg.Error:
                await asyncio.sleep(retry)
                continue
            try:
                await conn.execute(f"LISTEN {CHANNEL}")
                async for note in conn.notifies():
                    if note.payload != self.me.agent_id:
                        wake()
            except psycopg.Error:
                await asyncio.sleep(retry)
            finally:
                await conn.close()

    async def close(self) -> None:
        await self._drop()
