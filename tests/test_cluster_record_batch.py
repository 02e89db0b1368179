"""First verdicts at scale on the cluster's PostgreSQL (``monitor.store.postgres.records``):
records that queue up together commit in one fenced transaction, and a lease lost for one
target refuses only that target's record, never its neighbours' in the batch; a record whose
caller is cancelled before its batch begins is never written."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import psycopg
import pytest

from monitor import cluster
from monitor.cluster.member import ClusterMember
from monitor.config import parse_config
from monitor.metrics import Metrics
from monitor.state import TargetState, Transition
from monitor.store.fence import Fenced
from monitor.store.postgres import PostgresStore

COUNT = 200
CLUSTER = """
[cluster]
database_url_env = "WD_TEST_DATABASE_URL"
vantage = "east"
slots = 4
lease_ttl = "5s"
lease_renew = "1s"
""" + "".join(
    f'[[targets]]\nname = "t{i}"\nkind = "tcp"\nhost = "127.0.0.1"\nport = {1000 + i}\n'
    for i in range(COUNT)
)
UP = TargetState(status="up", consecutive_successes=1, since=100.0, last_checked_at=100.0)
FIRST = Transition("unknown", "up", 100.0, None, 0, "connected")


@pytest.fixture
async def member(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[ClusterMember, PostgresStore]]:
    monkeypatch.setenv("WD_TEST_DATABASE_URL", pg_url)
    joined = cluster.join(parse_config(CLUSTER), Metrics("test"), dict)
    assert joined is not None
    store = PostgresStore(pg_url, "east", joined)
    await store.open()
    await joined.join()
    yield joined, store
    await joined.close()
    await store.close()


def transactions(url: str) -> int:
    """How many transactions wrote the transitions (rows of one share its id, ``xmin``)."""
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(DISTINCT xmin::text) FROM transitions").fetchone()
    assert row is not None
    return int(row[0])


async def test_first_verdicts_queued_together_commit_in_one_transaction(
    member: tuple[ClusterMember, PostgresStore], pg_url: str
) -> None:
    _, store = member
    names = [f"t{i}" for i in range(COUNT)]
    await asyncio.gather(
        *(store.record((name, "tcp:x", UP, seq), FIRST) for seq, name in enumerate(names, 1))
    )
    assert set(await store.load_states()) == set(names)
    assert len(await store.transitions()) == COUNT
    assert transactions(pg_url) <= 2


async def test_a_lost_lease_refuses_only_its_targets_records_in_a_batch(
    member: tuple[ClusterMember, PostgresStore], pg_url: str
) -> None:
    agent, store = member
    stolen = agent.slot("t0")
    with psycopg.connect(pg_url, autocommit=True) as conn:  # another agent took t0's slot
        conn.execute(
            "UPDATE shard_lease SET owner = 'thief', epoch = epoch + 1 WHERE slot = %s", (stolen,)
        )
    names = [f"t{i}" for i in range(COUNT)]
    outcomes = await asyncio.gather(
        *(store.record((name, "tcp:x", UP, seq), FIRST) for seq, name in enumerate(names, 1)),
        return_exceptions=True,
    )
    refused = {name for name, outcome in zip(names, outcomes, strict=True) if outcome}
    assert all(isinstance(o, Fenced) for o in outcomes if o is not None)
    assert refused == {name for name in names if agent.slot(name) == stolen}
    assert 0 < len(refused) < COUNT
    assert set(await store.load_states()) == set(names) - refused


async def test_a_record_cancelled_before_its_batch_begins_is_not_written(pg_url: str) -> None:
    """A stop cancels callers: of three records queued together behind a write under way,
    the one whose caller is cancelled is never written, the other two are, in one batch."""
    store = PostgresStore(pg_url, "east")
    await store.open()
    try:
        await store.record(("web", "tcp:x", UP, 1))
        with psycopg.connect(pg_url) as blocker:
            blocker.execute("SELECT * FROM target_state FOR UPDATE")  # holds the row
            running = asyncio.ensure_future(store.record(("web", "tcp:x", UP, 2), FIRST))
            await asyncio.sleep(0.2)  # under way: waits on the row
            queued = {
                name: asyncio.ensure_future(store.record((name, "tcp:x", UP, seq), FIRST))
                for seq, name in enumerate(("a", "b", "c"), 3)
            }
            await asyncio.sleep(0.1)
            queued["b"].cancel()
            blocker.rollback()
        await running
        await asyncio.gather(queued["a"], queued["c"])
        with pytest.raises(asyncio.CancelledError):
            await queued["b"]
        assert set(await store.load_states()) == {"web", "a", "c"}
    finally:
        await store.close()
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute(
            "SELECT count(DISTINCT xmin::text) FROM transitions WHERE target IN ('a', 'c')"
        ).fetchone()
    assert rows == (1,)
