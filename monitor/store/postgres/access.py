"""The pool behind ``PostgresStore`` and the two ways a call reaches it: a write is one
transaction, a read one or more autocommit statements; both in the order the calls were made
(``CallOrder``) and with every driver error turned into a ``StoreError`` that names the
database, never its URL.

The pool is small (the agent makes few, short calls: the flush about once a second, a
transition's transaction, the outbox's claims) and checks a connection before lending it, so
that a database restart costs one failed call, not one per stale connection.

In a cluster a write is fenced (``monitor.store.fence``): it names the targets it is about,
the caller's scope adds the leases it acts under, and the transaction ends with the check that
each of those leases is still this agent's, under the epoch it holds, for a margin longer than
the transaction may idle; otherwise it rolls back with ``Fenced``.

A stopping agent must exit within seconds even when the database went silent (SIGTERM while
the link is blackholed): ``abandon`` severs every connection a call holds and ends every wait
for one, so the calls still waiting fail at once and the agent's stop goes on with what it has.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar

import psycopg
from psycopg_pool import AsyncConnectionPool

from monitor.actions import Action
from monitor.errors import StoreError
from monitor.state import Transition
from monitor.store.base import BuildActions
from monitor.store.fence import Fenced, Fencing, WriteScope, current_scope
from monitor.store.postgres import fencing as fenced
from monitor.store.postgres import migrate
from monitor.store.postgres.connect import (
    CONNECT_TIMEOUT,
    describe,
    options,
    redact,
    sever,
    within,
)
from monitor.store.postgres.order import CallOrder
from monitor.store.postgres.records import Record, RecordJoiner, WriteAll
from monitor.store.records import Incident
from monitor.store.schema import StateRow

T = TypeVar("T")
Connection = psycopg.AsyncConnection[tuple[Any, ...]]
Work = Callable[[Connection], Awaitable[T]]

POOL_SIZE = 4
# How long a call waits for a free (or new) connection before it fails: /readyz and the
# flush must not hang on a lost database much longer than a probe interval.
POOL_TIMEOUT = 5.0
# How long closing waits for the pool's workers: one may be connecting to a database that
# does not answer (for CONNECT_TIMEOUT), and nothing it would bring is needed any more.
POOL_CLOSE = 0.5
# How long the pool's check of a connection it lends may take (a silent link answers never).
CHECK_TIMEOUT = 2.0
# How long one call may hold its connection. A link that went silent while TCP still acks (a
# hung proxy or load balancer: keepalives and tcp_user_timeout see nothing wrong) would hold
# it for ever, and every later call in the order behind it: past this the connection is
# severed and the call fails like any lost database, to be tried again.
CALL_LIMIT = 60.0


class PostgresAccess:
    def __init__(
        self,
        url: str,
        vantage: str,
        fencing: Fencing | None = None,
        call_limit: float = CALL_LIMIT,
    ) -> None:
        self._url = url
        self.call_limit = call_limit
        self.fencing = fencing
        self._where = describe(url)  # refuses a URL libpq cannot read, without quoting it
        self.vantage = vantage
        self._pool: AsyncConnectionPool[Connection] | None = None
        self._order = CallOrder()
        self._records = RecordJoiner()
        self._closed = False
        self._gave_up = asyncio.Event()
        self._lent: set[Connection] = set()  # connections a call holds (or the pool checks)
        self._retired: set[asyncio.Future[None]] = set()

    @property
    def location(self) -> str:
        return self._where

    async def open(self) -> None:
        """Connect, refuse a database whose schema is not this watchdesk's (see
        ``monitor.store.postgres.migrate``), then open the pool."""
        if self._pool is not None:
            return
        try:
            first = await psycopg.AsyncConnection.connect(self._url, **options(self._name()))
        except psycopg.Error as exc:
            raise StoreError(f"cannot connect to the {self._where}: {self._redact(exc)}") from None
        try:
            exists = await (await first.execute(migrate.LEDGER_EXISTS)).fetchone()
            applied: list[int] = []
            if exists and exists[0]:
                cursor = await first.execute("SELECT version FROM schema_migrations")
                applied = [int(row[0]) for row in await cursor.fetchall()]
        except psycopg.Error as exc:
            raise StoreError(f"cannot read the schema of the {self._where}: {exc}") from exc
        finally:
            await first.close()
        trouble = migrate.problem(applied)
        if trouble:
            raise StoreError(f"{self._where}: {trouble}")
        pool = self._new_pool()
        try:
            await pool.open(wait=True, timeout=CONNECT_TIMEOUT)
        except psycopg.Error as exc:
            await pool.close()
            raise StoreError(f"cannot connect to the {self._where}: {self._redact(exc)}") from None
        self._pool = pool

    def _new_pool(self) -> AsyncConnectionPool[Connection]:
        return AsyncConnectionPool(
            self._url,
            min_size=1,
            max_size=POOL_SIZE,
            kwargs=options(self._name()),
            open=False,
            timeout=POOL_TIMEOUT,
            check=self._check,
            name=f"watchdesk-{self.vantage}",
        )

    async def reconnect(self) -> None:
        """The database answers again after an outage: a fresh pool at once. The old one
        would reconnect only at its next backoff, which doubles while the database is away
        (minutes after an outage of minutes)."""
        if self._pool is None or self._closed or self._gave_up.is_set():
            return
        old, fresh = self._pool, self._new_pool()
        await fresh.open(wait=False)
        self._pool = fresh
        self._retired.add(asyncio.ensure_future(old.close(timeout=1.0)))
        self._retired = {task for task in self._retired if not task.done()}

    async def _check(self, conn: Connection) -> None:
        """The pool's check before it lends ``conn``, bounded (and severed by ``abandon``)."""
        async with self._holding(conn):
            await within(conn, conn.execute(""), CHECK_TIMEOUT)

    @contextlib.asynccontextmanager
    async def _holding(self, conn: Connection) -> AsyncIterator[Connection]:
        self._lent.add(conn)
        try:
            if self._gave_up.is_set():
                sever(conn)
            yield conn
        finally:
            self._lent.discard(conn)

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[Connection]:
        """A connection of the pool for one call (as ``pool.connection()`` lends it); the
        wait for it, and the call, end at once when the store is abandoned."""
        pool = self._ready()
        getting = asyncio.ensure_future(pool.getconn())
        giving_up = asyncio.ensure_future(self._gave_up.wait())
        try:
            await asyncio.wait({getting, giving_up}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            giving_up.cancel()
            if not getting.done():
                getting.cancel()
                await asyncio.gather(getting, return_exceptions=True)
        if getting.cancelled():
            raise StoreError(f"the store ({self._where}) gave the database up: stopping")
        conn = getting.result()
        late: list[bool] = []

        def overdue() -> None:
            late.append(True)
            sever(conn)

        timer = asyncio.get_running_loop().call_later(self.call_limit, overdue)
        try:
            async with self._holding(conn), conn:  # held until its transaction has ended
                yield conn
        except psycopg.Error as exc:
            if late:
                raise StoreError(
                    f"the {self._where} did not answer within {self.call_limit:g} s: the call "
                    "was dropped (a write may have taken effect)"
                ) from exc
            raise
        finally:
            timer.cancel()
            await pool.putconn(conn)

    def abandon(self) -> None:
        """The agent stops and the database does not answer: every call still waiting fails
        now (its connection severed, or its wait for one ended), and every later one at once;
        ``close`` then returns."""
        self._gave_up.set()
        for conn in list(self._lent):
            sever(conn)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._order.drain()
        if self._pool is not None:
            await self._pool.close(timeout=POOL_CLOSE)
            self._pool = None

    def _name(self) -> str:
        return f"watchdesk {self.vantage}"

    def _redact(self, error: BaseException) -> str:
        return redact(str(error).strip(), self._url)

    def _ready(self) -> AsyncConnectionPool[Connection]:
        if self._gave_up.is_set():
            raise StoreError(f"the store ({self._where}) gave the database up: stopping")
        if self._pool is None:
            state = "closed" if self._closed else "not open"
            raise StoreError(f"the store ({self._where}) is {state}")
        return self._pool

    async def _write(self, work: Work[T], targets: Iterable[str] = ()) -> T:
        """``work`` in one transaction, after every call made before this one; in a cluster
        fenced by the leases of ``targets`` and of the caller's scope (asked when its turn
        comes: a write that waited behind others while the database was away is refused)."""
        if self._closed:
            raise StoreError(f"the store ({self._where}) is closed")
        self._records.close()
        names, scope = tuple(targets), current_scope()
        return await self._order.run(lambda: self._transaction(work, names, scope), write=True)

    async def _record(self, record: Record, write_all: WriteAll) -> None:
        """A state row (and transition) joined with the records queued beside it
        (``monitor.store.postgres.records``)."""
        if self._closed:
            raise StoreError(f"the store ({self._where}) is closed")
        batch, index, first = self._records.join(record)
        if first:
            batch.written = self._order.submit(
                lambda: self._records.write(batch, write_all), write=True
            )
        assert batch.written is not None
        try:
            written = await asyncio.shield(batch.written)
        except asyncio.CancelledError:
            batch.withdraw(index)  # not begun yet: it never will be
            raise
        outcome = written.outcomes.get(index)
        if outcome is not None:
            raise outcome

    async def _transaction(self, work: Work[T], names: tuple[str, ...], scope: WriteScope) -> T:
        fencing = self.fencing
        fences = fencing.fences(names, scope) if fencing is not None else []
        try:
            async with self._connection() as conn, conn.transaction():
                if fencing is not None and fences:
                    await fenced.limit_idling(conn, fencing.idle_limit)
                result = await work(conn)
                if fencing is not None and fences:
                    await fenced.check(conn, fences, fencing.check_margin)
                return result
        except Fenced as refused:
            if fencing is not None:
                fencing.refused(refused.fences, refused.reason)
            raise
        except psycopg.Error as exc:
            raise StoreError(f"store write failed: {self._redact(exc)}") from exc

    async def _read(self, work: Work[T]) -> T:
        """``work`` after every write made before this one, beside other reads."""

        async def run() -> T:
            try:
                async with self._connection() as conn:
                    return await work(conn)
            except psycopg.Error as exc:
                raise StoreError(f"store read failed: {self._redact(exc)}") from exc

        if self._closed:
            raise StoreError(f"the store ({self._where}) is closed")
        self._records.close()
        return await self._order.run(run, write=False)

    async def _rows(self, query: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        async def fetch(conn: Connection) -> list[tuple[Any, ...]]:
            return await (await conn.execute(query, params)).fetchall()

        return await self._read(fetch)


class IncidentWrites(PostgresAccess):
    """The state and incident writes, inside a transaction, that ``PostgresStore`` provides
    to the mixins that build on them (storms, verdicts)."""

    async def _write_state(
        self, conn: Connection, state: StateRow | None, transition: Transition | None
    ) -> None:
        raise NotImplementedError

    async def _insert_incident(
        self, conn: Connection, incident: dict[str, Any], build: BuildActions
    ) -> Incident | None:
        raise NotImplementedError

    async def _change_incident(
        self,
        conn: Connection,
        incident_id: int,
        changes: dict[str, Any],
        actions: Sequence[Action],
        now: float,
    ) -> None:
        raise NotImplementedError
