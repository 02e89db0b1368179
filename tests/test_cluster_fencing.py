"""The cluster's coordination on a real PostgreSQL, in one process: leases taken and renewed in
one transaction with epochs, a dead agent's slots taken over only after they expire (and by a
(re)connected agent only after a whole lease), writes fenced by the agent's own clock and by
the database, the coordinator's compare-and-set writes, and outbox claims with tokens."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import psycopg
import pytest
from prometheus_client import CollectorRegistry

from monitor import cluster
from monitor.actions import AddNote
from monitor.cluster.member import ClusterMember
from monitor.cluster.slots import group_keys, slot_map
from monitor.config import parse_config
from monitor.metrics import Metrics
from monitor.state import TargetState
from monitor.store.fence import Fenced, as_coordinator
from monitor.store.postgres import PostgresStore, migrate
from monitor.store.postgres.leases import LeaseTable, Registration
from tests.pg import PostgresServer, apply_first_migrations
from tests.test_store_parity import DOWN, first_actions, incident_fields

TTL = 1.0


def table(url: str, name: str, slots: int = 12) -> LeaseTable:
    return LeaseTable(url, Registration(name, "east", "host", 1, "-", "test"), slots, TTL, 2.0)


async def test_leases_are_taken_once_renewed_in_place_and_taken_over_after_they_expire(
    pg_url: str,
) -> None:
    a, b = table(pg_url, "a"), table(pg_url, "b")
    try:
        first = await a.renew(take_others=False, announce=True)
        assert (first.agents, first.share, len(first.held)) == (1, 12, 12)
        assert set(first.held.values()) == {1}  # epoch 1: taken for the first time
        assert first.coordinator == 1
        second = await b.renew(take_others=True)
        assert (second.agents, second.share, second.held) == (2, 6, {})  # nothing free
        assert second.coordinator is None
        await a.release({slot: 1 for slot in range(6, 12)})
        second = await b.renew(take_others=True)
        assert second.held == {slot: 2 for slot in range(6, 12)}  # epoch + 1
        assert second.taken == frozenset(range(6, 12))
        again = await a.renew(take_others=False)
        assert again.held == {slot: 1 for slot in range(6)}  # renewed: same epochs
        assert again.taken == frozenset()

        await asyncio.sleep(TTL + 0.2)  # a renews no more: its leases and heartbeat expire
        cautious = await b.renew(take_others=False)
        assert (cautious.agents, cautious.share) == (1, 12)
        assert set(cautious.held) == set(range(6, 12))  # just reconnected: leaves a's alone
        bold = await b.renew(take_others=True)
        assert bold.held == {**{slot: 2 for slot in range(6)}, **second.held}
        assert bold.coordinator == 2  # the coordinator lease moved too, with a new epoch
        back = await a.renew(take_others=False)
        assert back.held == {}  # the zombie's slots are b's now: renewing gets it nothing
    finally:
        await a.close()
        await b.close()


async def test_agents_taking_at_the_same_moment_get_disjoint_slots(pg_url: str) -> None:
    tables = [table(pg_url, f"agent-{i}", slots=64) for i in range(4)]
    try:
        # All four heartbeat first, so that each counts four and takes a quarter.
        for lease in tables:
            await lease.renew(take_others=False)
            await lease.release({slot: 1 for slot in range(64)})
        found = await asyncio.gather(*(lease.renew(take_others=False) for lease in tables))
        held = [set(r.held) for r in found]
        assert sum(len(h) for h in held) == 64
        assert set().union(*held) == set(range(64))
        assert all(len(h) == 16 for h in held), [len(h) for h in held]
    finally:
        for lease in tables:
            await lease.close()


def test_targets_joined_by_depends_on_share_a_slot() -> None:
    config = parse_config(
        "\n".join(
            f'[[targets]]\nname = "{name}"\nkind = "tcp"\nhost = "h"\nport = 1\n'
            + (f'depends_on = ["{parent}"]\n' if parent else "")
            for name, parent in [
                ("router", None),
                ("web", "router"),
                ("api", "web"),
                ("db", None),
                ("mail", "db"),
                ("alone", None),
            ]
        )
    )
    keys = group_keys(config.targets)
    assert keys == {
        "router": "api",
        "web": "api",
        "api": "api",
        "db": "db",
        "mail": "db",
        "alone": "alone",
    }
    slots = slot_map(config.targets, 1024)
    assert slots["router"] == slots["web"] == slots["api"]
    assert slots["db"] == slots["mail"]
    spread = slot_map(
        parse_config(
            "".join(
                f'[[targets]]\nname = "t{i}"\nkind = "tcp"\nhost = "h"\nport = 1\n'
                for i in range(2000)
            )
        ).targets,
        16,
    )
    counts = [list(spread.values()).count(slot) for slot in range(16)]
    assert max(counts) / min(counts) < 1.4, counts


CLUSTER = """
[cluster]
database_url_env = "WD_TEST_DATABASE_URL"
vantage = "east"
slots = 4
lease_ttl = "1s"
lease_renew = "300ms"
claim_ttl = "30s"

[[targets]]
name = "web"
kind = "tcp"
host = "127.0.0.1"
port = 9
"""


@pytest.fixture
def env(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("WD_TEST_DATABASE_URL", pg_url)
    return pg_url


@pytest.fixture
async def member(env: str) -> AsyncIterator[tuple[ClusterMember, PostgresStore, Metrics]]:
    config = parse_config(CLUSTER)
    metrics = Metrics("test")
    joined = cluster.join(config, metrics, dict)
    assert joined is not None
    store = PostgresStore(env, "east", joined)
    await store.open()
    await joined.join()
    yield joined, store, metrics
    await joined.close()
    await store.close()


def fenced(metrics: Metrics, reason: str) -> float:
    registry: CollectorRegistry = metrics.registry
    return registry.get_sample_value("watchdesk_fenced_writes_total", {"reason": reason}) or 0.0


async def test_a_write_is_refused_once_the_database_gave_the_lease_to_another_agent(
    member: tuple[ClusterMember, PostgresStore, Metrics], env: str
) -> None:
    agent, store, metrics = member
    assert agent.here("web")
    assert agent.live()
    assert agent.coordinator()
    await store.record(("web", "tcp:x", DOWN, 1))
    slot = agent.slot("web")
    with psycopg.connect(env, autocommit=True) as conn:  # another agent took the slot
        conn.execute(
            "UPDATE shard_lease SET owner = 'thief', epoch = epoch + 1 WHERE slot = %s", (slot,)
        )
    with pytest.raises(Fenced) as refused:
        await store.record(("web", "tcp:x", replace(DOWN, consecutive_failures=9), 2))
    assert refused.value.reason == "lost"
    assert fenced(metrics, "lost") == 1
    assert not agent.here("web")  # treated as lost at once
    assert (await store.load_states())["web"][1].consecutive_failures == 3  # nothing written
    with pytest.raises(Fenced):  # not even tried now
        await store.record(("web", "tcp:x", DOWN, 3))
    assert fenced(metrics, "lost") == 2


async def test_an_agent_whose_leases_are_not_renewed_writes_nothing_and_sends_nothing(
    member: tuple[ClusterMember, PostgresStore, Metrics],
) -> None:
    agent, store, metrics = member
    await store.record(("web", "tcp:x", DOWN, 1))
    await asyncio.sleep(TTL - agent.margin + 0.05)  # no renew: its own clock gives up
    assert not agent.live()
    assert not agent.coordinator()
    assert agent.problems() == [
        "cluster: this agent's leases are not renewed: it writes and sends nothing"
    ]
    started = time.monotonic()
    with pytest.raises(Fenced) as refused:
        await store.record(("web", "tcp:x", TargetState(), 2))
    assert refused.value.reason == "expired"
    assert time.monotonic() - started < 0.1  # refused by its own clock, the database not asked
    assert fenced(metrics, "expired") == 1
    await agent.join()  # a renew: the same slots under the same epochs, live again
    assert agent.live()
    assert agent.here("web")
    await store.record(("web", "tcp:x", TargetState(), 3))


async def test_a_deposed_coordinator_cannot_escalate_twice(
    member: tuple[ClusterMember, PostgresStore, Metrics], env: str
) -> None:
    agent, store, metrics = member
    other = PostgresStore(env, "east")
    await other.open()
    try:
        opened = await other.open_incident(incident_fields("web", 100.0), first_actions(0.0))
        assert opened is not None
        expect = {"status": "open", "escalation_level": 0, "worked_at": None}
        note = [AddNote("escalated", public=False)]
        with as_coordinator():
            assert await store.update_incident(
                opened.id, {"escalation_level": 1}, note, 101.0, expect=expect
            )
            # A second coordinator that read the same incident: its compare-and-set finds it
            # changed and queues nothing.
            assert not await other.update_incident(
                opened.id, {"escalation_level": 1}, note, 102.0, expect=expect
            )
        with psycopg.connect(env, autocommit=True) as conn:
            conn.execute("UPDATE coordinator_lease SET owner = 'new', epoch = epoch + 1")
        with as_coordinator(), pytest.raises(Fenced):
            await store.update_incident(opened.id, {"escalation_level": 2}, note, 103.0)
        assert not agent.coordinator()
        assert fenced(metrics, "lost") == 1
        notes = [a for a in await other.actions_of(opened.id) if a.operation == "note"]
        assert len(notes) == 1
        assert (await other.incident(opened.id)).escalation_level == 1  # type: ignore[union-attr]
    finally:
        await other.close()


async def test_outbox_claims_are_exclusive_ordered_and_taken_over_when_they_expire(
    pg_url: str,
) -> None:
    a, b = PostgresStore(pg_url, "east"), PostgresStore(pg_url, "east")
    await a.open()
    await b.open()
    try:
        opened = await a.open_incident(incident_fields("web", 100.0), first_actions(1e12))
        assert opened is not None
        await a.update_incident(opened.id, {}, [AddNote("more", public=True)], 100.0)
        mine = await a.claim_actions(200.0, 8, claim_ttl=0.5)
        assert [(x.channel, x.operation) for x in mine] == [
            ("ticket", "create"),
            ("pager:oncall", "page"),
        ]  # the queue heads: the note waits behind its create, the held page for its hour
        assert await b.claim_actions(200.0, 8, claim_ttl=0.5) == []  # claimed is taken
        create, page = mine
        assert await a.finish_action(create.id, 201.0, {"ticket_id": "1"}, None, create.claim_token)
        (note,) = await b.claim_actions(202.0, 8, claim_ttl=0.5)  # the next of the queue
        assert note.operation == "note"
        assert await b.finish_action(note.id, 202.0, None, None, note.claim_token)

        await asyncio.sleep(0.6)  # a's claim of the page runs out (a died, or stalled)
        (taken,) = await b.claim_actions(203.0, 8, claim_ttl=5)
        assert (taken.id, taken.attempts) == (page.id, 2)  # a new claim, a new attempt
        assert not await a.set_sent(page.id, 203.0, page.claim_token)
        assert not await a.finish_action(page.id, 204.0, None, None, page.claim_token)
        assert not await a.retry_action(page.id, 300.0, "late", page.claim_token)
        assert await b.finish_action(page.id, 205.0, None, None, taken.claim_token)
        states = {x.id: x.state for x in await a.actions_of(opened.id)}
        assert states[page.id] == "done"
    finally:
        await a.close()
        await b.close()


async def test_a_database_at_schema_6_migrates_to_the_cluster_schema(
    pg_server: PostgresServer,
) -> None:
    """An older database keeps its incidents and gains the agents and the coordinator lease."""
    url = pg_server.new_database(migrated=False)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            apply_first_migrations(conn, 6)
            conn.execute(
                "INSERT INTO incidents (target, dedup_key, status, priority, backend, opened_at,"
                " first_failure_at, failed_checks, last_reason) VALUES"
                " ('web', 'k-1', 'open', 'urgent', 'local', 1, 1, 3, 'x')"
            )
            applied = migrate.apply(conn)
            assert applied[0].name == "cluster"  # and the steps after it
            rows: list[Any] = conn.execute(
                "SELECT id, owner, epoch FROM coordinator_lease"
            ).fetchall()
            assert rows == [(1, None, 0)]
            assert conn.execute("SELECT COUNT(*) FROM agents").fetchone() == (0,)
            assert conn.execute("SELECT dedup_key FROM incidents").fetchall() == [("k-1",)]
    finally:
        pg_server.drop(url)
