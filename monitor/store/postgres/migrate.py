"""The PostgreSQL schema's versions: ``migrations/NNNN_name.sql``, applied in order, each once.

``schema_migrations`` lists what a database has. ``apply`` runs every missing file in ONE
transaction that first takes ``pg_advisory_xact_lock``: agents started together with
``--migrate`` (or ``watchdesk db migrate`` run twice) queue on the lock, the first applies,
the others then find nothing left to do. A transaction-scoped lock is released by COMMIT or by
a dropped connection, never left behind. A failing file rolls back every file of the run.

A new table or column is one new file here (the SQLite store has its own steps in
``monitor.store.schema``; the two are kept in step by hand, and the store parity tests tell).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import psycopg

from monitor.errors import StoreError

# pg_advisory_xact_lock key of schema changes: any constant, the same in every watchdesk.
LOCK_KEY = 0x77_64_6D_69_67_72  # "wdmigr"
CREATE_LEDGER = (
    "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,"
    " name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
)
LEDGER_EXISTS = "SELECT to_regclass('schema_migrations') IS NOT NULL"


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


@cache
def migrations() -> tuple[Migration, ...]:
    """Every migration this watchdesk ships, by version; numbered 1, 2, ... with no gap."""
    found = []
    for entry in (resources.files(__package__) / "migrations").iterdir():
        match = re.fullmatch(r"(\d{4})_(\w+)\.sql", entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    if [m.version for m in found] != list(range(1, len(found) + 1)):
        raise RuntimeError(f"migrations are not numbered 1..N: {[m.version for m in found]}")
    return tuple(found)


def latest() -> int:
    return migrations()[-1].version


def problem(applied: list[int]) -> str | None:
    """Why an agent must not run on a database with ``applied`` versions (None: it may)."""
    current = max(applied, default=0)
    if current > latest():
        return (
            f"the database was migrated by a newer watchdesk (schema {current}, this one knows "
            f"{latest()}); upgrade watchdesk"
        )
    missing = sorted(set(range(1, latest() + 1)) - set(applied))
    if not missing:
        return None
    if not applied:
        what = "the database has no watchdesk schema yet"
    else:
        what = f"the database is at schema {current}, this watchdesk needs {latest()}"
    return (
        f"{what}: run `watchdesk db migrate -c CONFIG` (or start the agent with --migrate); "
        "agents of the same version may all run it, it applies each step once"
    )


def applied_versions(conn: psycopg.Connection[Any]) -> list[int]:
    exists = conn.execute(LEDGER_EXISTS).fetchone()
    if not exists or not exists[0]:
        return []
    return [int(row[0]) for row in conn.execute("SELECT version FROM schema_migrations")]


def apply(conn: psycopg.Connection[Any]) -> list[Migration]:
    """Apply what the database lacks, in one transaction under the advisory lock; the
    migrations applied (none when another agent got there first)."""
    try:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
            conn.execute(CREATE_LEDGER)
            applied = applied_versions(conn)
            if max(applied, default=0) > latest():
                raise StoreError(problem(applied) or "")
            pending = [m for m in migrations() if m.version not in applied]
            for migration in pending:
                conn.execute(migration.sql)
                conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                    (migration.version, migration.name),
                )
    except psycopg.Error as exc:
        raise StoreError(f"migrating the database failed, nothing was changed: {exc}") from exc
    return pending


def check(conn: psycopg.Connection[Any]) -> None:
    """StoreError unless the database has exactly this watchdesk's schema."""
    try:
        applied = applied_versions(conn)
    except psycopg.Error as exc:
        raise StoreError(f"cannot read the database's schema version: {exc}") from exc
    trouble = problem(applied)
    if trouble:
        raise StoreError(trouble)


def apply_to(url: str) -> list[Migration]:
    """``apply`` on the database at ``url`` (``watchdesk db migrate``, ``run --migrate``)."""
    from monitor.store.postgres.connect import connect

    with connect(url, "watchdesk-migrate") as conn:
        return apply(conn)
