"""``watchdesk db import``: an agent's SQLite store copied into the cluster's database, so a
single agent becomes a cluster without forgetting an open incident, a queued page, a mute or
the history its uptime reports count.

Safe by construction:

- The SQLite file is only read: it is copied into memory first (SQLite's backup API, a
  consistent snapshot even if an agent still writes it) and an older file is migrated there,
  in the copy, to this watchdesk's schema.
- Everything lands in ONE transaction: an import that fails leaves the database as it was.
- A database that already holds data is refused (two stores' incident numbers would collide);
  ``force`` replaces what it holds instead, never merges.
- Ids are kept (a dedup key names its incident's id, and helpdesks know it), and the id
  sequences continue after the highest one.

State rows and transitions become the given vantage's: the agent that kept them probed from
there; so does its impairment alert (an incident of kind ``agent``), whose target names the
vantage on a cluster's database (``monitor.store.records.agent_target``).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import psycopg

from monitor.errors import StoreError
from monitor.store.postgres import migrate
from monitor.store.postgres.connect import connect, describe
from monitor.store.postgres.sql import STATE_FIELDS
from monitor.store.records import (
    INCIDENT_COLUMNS,
    NOTICE_COLUMNS,
    OUTBOX_COLUMNS,
    STORM_MEMBER_COLUMNS,
    agent_target,
)
from monitor.store.reports import REPORT_COLUMNS
from monitor.store.schema import SCHEMA
from monitor.store.schema import migrate as migrate_sqlite
from monitor.store.sqlite import FILE_NAME

STATE_COLUMNS = ("target", *STATE_FIELDS)
TRANSITION_COLUMNS = (
    "id",
    "target",
    "previous",
    "current",
    "at",
    "first_failure_at",
    "consecutive_failures",
    "reason",
)
# Table -> columns, in the order they are filled (an outbox row needs its incident).
COPIED: dict[str, tuple[str, ...]] = {
    "incidents": INCIDENT_COLUMNS,
    "sla_pauses": ("id", "incident_id", "started_at", "ended_at"),
    "customer_notices": NOTICE_COLUMNS,
    "storm_members": STORM_MEMBER_COLUMNS,
    "outbox": OUTBOX_COLUMNS,
    "transitions": TRANSITION_COLUMNS,
    "target_state": STATE_COLUMNS,
    "mutes": ("target", "until", "reason", "muted_by", "at"),
    "targets_seen": ("target", "first_seen", "last_seen"),
    "reports_known": ("report", "since"),
    "reports_sent": tuple(REPORT_COLUMNS.split(", ")),
}
PER_VANTAGE = frozenset({"transitions", "target_state"})
WITH_IDS = ("incidents", "sla_pauses", "customer_notices", "outbox", "transitions")


def source_copy(path: Path) -> sqlite3.Connection:
    """An in-memory copy of the SQLite store at ``path`` (its state_dir or the file itself),
    migrated to this watchdesk's schema; the file is left as it was."""
    file = path / FILE_NAME if path.is_dir() else path
    if not file.is_file():
        raise StoreError(f"no SQLite store at {path} (expected a state_dir or its {FILE_NAME})")
    memory = sqlite3.connect(":memory:", isolation_level=None)
    try:
        disk = sqlite3.connect(file, isolation_level=None)
        try:
            disk.backup(memory)
        finally:
            disk.close()
        tables = {row[0] for row in memory.execute("SELECT name FROM sqlite_master")}
        if not {"incidents", "outbox", "target_state"} <= tables:
            raise StoreError(f"{file} is not a watchdesk store")
        memory.executescript(SCHEMA)
        migrate_sqlite(memory)
    except sqlite3.Error as exc:
        memory.close()
        raise StoreError(f"cannot read the SQLite store {file}: {exc}") from exc
    return memory


def import_store(path: Path, url: str, vantage: str, force: bool = False) -> dict[str, int]:
    """Copy the SQLite store at ``path`` into the database (migrated first); rows per table."""
    source = source_copy(path)
    try:
        with connect(url, "watchdesk-import") as conn:
            migrate.apply(conn)
            try:
                with conn.transaction():
                    _make_room(conn, force, describe(url))
                    counts = {table: _copy(source, conn, table, vantage) for table in COPIED}
                    # The single agent's impairment alert becomes its vantage's.
                    conn.execute(
                        "UPDATE incidents SET target = %s WHERE kind = 'agent' AND target = %s",
                        (agent_target(vantage), agent_target()),
                    )
                    for table in WITH_IDS:
                        conn.execute(
                            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                            f" GREATEST(MAX(id), 1), MAX(id) IS NOT NULL) FROM {table}"
                        )
            except psycopg.Error as exc:
                raise StoreError(f"the import failed, nothing was changed: {exc}") from exc
    finally:
        source.close()
    return counts


def _make_room(conn: psycopg.Connection[Any], force: bool, where: str) -> None:
    held = {
        table: int(row[0])
        for table in COPIED
        if (row := conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()) and row[0]
    }
    if not held:
        return
    if not force:
        what = ", ".join(f"{count} rows of {table}" for table, count in held.items())
        raise StoreError(
            f"the {where} is not empty ({what}): refusing to import over it; --force replaces "
            "everything it holds with the SQLite store"
        )
    conn.execute(f"TRUNCATE {', '.join(COPIED)} RESTART IDENTITY")


def _copy(
    source: sqlite3.Connection, conn: psycopg.Connection[Any], table: str, vantage: str
) -> int:
    columns = COPIED[table]
    rows = source.execute(f"SELECT {', '.join(columns)} FROM {table} ORDER BY 1")
    names = (*columns, "vantage") if table in PER_VANTAGE else columns
    count = 0
    with (
        conn.cursor() as cursor,
        cursor.copy(f"COPY {table} ({', '.join(names)}) FROM STDIN") as copy,
    ):
        for row in rows:
            values = list(row)
            if table == "target_state" and values[8] is not None:
                values[8] = bool(values[8])  # last_ok: 0/1 in SQLite
            copy.write_row((*values, vantage) if table in PER_VANTAGE else values)
            count += 1
    return count
