"""One agent with ``[cluster]`` runs on PostgreSQL as it does on SQLite: the schema is migrated
once however many agents ask at the same moment, an agent refuses a database it does not know,
an agent's SQLite store moves in with ``watchdesk db import``, and the real agent process takes
an outage from first failure to recovery note with one ticket and one page. The database URL
(it holds a password) is never shown."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import psycopg
import pytest

from monitor.actions import CreateTicket
from monitor.cli.report import build_report
from monitor.config import parse_config
from monitor.store import SqliteDatabase, SqliteStore, StormMember
from monitor.store.postgres import PostgresReader, PostgresStore, migrate
from monitor.store.postgres.importer import import_store
from tests.agent_harness import Harness
from tests.helpers import (
    STAND_IN_ENV,
    AgentProcess,
    FakeProcess,
    api_agent_toml,
    free_port,
    freshdesk_toml,
    pagerduty_toml,
    run_cli,
)
from tests.pg import PostgresServer, apply_first_migrations
from tests.samples import DRAFT
from tests.test_store_async import CONFIG
from tests.test_store_parity import outage

pytestmark = pytest.mark.slow

PASSWORD = "hunter2-db-secret"
CLUSTER = """
[cluster]
database_url_env = "WD_TEST_DATABASE_URL"
vantage = "east"
"""
MINIMAL = """
[[targets]]
name = "web"
kind = "tcp"
host = "127.0.0.1"
port = 9
"""


def with_password(url: str) -> str:
    return url.replace("postgres@", f"postgres:{PASSWORD}@", 1)


def env_for(url: str) -> dict[str, str]:
    return {"WD_TEST_DATABASE_URL": url}


def test_migrations_asked_by_three_processes_at_once_apply_once(
    pg_server: PostgresServer, write_config: Callable[..., Path]
) -> None:
    url = pg_server.new_database(migrated=False)
    config = str(write_config(MINIMAL + CLUSTER))
    command = [sys.executable, "-m", "monitor", "db", "migrate", "-c", config]
    with psycopg.connect(url, autocommit=True) as holder:
        # Hold the migration lock so that all three are surely waiting on it together.
        holder.execute("SELECT pg_advisory_lock(%s)", (migrate.LOCK_KEY,))
        procs = [
            subprocess.Popen(
                command,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env={**os.environ, **env_for(url)},
            )
            for _ in range(3)
        ]
        deadline = time.monotonic() + 30
        waiting = 0
        while waiting < 3 and time.monotonic() < deadline:
            row = holder.execute(
                "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            ).fetchone()
            waiting = int(row[0]) if row else 0
            time.sleep(0.05)
        assert waiting == 3
        holder.execute("SELECT pg_advisory_unlock(%s)", (migrate.LOCK_KEY,))
        outputs = [proc.communicate(timeout=60) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0, 0], outputs
    said = [out for out, _ in outputs]
    every = migrate.migrations()
    names = ", ".join(f"{m.version:04d}_{m.name}" for m in every)
    assert sum(f"applied {len(every)} migration(s): {names}" in out for out in said) == 1, said
    assert sum(f"up to date (schema {len(every)})" in out for out in said) == 2, said
    with psycopg.connect(url) as conn:
        versions = conn.execute("SELECT version FROM schema_migrations ORDER BY 1").fetchall()
        assert versions == [(m.version,) for m in every]

    again = run_cli("db", "migrate", "-c", config, env=env_for(url))
    assert again.returncode == 0
    assert f"up to date (schema {len(every)})" in again.stdout


def test_a_database_of_schema_3_follows_the_tickets_it_had_set_pending(
    pg_server: PostgresServer,
) -> None:
    """Migration 0004 on a database of the release before: a resolved incident whose own
    pending status was delivered waits on the customer from that delivery (a customer notice's
    later status is not its own); an open incident's ticket is not waiting."""
    url = pg_server.new_database(migrated=False)
    with psycopg.connect(url, autocommit=True) as conn:
        with conn.transaction():
            apply_first_migrations(conn, 3)
            for key, status in (("k-1", "resolved"), ("k-2", "open")):
                conn.execute(
                    "INSERT INTO incidents (target, dedup_key, status, priority, backend,"
                    " opened_at, first_failure_at, failed_checks, last_reason)"
                    " VALUES ('web', %s, %s, 'urgent', 'local', 1, 1, 3, 'x')",
                    (key, status),
                )
            for payload, done_at, notice in (
                ('{"v": 2, "status": "pending"}', 100.0, None),
                ('{"v": 2, "status": "resolved"}', 200.0, "globex"),
            ):
                conn.execute(
                    "INSERT INTO outbox (incident_id, channel, operation, payload, state,"
                    " next_attempt_at, created_at, done_at, notice)"
                    " VALUES (1, 'ticket', 'status', %s, 'done', 1, 1, %s, %s)",
                    (payload, done_at, notice),
                )
        later = [step.version for step in migrate.migrations()[3:]]
        assert [step.version for step in migrate.apply(conn)] == later
        rows = conn.execute(
            "SELECT id, ticket_state, pending_since FROM incidents ORDER BY id"
        ).fetchall()
    assert rows == [(1, "pending", 100.0), (2, "open", None)]
    reader = PostgresReader(url, "east")
    try:
        assert [i.id for i in reader.watched_incidents()] == [2, 1]
    finally:
        reader.close()


def test_a_database_of_schema_4_knows_the_priority_its_tickets_were_created_with(
    pg_server: PostgresServer,
) -> None:
    """Migration 0005: an incident's ticket priority seen is the one its own ticket was created
    with (a customer notice's ticket is not its own); unknown without a create action."""
    url = pg_server.new_database(migrated=False)
    with psycopg.connect(url, autocommit=True) as conn:
        with conn.transaction():
            apply_first_migrations(conn, 4)
            for key in ("k-1", "k-2"):
                conn.execute(
                    "INSERT INTO incidents (target, dedup_key, status, priority, backend,"
                    " opened_at, first_failure_at, failed_checks, last_reason)"
                    " VALUES (%s, %s, 'open', 'urgent', 'local', 1, 1, 3, 'x')",
                    (key, key),
                )
            for priority, notice in (("urgent", "globex"), ("high", None)):
                conn.execute(
                    "INSERT INTO outbox (incident_id, channel, operation, payload, state,"
                    " next_attempt_at, created_at, notice)"
                    " VALUES (1, 'ticket', 'create', %s, 'done', 1, 1, %s)",
                    (json.dumps({"v": 2, "draft": {"priority": priority}}), notice),
                )
        assert [step.version for step in migrate.apply(conn)][:1] == [5]
        rows = conn.execute("SELECT id, ticket_priority FROM incidents ORDER BY id").fetchall()
    assert rows == [(1, "high"), (2, None)]


async def test_a_database_of_schema_5_gets_incident_kinds_and_takes_a_storm(
    pg_server: PostgresServer,
) -> None:
    """Migration 0006 on a database of the release before: its incidents are targets', and a
    storm opens with its members next to a target's open incident."""
    url = pg_server.new_database(migrated=False)
    with psycopg.connect(url, autocommit=True) as conn:
        with conn.transaction():
            apply_first_migrations(conn, 5)
            conn.execute(
                "INSERT INTO incidents (target, dedup_key, status, priority, backend,"
                " opened_at, first_failure_at, failed_checks, last_reason)"
                " VALUES ('web', 'k-1', 'open', 'urgent', 'local', 1, 1, 3, 'x')"
            )
        assert [step.version for step in migrate.apply(conn)][:1] == [6]
    store = PostgresStore(url, "east")
    await store.open()
    try:
        (web,) = await store.incidents()
        assert (web.target, web.kind) == ("web", "target")
        members = [StormMember(0, name, "acme", 2.0, 1.5, "timeout") for name in ("api", "db")]
        storm = {**incident_row(), "target": "the outage of many services", "kind": "storm"}
        opened = await store.open_storm(storm, lambda i: (f"k-{i}", []), members)
        assert opened is not None
        assert [m.target for m in await store.storm_members()] == ["api", "db"]
        assert [i.kind for i in await store.incidents(open_only=True)] == ["storm", "target"]
    finally:
        await store.close()


async def test_db_import_carries_storms_and_gives_the_impairment_alert_to_the_vantage(
    tmp_path: Path, pg_server: PostgresServer, write_config: Callable[..., Path]
) -> None:
    """A storm's members and its customers' tickets move with db import (the tickets command
    lists them alike from either store); the single agent's impairment alert becomes its
    vantage's, the target the agents of that vantage open and find it by."""
    state = tmp_path / "state"
    state.mkdir()
    store = SqliteStore(state)
    await store.open()
    try:
        members = [StormMember(0, "web", "acme", 2.0, 1.5, "timeout")]
        members.append(StormMember(0, "db", "beta", 2.0, 1.0, "refused"))
        fields = {**incident_row(), "target": "the outage of group rack-7", "kind": "storm"}
        storm = await store.open_storm(fields, lambda i: (f"storm-{i}", []), members)
        assert storm is not None
        create = CreateTicket(replace(DRAFT, dedup_key="storm-acme"), notice="acme")
        await store.tell_storm(storm.id, "acme", {"web": "down"}, [create], ["web"], 3.0, "s-a")
        await store.leave_storm(storm.id, ["db"], 4.0, {}, [], 4.0)
        alert = {**incident_row(), "target": "watchdesk:impaired", "kind": "agent"}
        await store.open_incident(alert, lambda i: ("watchdesk-impaired-east", []))
    finally:
        await store.close()
    url = pg_server.new_database(migrated=False)
    assert import_store(state, url, "east")["storm_members"] == 2

    sqlite, reader = SqliteDatabase(state), PostgresReader(url, "east")
    try:
        assert reader.storm_members(storm.id) == sqlite.storm_members(storm.id)
        assert reader.storm_members() == sqlite.storm_members()
        assert reader.notices() == sqlite.notices()
        assert reader.incident(storm.id) == sqlite.incident(storm.id)
        (moved,) = [i for i in reader.incidents() if i.kind == "agent"]
        assert (moved.target, moved.dedup_key) == (
            "watchdesk:impaired:east",
            "watchdesk-impaired-east",
        )
    finally:
        sqlite.close()
        reader.close()
    env = env_for(url)
    listed = [
        json.loads(run_cli("tickets", "--json", "-c", str(path), env=env).stdout)
        for path in (
            write_config(f'[agent]\nstate_dir = "{state}"\n' + MINIMAL, "sqlite.toml"),
            write_config(MINIMAL + CLUSTER, "cluster.toml"),
        )
    ]
    storms = [[row for row in rows if row["kind"] == "storm"] for rows in listed]
    assert storms[1] == storms[0]
    (row,) = storms[0]
    assert [(m["target"], m["left_at"]) for m in row["members"]] == [("db", 4.0), ("web", None)]
    assert [t["customer"] for t in row["customer_tickets"]] == ["acme"]


def test_an_agent_refuses_a_database_it_does_not_know(
    pg_server: PostgresServer, write_config: Callable[..., Path]
) -> None:
    config = str(write_config(MINIMAL + CLUSTER))
    empty = pg_server.new_database(migrated=False)
    result = run_cli("run", "-c", config, env=env_for(empty))
    assert result.returncode == 2
    assert "cluster: " in result.stderr
    assert "no watchdesk schema yet: run `watchdesk db migrate" in result.stderr

    newer = pg_server.new_database()
    with psycopg.connect(newer, autocommit=True) as conn:
        conn.execute("INSERT INTO schema_migrations (version, name) VALUES (99, 'future')")
    result = run_cli("run", "-c", config, env=env_for(newer))
    assert result.returncode == 2
    assert "migrated by a newer watchdesk (schema 99" in result.stderr
    assert run_cli("tickets", "-c", config, env=env_for(newer)).returncode == 2

    sqlite_only = str(write_config(MINIMAL, "sqlite.toml"))
    result = run_cli("db", "migrate", "-c", sqlite_only)
    assert result.returncode == 2
    assert result.stderr.startswith("cluster: `watchdesk db` works on the database of a [cluster]")


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://watchdesk:{PASSWORD}@127.0.0.1:{free_port()}/watchdesk",
        f"postgresql://watchdesk:{PASSWORD}@127.0.0.1/watchdesk?no_such_option=1",
    ],
    ids=["unreachable", "malformed"],
)
def test_the_database_url_is_never_shown(write_config: Callable[..., Path], url: str) -> None:
    config = str(write_config(MINIMAL + CLUSTER))
    commands = [["run"], ["db", "migrate"], ["tickets"]]
    if "no_such_option" in url:  # check-config reads the URL but does not connect
        commands.append(["check-config"])
    for command in commands:
        result = run_cli(*command, "-c", config, env=env_for(url))
        assert result.returncode in (1, 2), (command, result.stderr)
        assert "cluster" in result.stderr
        assert "Traceback" not in result.stderr
        assert PASSWORD not in result.stdout + result.stderr
        assert url not in result.stdout + result.stderr


async def test_a_sqlite_store_moves_into_postgresql_with_db_import(
    tmp_path: Path, pg_server: PostgresServer, write_config: Callable[..., Path]
) -> None:
    """The store an agent made through an outage (and a mute) is copied whole: the commands
    read the same from either place, ids continue after the copied ones, and a second import
    is refused unless forced."""
    state = tmp_path / "state"
    h = await Harness.create(state, CONFIG)
    await outage(h)
    await h.fail("web", 3)  # a second outage, still open, its create not yet delivered
    _, second = await h.incidents()
    await h.agent.store.pause_clocks(second.id, h.clock.now())  # its ticket waits on them
    await h.agent.store.set_mute("router", h.clock.now() + 3600, "fibre works", "ann", 1.0)
    await h.close()
    url = pg_server.new_database(migrated=False)  # the import migrates it first
    sqlite_config = write_config(f'[agent]\nstate_dir = "{state}"\n' + CONFIG, "sqlite.toml")
    cluster_config = write_config(
        f'[agent]\nstate_dir = "{tmp_path / "other"}"\n' + CONFIG + CLUSTER, "cluster.toml"
    )
    env = env_for(url)

    result = run_cli("db", "import", str(state), "-c", str(cluster_config), env=env)
    assert result.returncode == 0, result.stderr
    assert "2 incidents" in result.stdout
    assert "(vantage east)" in result.stdout

    listed = [
        run_cli("tickets", "--all", "--json", "-c", str(path), env=env).stdout
        for path in (sqlite_config, cluster_config)
    ]
    assert json.loads(listed[1]) == json.loads(listed[0])
    assert len(json.loads(listed[0])) == 2
    followed = [
        json.loads(run_cli("tickets", "--json", "-c", str(path), env=env).stdout)
        for path in (sqlite_config, cluster_config)
    ]
    assert followed[1] == followed[0]
    assert [row["sla_pauses"] for row in followed[0]] == [[{"start": h.clock.now(), "end": None}]]

    sqlite, reader = SqliteDatabase(state), PostgresReader(url, "east")
    try:
        assert reader.incidents() == sqlite.incidents()
        for incident in sqlite.incidents():
            assert reader.actions_of(incident.id) == sqlite.actions_of(incident.id)
        assert reader.transitions() == sqlite.transitions()
        assert reader.targets_seen() == sqlite.targets_seen()
        config = parse_config(CONFIG)
        until = h.clock.now()
        assert asdict(build_report(reader, config, until - 86400, until)) == asdict(
            build_report(sqlite, config, until - 86400, until)
        )
        last_id = sqlite.incidents()[0].id
    finally:
        sqlite.close()
        reader.close()
    before, after = SqliteStore(state), PostgresStore(url, "east")
    await before.open()
    await after.open()
    try:
        assert await after.load_states() == await before.load_states()
        assert await after.mutes() == await before.mutes()
        assert await after.last_seq() == await before.last_seq()
        assert await after.outbox_counts() == await before.outbox_counts()
        opened = await after.open_incident(
            {**incident_row(), "target": "new"}, lambda i: (f"k-{i}", [])
        )
        assert opened is not None
        assert opened.id == last_id + 1
    finally:
        await before.close()
        await after.close()

    again = run_cli("db", "import", str(state), "-c", str(cluster_config), env=env)
    assert again.returncode == 1
    assert "is not empty" in again.stderr
    assert "--force" in again.stderr
    forced = run_cli(
        "db",
        "import",
        str(state / "watchdesk.sqlite3"),
        "--force",
        "-c",
        str(cluster_config),
        env=env,
    )
    assert forced.returncode == 0, forced.stderr
    reader = PostgresReader(url, "east")
    assert [i.target for i in reader.incidents()] == ["web", "web"]  # "new" is gone
    reader.close()


def incident_row() -> dict[str, Any]:
    return {
        "status": "open",
        "priority": "urgent",
        "customer": None,
        "backend": "local",
        "opened_at": 1.0,
        "first_failure_at": 1.0,
        "failed_checks": 3,
        "last_reason": "x",
    }


def test_one_agent_on_postgresql_from_outage_to_recovery(
    pg_server: PostgresServer,
    write_config: Callable[..., Path],
    tmp_path: Path,
    agents: list[AgentProcess],
    stand_ins: tuple[FakeProcess, FakeProcess],
) -> None:
    freshdesk, pagerduty = stand_ins
    url = with_password(pg_server.new_database(migrated=False))
    service_port, port = free_port(), free_port()
    state = tmp_path / "state"
    config = write_config(
        api_agent_toml(port, state, service_port)
        + freshdesk_toml(freshdesk.url)
        + pagerduty_toml(pagerduty.url)
        + '\n[escalation]\npage_on_open = ["oncall"]\n'
        + CLUSTER
    )
    env = {**STAND_IN_ENV, **env_for(url)}
    refused = run_cli("run", "-c", str(config), env=env)
    assert refused.returncode == 2
    assert "watchdesk db migrate" in refused.stderr

    agent = AgentProcess(config, port, env=env, extra=("--migrate",))
    agents.append(agent)
    agent.wait_ready()
    ticket = freshdesk.wait_for(lambda s: len(s["tickets"]) == 1, "the ticket")["tickets"][0]
    assert ticket["subject"] == "[URGENT] api is down"
    pagerduty.wait_for(lambda s: len(s["alerts"]) == 1, "the page")
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", service_port))
        listener.listen(64)
        state_seen = freshdesk.wait_for(
            lambda s: s["tickets"][0]["status"] == 3, "the ticket to go pending"
        )
        pagerduty.wait_for(
            lambda s: next(iter(s["alerts"].values()))["status"] == "resolved", "the resolve"
        )
    assert agent.stop() == 0
    notes = state_seen["notes"][str(ticket["id"])]
    assert [n for n in notes if "has recovered" in n["body"]]
    assert len(freshdesk.state()["tickets"]) == 1
    assert [r["route"] for r in freshdesk.state()["requests"]].count("create") == 1
    assert len(pagerduty.state()["alerts"]) == 1

    listed = run_cli("tickets", "--all", "--json", "-c", str(config), env=env)
    (incident,) = json.loads(listed.stdout)
    assert (incident["status"], incident["ticket_id"]) == ("resolved", str(ticket["id"]))
    assert not (state / "watchdesk.sqlite3").exists()  # the store really was PostgreSQL
    log = agent.log()
    assert f"applied {len(migrate.migrations())} migration(s)" in log
    assert PASSWORD not in log
    assert PASSWORD not in listed.stdout
