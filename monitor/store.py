"""The agent's memory: one SQLite file (WAL) under ``agent.state_dir``.

It holds each target's state and counters, so that a target with 2 of 3 failures before a
restart needs only 1 more after it, and every state transition with its time, which the uptime
report reads. Writes come in batches from one writer thread, never from the probe path: SQLite
contention is what gave Uptime Kuma its false DOWNs.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from monitor.errors import StoreError
from monitor.state import Status, TargetState, Transition

SCHEMA_VERSION = 1

_SCHEMA = """
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
    last_duration REAL NOT NULL
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
CREATE TABLE IF NOT EXISTS targets_seen (
    target TEXT PRIMARY KEY,
    first_seen REAL NOT NULL,
    last_seen REAL NOT NULL
);
"""


@dataclass(frozen=True)
class StoredTransition:
    target: str
    previous: Status
    current: Status
    at: float
    first_failure_at: float | None
    consecutive_failures: int
    reason: str


class Store:
    """Thread-safe access to the SQLite file; every method is one short transaction."""

    def __init__(self, state_dir: str | Path) -> None:
        directory = Path(state_dir)
        try:
            directory.mkdir(parents=True, exist_ok=True)
            self.path = directory / "watchdesk.sqlite3"
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA busy_timeout=5000")
            self._db.executescript(_SCHEMA)
            self._db.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)",
                (str(SCHEMA_VERSION),),
            )
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the store in {directory}: {exc}") from exc
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                yield self._db
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise StoreError(f"store write failed: {exc}") from exc
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    def writable(self) -> bool:
        """True when a write goes through: what /readyz reports."""
        try:
            with self._transaction() as db:
                db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('ready_check', 'ok')")
            return True
        except StoreError:
            return False

    def load_states(self) -> dict[str, tuple[str, TargetState]]:
        """Every stored target state with the probe identity it was recorded under."""
        with self._lock:
            rows = self._db.execute(
                "SELECT target, identity, status, consecutive_failures, consecutive_successes,"
                " first_failure_at, since, last_checked_at, last_ok, last_reason, last_duration"
                " FROM target_state"
            ).fetchall()
        return {
            row[0]: (
                row[1],
                TargetState(
                    status=row[2],
                    consecutive_failures=row[3],
                    consecutive_successes=row[4],
                    first_failure_at=row[5],
                    since=row[6],
                    last_checked_at=row[7],
                    last_ok=None if row[8] is None else bool(row[8]),
                    last_reason=row[9],
                    last_duration=row[10],
                ),
            )
            for row in rows
        }

    def save(
        self,
        states: Iterable[tuple[str, str, TargetState]],
        transitions: Iterable[tuple[str, Transition]] = (),
    ) -> None:
        """Write a batch of (target, identity, state) rows and transitions in one transaction."""
        state_rows = [
            (
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
            )
            for name, identity, state in states
        ]
        transition_rows = [
            (
                name,
                t.previous,
                t.current,
                t.at,
                t.first_failure_at,
                t.consecutive_failures,
                t.reason,
            )
            for name, t in transitions
        ]
        if not state_rows and not transition_rows:
            return
        with self._transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO target_state VALUES (?,?,?,?,?,?,?,?,?,?,?)", state_rows
            )
            db.executemany(
                "INSERT INTO transitions (target, previous, current, at, first_failure_at,"
                " consecutive_failures, reason) VALUES (?,?,?,?,?,?,?)",
                transition_rows,
            )

    def mark_seen(self, targets: Iterable[str], at: float) -> None:
        """Remember when each target was first and last configured (reports need the span)."""
        rows = [(name, at, at) for name in targets]
        with self._transaction() as db:
            db.executemany(
                "INSERT INTO targets_seen (target, first_seen, last_seen) VALUES (?,?,?)"
                " ON CONFLICT(target) DO UPDATE SET last_seen = excluded.last_seen",
                rows,
            )

    def forget(self, targets: Iterable[str]) -> None:
        """Drop the live state of removed targets; their transitions stay for reports."""
        with self._transaction() as db:
            db.executemany("DELETE FROM target_state WHERE target = ?", [(t,) for t in targets])

    def transitions(self, target: str | None = None, since: float = 0.0) -> list[StoredTransition]:
        query = (
            "SELECT target, previous, current, at, first_failure_at, consecutive_failures, reason"
            " FROM transitions WHERE at >= ?"
        )
        params: tuple[object, ...] = (since,)
        if target is not None:
            query += " AND target = ?"
            params = (since, target)
        with self._lock:
            rows = self._db.execute(query + " ORDER BY at, id", params).fetchall()
        return [StoredTransition(*row) for row in rows]
