"""A database that went silent (its link blackholed: no answer, no reset) does not hold the
agent: a bounded call ends at its bound instead of waiting 10 s more on psycopg's cancel over
the same dead link, and a store given up (a stop past its grace) fails every waiting call at
once, so ``watchdesk run`` exits within the 5 s of the contract. In one process, on the real
PostgreSQL, through a TCP proxy the test cuts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

import psycopg
import pytest

from monitor.errors import StoreError
from monitor.state import TargetState
from monitor.store.postgres import PostgresStore
from monitor.store.postgres.connect import options, within
from monitor.store.postgres.leases import LeaseTable, Registration
from tests.pg import PostgresServer, database_name
from tests.tcpproxy import TcpProxy


@pytest.fixture
def proxy(pg_server: PostgresServer) -> Iterator[TcpProxy]:
    with TcpProxy(pg_server.host, pg_server.port) as made:
        yield made


@pytest.fixture
def url(pg_server: PostgresServer, pg_url: str, proxy: TcpProxy) -> str:
    """The test's database, reached through ``proxy``."""
    return pg_server.tcp_url(database_name(pg_url), proxy.port)


@pytest.fixture
async def store(url: str) -> AsyncIterator[PostgresStore]:
    made = PostgresStore(url, "east")
    await made.open()
    yield made
    made.abandon()
    await made.close()


async def test_a_call_on_a_silent_link_ends_at_its_bound(url: str, proxy: TcpProxy) -> None:
    conn = await psycopg.AsyncConnection.connect(url, **options("test"))
    try:
        await conn.execute("SELECT 1")
        proxy.cut("blackhole")
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            await within(conn, conn.execute("SELECT 1"), 0.3)
        assert time.monotonic() - started < 1.0  # not the 10 s of a cancel over the dead link
        assert conn.broken  # severed: nobody uses it again
    finally:
        await conn.close()


async def test_a_lease_renew_on_a_silent_link_fails_at_its_limit(url: str, proxy: TcpProxy) -> None:
    table = LeaseTable(url, Registration("a", "east", "host", 1, "-", "test"), 4, 1.0, 0.5)
    try:
        await table.renew(take_others=False)
        proxy.cut("blackhole")
        started = time.monotonic()
        with pytest.raises(StoreError, match="timed out"):
            await table.renew(take_others=False)
        assert time.monotonic() - started < 1.5
        table.abandon()  # a stop gives the database up: nothing is tried any more
        started = time.monotonic()
        with pytest.raises(StoreError, match="gave the database up"):
            await table.leave()
        assert time.monotonic() - started < 0.1
    finally:
        await table.close()


async def test_an_abandoned_store_fails_its_waiting_calls_at_once(
    store: PostgresStore, proxy: TcpProxy
) -> None:
    assert await store.load_states() == {}
    proxy.cut("blackhole")
    waiting = [asyncio.ensure_future(store.load_states()) for _ in range(6)]  # > the pool
    writing = asyncio.ensure_future(store.writable())
    await asyncio.sleep(0.5)
    assert not any(task.done() for task in [*waiting, writing])  # stuck on the silent link

    started = time.monotonic()
    store.abandon()
    results = await asyncio.wait_for(asyncio.gather(*waiting, return_exceptions=True), 1.0)
    assert all(isinstance(r, StoreError) for r in results), results
    assert await asyncio.wait_for(writing, 1.0) is False
    with pytest.raises(StoreError, match="gave the database up"):
        await store.load_states()
    await asyncio.wait_for(store.close(), 2.0)
    assert time.monotonic() - started < 2.0


async def test_a_call_on_a_link_that_acks_but_never_answers_fails_at_the_call_limit(
    url: str, pg_url: str, proxy: TcpProxy
) -> None:
    """Not at a stop: a running agent's call whose link goes silent in flight (the proxy's
    kernel acks every byte, so neither keepalives nor tcp_user_timeout notice) fails at the
    store's call limit instead of holding the store, and every call queued behind it, for
    good; once the link is back the next call goes through."""
    store = PostgresStore(url, "east", call_limit=1.0)
    await store.open()
    try:
        await store.record(("web", "tcp:x", TargetState(), 1))
        with psycopg.connect(pg_url) as locker:  # straight to the server, not through the proxy
            locker.execute("SELECT 1 FROM target_state WHERE target = 'web' FOR UPDATE")
            writing = asyncio.ensure_future(store.record(("web", "tcp:x", TargetState(), 2)))
            await asyncio.sleep(0.3)  # the write waits on the row, its connection lent
            proxy.cut("blackhole")
            locker.rollback()  # the server answers now, into the silent link
        started = time.monotonic()
        with pytest.raises(StoreError, match="did not answer within 1 s"):
            await asyncio.wait_for(writing, 5.0)
        assert time.monotonic() - started < 1.5
        proxy.heal()
        await store.record(("web", "tcp:x", TargetState(), 3))
        assert (await store.load_states())["web"][0] == "tcp:x"
    finally:
        store.abandon()
        await store.close()
