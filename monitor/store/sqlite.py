"""The agent's memory in SQLite: one file (WAL) under ``agent.state_dir``.

``SqliteDatabase`` is the synchronous access: the command-line commands (report, tickets,
test-notify) use it directly; the agent reaches it only through ``monitor.store.aio.SqliteStore``,
which runs every call in one writer thread, in the order the calls were made (so no SQLite call
runs on the event loop, and a write never overtakes one made before it).

It holds each target's state and counters, so that a target with 2 of 3 failures before a
restart needs only 1 more after it, and every state transition with its time, which the uptime
report reads; the incidents and the outbox of ticket and page actions.

The invariant a restart relies on: **a transition and what it causes are one fact.** A target's
change of state (its ``target_state`` row and its ``transitions`` row), the incident it opens or
resolves, and the outbox actions that follow are written in one transaction. So an open incident
always has a stored ``down`` state, a resolved one a stored state that left ``down`` no earlier
than it opened, and a stored ``down`` with no open incident is one that opened none (maintenance,
a parent down). The batched flush (about once a second, from the writer thread) carries only
what no start-up decision reads on its own: the length of a streak and the last probe result.
It never overwrites a newer row: every row carries a sequence number (``seq``) and a write with
an older one is ignored. A probe result that turns a streak around (a success after failures,
a failure after successes) is written through at once, so a stored streak may be shorter than
the real one after a crash, never of the wrong kind: a restart may need one more probe to
decide, it never decides on a result that was already overturned.

In the outbox, ``sent_at`` is "a create (or trigger) may be out there since": set before the
request leaves, cleared only by an answer (delivered, or a lookup by the dedup key that says
found or not found). Errors in between leave it set, so a lost answer is never forgotten.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from monitor.actions import Action, to_json
from monitor.errors import StoreError
from monitor.faults import crash_point
from monitor.state import TargetState, Transition
from monitor.store.notices import NoticeQueries
from monitor.store.outbox import OutboxQueries
from monitor.store.pauses import PauseQueries
from monitor.store.records import (
    FOLLOWED_TICKET_STATES,
    INCIDENT_COLUMNS,
    Incident,
    StoredTransition,
)
from monitor.store.reports import ReportQueries
from monitor.store.schema import (
    INSERT_TRANSITION,
    SCHEMA,
    UPSERT_STATE,
    StateRow,
    incident_holds,
    migrate,
    state_values,
    transition_values,
)
from monitor.store.storms import StormQueries, addressed

FILE_NAME = "watchdesk.sqlite3"


class SqliteDatabase(OutboxQueries, NoticeQueries, ReportQueries, PauseQueries, StormQueries):
    """Thread-safe access to the SQLite file; every method is one short transaction.

    ``check_same_thread=True`` makes the connection refuse any other thread than the one that
    opened it (``SqliteStore`` opens it in its writer thread).
    """

    def __init__(self, state_dir: str | Path, check_same_thread: bool = False) -> None:
        directory = Path(state_dir)
        try:
            directory.mkdir(parents=True, exist_ok=True)
            self.path = directory / FILE_NAME
            self._db = sqlite3.connect(
                self.path, check_same_thread=check_same_thread, isolation_level=None
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA busy_timeout=5000")
            self._db.executescript(SCHEMA)
            migrate(self._db)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the store in {directory}: {exc}") from exc
        self._lock = threading.Lock()

    @classmethod
    def existing(cls, state_dir: str | Path) -> SqliteDatabase:
        """The store an agent already made in ``state_dir``; StoreError, creating nothing, when
        there is none (a mistyped ``agent.state_dir`` must not read as "all is well")."""
        path = Path(state_dir) / FILE_NAME
        if not path.is_file():
            raise StoreError(
                f"no store in {state_dir}: no agent has run with this agent.state_dir "
                f"(is it the directory the agent uses?)"
            )
        return cls(state_dir)

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

    def last_seq(self) -> int:
        """The highest write sequence stored: a restarted agent numbers its writes after it."""
        with self._lock:
            row = self._db.execute("SELECT MAX(seq) FROM target_state").fetchone()
        return int(row[0] or 0)

    def last_resolved(self) -> dict[str, float]:
        """target -> when its latest resolved incident ended."""
        with self._lock:
            rows = self._db.execute(
                "SELECT target, MAX(resolved_at) FROM incidents WHERE status = 'resolved'"
                " GROUP BY target"
            ).fetchall()
        return {row[0]: row[1] for row in rows if row[1] is not None}

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
        states: Iterable[StateRow],
        transitions: Iterable[tuple[str, Transition]] = (),
    ) -> None:
        """Write a batch of state rows (each kept only if newer than the stored one) and
        transitions in one transaction: the periodic flush."""
        state_rows = [state_values(row) for row in states]
        transition_rows = [transition_values(name, t) for name, t in transitions]
        if not state_rows and not transition_rows:
            return
        with self._transaction() as db:
            db.executemany(UPSERT_STATE, state_rows)
            db.executemany(INSERT_TRANSITION, transition_rows)

    def record(self, state: StateRow, transition: Transition | None = None) -> None:
        """Write one target's state (and its transition) now: a streak turned around, or a
        transition that opens or resolves nothing."""
        with self._transaction() as db:
            self._write_state(db, state, transition)

    @staticmethod
    def _write_state(
        db: sqlite3.Connection, state: StateRow | None, transition: Transition | None
    ) -> None:
        if state is not None:
            db.execute(UPSERT_STATE, state_values(state))
            if transition is not None:
                db.execute(INSERT_TRANSITION, transition_values(state[0], transition))

    def set_mute(self, target: str, until: float | None, reason: str, by: str, at: float) -> None:
        """Mute ``target`` until ``until`` (None: unmute)."""
        with self._transaction() as db:
            if until is None:
                db.execute("DELETE FROM mutes WHERE target = ?", (target,))
            else:
                db.execute(
                    "INSERT OR REPLACE INTO mutes (target, until, reason, muted_by, at)"
                    " VALUES (?,?,?,?,?)",
                    (target, until, reason, by, at),
                )

    def mutes(self) -> dict[str, tuple[float, str, str]]:
        """target -> (until, reason, by)."""
        with self._lock:
            rows = self._db.execute("SELECT target, until, reason, muted_by FROM mutes").fetchall()
        return {row[0]: (row[1], row[2], row[3]) for row in rows}

    def mark_seen(self, targets: Iterable[str], at: float) -> None:
        """Remember when each target was first and last configured (reports need the span)."""
        rows = [(name, at, at) for name in targets]
        with self._transaction() as db:
            db.executemany(
                "INSERT INTO targets_seen (target, first_seen, last_seen) VALUES (?,?,?)"
                " ON CONFLICT(target) DO UPDATE SET last_seen = excluded.last_seen",
                rows,
            )

    def forget(self, targets: Iterable[str], at: float) -> None:
        """Drop the live state of removed targets; their transitions stay for reports, which
        count them until ``at``."""
        names = [(t,) for t in targets]
        with self._transaction() as db:
            db.executemany("DELETE FROM target_state WHERE target = ?", names)
            db.executemany(
                "UPDATE targets_seen SET last_seen = ? WHERE target = ?",
                [(at, n) for (n,) in names],
            )

    def targets_seen(self) -> dict[str, tuple[float, float]]:
        """target -> (first configured, last configured) times."""
        with self._lock:
            rows = self._db.execute(
                "SELECT target, first_seen, last_seen FROM targets_seen"
            ).fetchall()
        return {row[0]: (row[1], row[2]) for row in rows}

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

    # ---- incidents and outbox ------------------------------------------------------------
    #
    # An incident and the actions it needs are written in one transaction, before anything is
    # tried: if the agent dies right after, the outbox still holds the work.

    def open_incident(
        self,
        incident: dict[str, Any],
        build: Callable[[int], tuple[str, list[Action]]],
        state: StateRow | None = None,
        transition: Transition | None = None,
    ) -> Incident | None:
        """Insert an incident and its first actions in one transaction, with the target state
        (and the transition) that opened it.

        ``build(incident_id)`` returns the dedup key and the actions, which need the id.
        Returns None when the target already has an open incident (one outage, one incident);
        the state and transition are written all the same.
        """
        with self._transaction() as db:
            self._write_state(db, state, transition)
            crash_point("after_state_write")
            return self._insert_incident(db, incident, build)

    def _insert_incident(
        self,
        db: sqlite3.Connection,
        incident: dict[str, Any],
        build: Callable[[int], tuple[str, list[Action]]],
    ) -> Incident | None:
        """The insert of ``open_incident`` (and of ``open_storm``), inside its transaction."""
        existing = db.execute(
            "SELECT 1 FROM incidents WHERE target = ? AND status = 'open'", (incident["target"],)
        ).fetchone()
        if existing:
            return None
        columns = [c for c in INCIDENT_COLUMNS if c in incident and c != "id"]
        placeholder = f"new-{incident['target']}-{incident['opened_at']}"
        cursor = db.execute(
            f"INSERT INTO incidents ({', '.join(columns)}, dedup_key) VALUES"
            f" ({', '.join('?' for _ in columns)}, ?)",
            (*[incident[c] for c in columns], placeholder),
        )
        incident_id = int(cursor.lastrowid or 0)
        key, actions = build(incident_id)
        db.execute("UPDATE incidents SET dedup_key = ? WHERE id = ?", (key, incident_id))
        self._enqueue(db, incident_id, actions, incident["opened_at"])
        row = db.execute(
            f"SELECT {', '.join(INCIDENT_COLUMNS)} FROM incidents WHERE id = ?", (incident_id,)
        ).fetchone()
        return Incident.from_row(row)

    @staticmethod
    def _enqueue(
        db: sqlite3.Connection,
        incident_id: int,
        actions: list[Action],
        now: float,
    ) -> None:
        actions = addressed(db, incident_id, actions)
        db.executemany(
            "INSERT INTO outbox (incident_id, channel, operation, payload, state, next_attempt_at,"
            " created_at, notice) VALUES (?,?,?,?,'pending',?,?,?)",
            [
                (
                    incident_id,
                    action.channel,
                    action.operation,
                    json.dumps(to_json(action)),
                    max(now, getattr(action, "not_before", None) or now),
                    now,
                    getattr(action, "notice", None),
                )
                for action in actions
            ],
        )

    def update_incident(
        self,
        incident_id: int,
        changes: dict[str, Any],
        actions: Sequence[Action] = (),
        now: float = 0.0,
        state: StateRow | None = None,
        transition: Transition | None = None,
        expect: Mapping[str, Any] | None = None,
    ) -> bool:
        """Change an incident and queue its next actions in one transaction, with the target
        state (and the transition) that caused it, if any. Resolving it ends a pause of its
        clocks. With ``expect``, a compare-and-set: False, changing nothing of the incident,
        if it no longer holds those values (the state and transition are written)."""
        with self._transaction() as db:
            self._write_state(db, state, transition)
            if expect and not incident_holds(db, incident_id, expect):
                return False
            self._change_incident(db, incident_id, changes, actions, now)
        return True

    def _change_incident(
        self,
        db: sqlite3.Connection,
        incident_id: int,
        changes: dict[str, Any],
        actions: Sequence[Action],
        now: float,
    ) -> None:
        """The writes of ``update_incident`` (and of ``leave_storm``), inside its transaction."""
        if changes.get("status") == "resolved":
            self._end_pauses(db, incident_id, changes.get("resolved_at") or now)
        if changes:
            values = [json.dumps(list(v)) if k == "affected" else v for k, v in changes.items()]
            db.execute(
                f"UPDATE incidents SET {', '.join(f'{k} = ?' for k in changes)} WHERE id = ?",
                (*values, incident_id),
            )
        if changes.get("status") == "resolved":
            # A page held for business hours has nothing left to wait for: it is due now, to
            # be dropped at once instead of counting as held until the office opens.
            db.execute(
                "UPDATE outbox SET next_attempt_at = ? WHERE incident_id = ?"
                " AND state = 'pending' AND next_attempt_at > ?"
                " AND json_extract(payload, '$.not_before') > ?",
                (now, incident_id, now, now),
            )
        if actions:
            self._enqueue(db, incident_id, list(actions), now)

    def incidents(self, open_only: bool = False, limit: int | None = None) -> list[Incident]:
        where = " WHERE status = 'open'" if open_only else ""
        return self._incidents(where, limit)

    def watched_incidents(self) -> list[Incident]:
        """Open incidents, and resolved ones whose ticket watchdesk still follows (waiting on
        the customer, resolved but not closed, or reopened by a reply)."""
        states = ", ".join(f"'{state}'" for state in FOLLOWED_TICKET_STATES)
        return self._incidents(f" WHERE status = 'open' OR ticket_state IN ({states})")

    def _incidents(self, where: str, limit: int | None = None) -> list[Incident]:
        query = f"SELECT {', '.join(INCIDENT_COLUMNS)} FROM incidents{where} ORDER BY id DESC"
        if limit:
            query += f" LIMIT {int(limit)}"
        with self._lock:
            rows = self._db.execute(query).fetchall()
            pauses = self._pauses_of(row[0] for row in rows)
        return [Incident.from_row(row, pauses.get(row[0], ())) for row in rows]

    def incident(self, incident_id: int) -> Incident | None:
        with self._lock:
            row = self._db.execute(
                f"SELECT {', '.join(INCIDENT_COLUMNS)} FROM incidents WHERE id = ?", (incident_id,)
            ).fetchone()
            pauses = self._pauses_of([incident_id]) if row else {}
        return Incident.from_row(row, pauses.get(incident_id, ())) if row else None
