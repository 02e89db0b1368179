"""The SQLite schema, its version and the migrations from older versions; the SQL that writes
a target's state row (newer rows only) and its transitions."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from typing import Any

from monitor.errors import StoreError
from monitor.state import TargetState, Transition
from monitor.store.records import INCIDENT_COLUMNS

SCHEMA_VERSION = 10

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS target_state (
    target TEXT PRIMARY KEY,
    identity TEXT NOT NULL,
    status TEXT NOT NULL,
    consecutive_failures INTEGER NOT NULL,
    consecutive_successes INTEGER NOT NULL,
    first_failure_at REAL,
    since REAL,
    last_checked_at REAL,
    last_ok INTEGER,
    last_reason TEXT NOT NULL,
    last_duration REAL NOT NULL,
    seq INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS transitions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    target TEXT NOT NULL,
    previous TEXT NOT NULL,
    current TEXT NOT NULL,
    at REAL NOT NULL,
    first_failure_at REAL,
    consecutive_failures INTEGER NOT NULL,
    reason TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS transitions_by_target ON transitions (target, at);
CREATE TABLE IF NOT EXISTS incidents (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    target TEXT NOT NULL,
    dedup_key TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL,
    priority TEXT NOT NULL,
    customer TEXT,
    backend TEXT NOT NULL,
    opened_at REAL NOT NULL,
    first_failure_at REAL NOT NULL,
    resolved_at REAL,
    failed_checks INTEGER NOT NULL,
    last_reason TEXT NOT NULL,
    flapping INTEGER NOT NULL DEFAULT 0,
    affected TEXT NOT NULL DEFAULT '[]',
    ticket_id TEXT,
    ticket_url TEXT,
    worked_at REAL,
    escalated_at REAL,
    last_update_at REAL,
    escalation_level INTEGER NOT NULL DEFAULT 0,
    tier TEXT NOT NULL DEFAULT 'L1',
    response_target REAL,
    resolution_target REAL,
    sla_clock TEXT,
    ticket_state TEXT NOT NULL DEFAULT 'open',
    pending_since REAL,
    reopened_at REAL,
    reopens INTEGER NOT NULL DEFAULT 0,
    reopen_worked_at REAL,
    closed_at REAL,
    ticket_priority TEXT,
    kind TEXT NOT NULL DEFAULT 'target'
);
CREATE UNIQUE INDEX IF NOT EXISTS one_open_incident_per_target
    ON incidents (target) WHERE status = 'open';
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    incident_id INTEGER NOT NULL REFERENCES incidents(id),
    channel TEXT NOT NULL,
    operation TEXT NOT NULL,
    payload TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    last_attempt_at REAL,
    last_error TEXT,
    created_at REAL NOT NULL,
    done_at REAL,
    sent_at REAL,
    notice TEXT
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (state, next_attempt_at);
CREATE TABLE IF NOT EXISTS mutes (
    target TEXT PRIMARY KEY,
    until REAL NOT NULL,
    reason TEXT NOT NULL,
    muted_by TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS customer_notices (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    incident_id INTEGER NOT NULL REFERENCES incidents(id),
    customer TEXT NOT NULL,
    dedup_key TEXT NOT NULL UNIQUE,
    via_incident INTEGER REFERENCES incidents(id),
    dependents TEXT NOT NULL DEFAULT '[]',
    status TEXT NOT NULL,
    opened_at REAL NOT NULL,
    closed_at REAL,
    ticket_id TEXT,
    ticket_url TEXT,
    UNIQUE (incident_id, customer)
);
CREATE TABLE IF NOT EXISTS reports_known (
    report TEXT PRIMARY KEY,
    since REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS reports_sent (
    report TEXT NOT NULL,
    period_start REAL NOT NULL,
    period_end REAL NOT NULL,
    scheduled_at REAL NOT NULL,
    state TEXT NOT NULL,
    claimed_at REAL NOT NULL,
    sent_at REAL,
    recipients TEXT NOT NULL DEFAULT '[]',
    PRIMARY KEY (report, period_start, period_end)
);
CREATE TABLE IF NOT EXISTS sla_pauses (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    incident_id INTEGER NOT NULL REFERENCES incidents(id),
    started_at REAL NOT NULL,
    ended_at REAL
);
CREATE INDEX IF NOT EXISTS sla_pauses_by_incident ON sla_pauses (incident_id);
CREATE TABLE IF NOT EXISTS storm_members (
    incident_id INTEGER NOT NULL REFERENCES incidents(id),
    target TEXT NOT NULL,
    customer TEXT NOT NULL,
    joined_at REAL NOT NULL,
    first_failure_at REAL NOT NULL,
    reason TEXT NOT NULL,
    left_at REAL,
    told TEXT NOT NULL DEFAULT 'none',
    PRIMARY KEY (incident_id, target)
);
CREATE TABLE IF NOT EXISTS targets_seen (
    target TEXT PRIMARY KEY,
    first_seen REAL NOT NULL,
    last_seen REAL NOT NULL
);
"""


# (target, probe identity, state, seq): seq orders the writes of one agent; an older row never
# overwrites a newer one.
StateRow = tuple[str, str, TargetState, int]

STATE_COLUMNS = (
    "target, identity, status, consecutive_failures, consecutive_successes, first_failure_at,"
    " since, last_checked_at, last_ok, last_reason, last_duration, seq"
)
UPSERT_STATE = (
    f"INSERT INTO target_state ({STATE_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)"
    " ON CONFLICT(target) DO UPDATE SET identity = excluded.identity,"
    " status = excluded.status, consecutive_failures = excluded.consecutive_failures,"
    " consecutive_successes = excluded.consecutive_successes,"
    " first_failure_at = excluded.first_failure_at, since = excluded.since,"
    " last_checked_at = excluded.last_checked_at, last_ok = excluded.last_ok,"
    " last_reason = excluded.last_reason, last_duration = excluded.last_duration,"
    " seq = excluded.seq WHERE excluded.seq > target_state.seq"
)
INSERT_TRANSITION = (
    "INSERT INTO transitions (target, previous, current, at, first_failure_at,"
    " consecutive_failures, reason) VALUES (?,?,?,?,?,?,?)"
)


def state_values(row: StateRow) -> tuple[object, ...]:
    name, identity, state, seq = row
    return (
        name,
        identity,
        state.status,
        state.consecutive_failures,
        state.consecutive_successes,
        state.first_failure_at,
        state.since,
        state.last_checked_at,
        None if state.last_ok is None else int(state.last_ok),
        state.last_reason,
        state.last_duration,
        seq,
    )


def transition_values(name: str, t: Transition) -> tuple[object, ...]:
    return (name, t.previous, t.current, t.at, t.first_failure_at, t.consecutive_failures, t.reason)


def _add_column(db: sqlite3.Connection, table: str, column: str, declaration: str) -> None:
    """A migration step that a table made by today's schema (CREATE IF NOT EXISTS) has already
    taken is skipped."""
    if column not in {row[1] for row in db.execute(f"PRAGMA table_info({table})")}:
        db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")


def _migrate_ticket_follow_up(db: sqlite3.Connection) -> None:
    """Version 8: the ticket's life after recovery (waiting on the customer, reopened, closed)
    and the SLA clocks' pauses (their table is in SCHEMA). A resolved incident whose pending or
    resolved status was delivered is followed from that delivery, as if this version had
    delivered it: its ticket is closed after ``auto_close_after`` without a reply, or reopened
    by one."""
    for column, declaration in (
        ("ticket_state", "TEXT NOT NULL DEFAULT 'open'"),
        ("pending_since", "REAL"),
        ("reopened_at", "REAL"),
        ("reopens", "INTEGER NOT NULL DEFAULT 0"),
        ("reopen_worked_at", "REAL"),
        ("closed_at", "REAL"),
    ):
        _add_column(db, "incidents", column, declaration)
    db.execute(
        "UPDATE incidents SET (ticket_state, pending_since) = (SELECT"
        " json_extract(o.payload, '$.status'), o.done_at FROM outbox o"
        " WHERE o.incident_id = incidents.id AND o.channel = 'ticket' AND o.notice IS NULL"
        " AND o.operation = 'status' AND o.state = 'done' ORDER BY o.id DESC LIMIT 1)"
        " WHERE status = 'resolved' AND ticket_state = 'open' AND EXISTS (SELECT 1 FROM outbox o"
        " WHERE o.incident_id = incidents.id AND o.channel = 'ticket' AND o.notice IS NULL"
        " AND o.operation = 'status' AND o.state = 'done')"
    )


def _migrate_ticket_priority(db: sqlite3.Connection) -> None:
    """Version 9: the priority the helpdesk last showed on the incident's own ticket (a change
    from it is a person's, ``monitor.policy.reprioritising``). Rows from before: the priority
    the ticket was created with, from its create action while the outbox keeps it; else NULL
    (the first reading is taken as it stands, nothing guessed)."""
    _add_column(db, "incidents", "ticket_priority", "TEXT")
    db.execute(
        "UPDATE incidents SET ticket_priority = (SELECT json_extract(o.payload,"
        " '$.draft.priority') FROM outbox o WHERE o.incident_id = incidents.id"
        " AND o.channel = 'ticket' AND o.operation = 'create' AND o.notice IS NULL"
        " ORDER BY o.id LIMIT 1) WHERE ticket_priority IS NULL"
    )


def stored_version(db: sqlite3.Connection) -> int | None:
    """The schema version of the file: ``PRAGMA user_version`` (from version 3 on), else the
    ``meta`` row versions 1 and 2 kept; None for a new file."""
    version = int(db.execute("PRAGMA user_version").fetchone()[0])
    if version:
        return version
    row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    return int(row[0]) if row is not None else None


def migrate(db: sqlite3.Connection) -> None:
    """Bring a store written by an older watchdesk up to SCHEMA_VERSION, in one transaction,
    one step per version; a store from a newer watchdesk is refused, untouched."""
    version = stored_version(db)
    if version is None:  # a new file: the schema above is the current one
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        return
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"the store was written by a newer watchdesk (schema {version}, this one knows "
            f"{SCHEMA_VERSION}); upgrade watchdesk or point agent.state_dir elsewhere"
        )
    if version == SCHEMA_VERSION:
        return
    db.execute("BEGIN IMMEDIATE")
    if version < 2:
        _add_column(db, "target_state", "seq", "INTEGER NOT NULL DEFAULT 0")
        _add_column(db, "outbox", "sent_at", "REAL")
        # Version 1 kept "maybe sent" in last_error only; carry it over as the sticky mark.
        db.execute(
            "UPDATE outbox SET sent_at = last_attempt_at WHERE state = 'pending'"
            " AND attempts > 0 AND (last_error LIKE 'in flight%'"
            " OR last_error LIKE 'outcome unknown%')"
        )
    if version < 4:
        _add_column(db, "incidents", "escalation_level", "INTEGER NOT NULL DEFAULT 0")
        db.execute("UPDATE incidents SET escalation_level = 1 WHERE escalated_at IS NOT NULL")
    if version < 6:
        # Customer notices of a shared outage (the table is made by SCHEMA above); an outbox
        # action names the customer whose notice ticket it is for (NULL: the incident's own).
        _add_column(db, "outbox", "notice", "TEXT")
    if version < 7:
        # The tier an incident has reached and the SLA targets in force when it opened. Rows
        # from before: the tier by the default naming (L1, then one more per level fired);
        # no targets (reports judge them against the config of the day).
        _add_column(db, "incidents", "tier", "TEXT NOT NULL DEFAULT 'L1'")
        _add_column(db, "incidents", "response_target", "REAL")
        _add_column(db, "incidents", "resolution_target", "REAL")
        _add_column(db, "incidents", "sla_clock", "TEXT")
        db.execute(
            "UPDATE incidents SET tier = 'L' || (escalation_level + 1) WHERE escalation_level > 0"
        )
    if version < 8:
        _migrate_ticket_follow_up(db)
    if version < 9:
        _migrate_ticket_priority(db)
    if version < 10:
        # What an incident stands for: a target, a storm of targets (their members in
        # storm_members, made by SCHEMA above), or the agent itself (monitoring impaired).
        _add_column(db, "incidents", "kind", "TEXT NOT NULL DEFAULT 'target'")
    # Version 3: the version moves to PRAGMA user_version; actions carry their own version
    # ("v" in the payload, read by monitor.actions), so queued rows need no rewrite.
    db.execute("DELETE FROM meta WHERE key = 'schema_version'")
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    db.execute("COMMIT")


def incident_holds(db: sqlite3.Connection, incident_id: int, expect: Mapping[str, Any]) -> bool:
    """Whether the incident's columns hold the values ``expect`` names: the compare of
    ``update_incident``'s compare-and-set."""
    if set(expect) - set(INCIDENT_COLUMNS):
        raise StoreError(f"not columns a guard may compare: {sorted(expect)}")
    query = "SELECT 1 FROM incidents WHERE id = ?" + "".join(f" AND {c} IS ?" for c in expect)
    return db.execute(query, (incident_id, *expect.values())).fetchone() is not None
