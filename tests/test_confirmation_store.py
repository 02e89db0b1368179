"""Confirmation from several vantages, at the store, on a real PostgreSQL: one vantage's
"down" opens nothing, two open exactly one incident even when they cross at the same moment
(the quorum is counted under the target's advisory lock), an impaired or dead vantage's word
is not counted, fewer live vantages than needed follow ``degraded``, and a database at the
cluster schema gains the verdicts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import psycopg
import pytest

from monitor.store.base import BuildActions
from monitor.store.postgres import PostgresStore, migrate
from monitor.store.verdicts import Rules, Tally
from tests.pg import PostgresServer, apply_first_migrations
from tests.test_store_parity import first_actions, incident_fields

pytestmark = pytest.mark.slow

RULES = Rules(needed=2, window=60.0, degraded="all_live", degraded_delay=30.0)
VANTAGES = ("east", "west", "north")


def heartbeat(url: str, *vantages: str) -> None:
    """Agents of these vantages are live (as their lease renews make them)."""
    with psycopg.connect(url, autocommit=True) as conn:
        for vantage in vantages:
            conn.execute(
                "INSERT INTO agents (agent_id, vantage, host, pid, listen, version)"
                " VALUES (%s, %s, 'h', 1, '-', 't')",
                (f"agent-{vantage}", vantage),
            )


def plan(target: str, at: float) -> Callable[[Tally], tuple[dict[str, Any], BuildActions]]:
    def make(tally: Tally) -> tuple[dict[str, Any], BuildActions]:
        fields = incident_fields(target, at)
        fields["last_reason"] = "; ".join(f"{v.vantage}: {v.reason}" for v in tally.down)
        return fields, first_actions(1e12)

    return make


@pytest.fixture
async def stores(pg_url: str) -> AsyncIterator[dict[str, PostgresStore]]:
    heartbeat(pg_url, *VANTAGES)
    made = {vantage: PostgresStore(pg_url, vantage) for vantage in VANTAGES}
    for store in made.values():
        await store.open()
    yield made
    for store in made.values():
        await store.close()


async def down(store: PostgresStore, target: str, at: float, rules: Rules = RULES) -> Any:
    said = (True, at - 30, at, f"refused from {store.vantage}")
    return await store.confirm_open(target, said, rules, (), plan(target, at))


async def test_one_vantage_opens_nothing_two_open_one(stores: dict[str, PostgresStore]) -> None:
    east, west, north = stores["east"], stores["west"], stores["north"]
    for minute in range(20):  # down from east only, said again and again
        incident, tally = await down(east, "web", 1000.0 + 60 * minute)
        assert incident is None
    assert tally.why() == "down from 1 of the 2 vantages it needs (east)"
    incident, tally = await down(west, "web", 2200.0)
    assert incident is not None
    assert incident.last_reason == "east: refused from east; west: refused from west"
    again, _ = await down(north, "web", 2201.0)
    assert again is None  # the open one stands
    assert len(await east.incidents(open_only=True)) == 1


async def test_two_vantages_crossing_together_open_exactly_one_each_time(
    stores: dict[str, PostgresStore],
) -> None:
    east, west = stores["east"], stores["west"]
    for round_ in range(100):
        target = f"web-{round_}"
        results = await asyncio.gather(down(east, target, 500.0), down(west, target, 500.0))
        opened = [incident for incident, _ in results if incident is not None]
        assert len(opened) == 1, (round_, results)
    incidents = await east.incidents(open_only=True)
    assert sorted(i.target for i in incidents) == sorted(f"web-{n}" for n in range(100))


async def test_an_impaired_vantage_is_not_counted(stores: dict[str, PostgresStore]) -> None:
    east, west, north = stores["east"], stores["west"], stores["north"]
    await west.open_incident(
        {**incident_fields("watchdesk:impaired:west", 10.0), "kind": "agent"},
        first_actions(1e12),
    )
    await down(west, "web", 100.0)
    incident, tally = await down(east, "web", 101.0)
    assert incident is None
    assert [v.vantage for v in tally.down] == ["east"]
    assert "not counted (dead or impaired): west" in tally.why()
    incident, _ = await down(north, "web", 102.0)
    assert incident is not None


async def test_a_stale_down_does_not_count(stores: dict[str, PostgresStore]) -> None:
    await down(stores["east"], "web", 100.0)
    incident, tally = await down(stores["west"], "web", 100.0 + RULES.window + 1)
    assert incident is None
    assert [v.vantage for v in tally.down] == ["west"]


@pytest.mark.parametrize("degraded", ["all_live", "hold"])
async def test_fewer_live_vantages_than_needed(pg_url: str, degraded: str) -> None:
    heartbeat(pg_url, "east")  # west and north never started, or died long ago
    store = PostgresStore(pg_url, "east")
    await store.open()
    rules = Rules(needed=2, window=60.0, degraded=degraded, degraded_delay=30.0)  # type: ignore[arg-type]
    try:
        said = (True, 100.0, 110.0, "refused")
        early, tally = await store.confirm_open("web", said, rules, (), plan("web", 110.0))
        assert early is None
        said = (True, 100.0, 131.0, "refused")
        late, tally = await store.confirm_open("web", said, rules, (), plan("web", 131.0))
        if degraded == "all_live":
            assert late is not None  # every live one said down for degraded_delay
        else:
            assert late is None
            assert "degraded = hold opens nothing" in tally.why()
    finally:
        await store.close()


async def test_recovery_needs_a_majority_of_live_vantages(
    stores: dict[str, PostgresStore],
) -> None:
    east, west = stores["east"], stores["west"]
    await down(east, "web", 100.0)
    await down(west, "web", 100.0)
    await east.say("web", (False, 200.0, 200.0, "ok"))
    # east and north (never down) say up: 2 of 3
    assert (await west.tally("web", RULES, (), 200.0)).recovered()
    await east.say("web", (True, 210.0, 210.0, "refused"))
    assert not (await west.tally("web", RULES, (), 210.0)).recovered()  # north alone: 1 of 3


async def test_a_target_counts_only_its_own_vantages(stores: dict[str, PostgresStore]) -> None:
    own = ("east", "north")
    said = (True, 100.0, 100.0, "refused")
    await stores["west"].confirm_open("web", said, RULES, own, plan("web", 100.0))
    incident, tally = await stores["east"].confirm_open("web", said, RULES, own, plan("web", 100.0))
    assert incident is None
    assert [v.vantage for v in tally.verdicts] == ["east", "north"]


def test_a_database_at_the_cluster_schema_gains_the_verdicts(pg_server: PostgresServer) -> None:
    url = pg_server.new_database(migrated=False)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            apply_first_migrations(conn, 7)
            conn.execute(
                "INSERT INTO incidents (target, dedup_key, status, priority, backend, opened_at,"
                " first_failure_at, failed_checks, last_reason) VALUES"
                " ('web', 'k-1', 'open', 'urgent', 'local', 1, 1, 3, 'x')"
            )
            applied = migrate.apply(conn)
            assert [m.name for m in applied] == ["verdicts"]
            conn.execute("INSERT INTO verdicts VALUES ('web', 'east', true, 1, 1, 'refused')")
            (count,) = conn.execute("SELECT count(*) FROM incidents").fetchone()  # type: ignore[misc]
            assert count == 1
    finally:
        pg_server.drop(url)
