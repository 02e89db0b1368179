"""The outbox's queries: which actions are due, their attempts and outcomes, the sticky
"may be out there" mark, and the release of a channel's backlog. Part of ``SqliteDatabase``."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable
from contextlib import AbstractContextManager
from typing import Any

from monitor.store.records import OUTBOX_COLUMNS, OutboxAction


class OutboxQueries:
    """Mixed into ``SqliteDatabase``, which provides the connection, its lock and transactions."""

    _db: sqlite3.Connection
    _lock: threading.Lock

    def _transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError

    def due_actions(
        self, now: float, limit: int = 50, skip_channels: Iterable[str] = ()
    ) -> list[OutboxAction]:
        """Pending actions that may go now, oldest first, none of ``skip_channels`` (those
        backing off): per incident and channel (and customer notice ticket), only the oldest
        undelivered one (a note never overtakes the create of its ticket, a resolve never its
        page; a customer's notice ticket never waits behind the incident's own)."""
        skipped = list(skip_channels)
        exclude = f" AND o.channel NOT IN ({', '.join('?' for _ in skipped)})" if skipped else ""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {', '.join('o.' + c for c in OUTBOX_COLUMNS)} FROM outbox o"
                " WHERE o.state = 'pending' AND o.next_attempt_at <= ?" + exclude + ""
                " AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.incident_id = o.incident_id"
                " AND p.channel = o.channel AND p.notice IS o.notice AND p.state != 'done'"
                " AND p.id < o.id) ORDER BY o.id LIMIT ?",
                (now, *skipped, limit),
            ).fetchall()
        return [OutboxAction.from_row(row) for row in rows]

    def claim_actions(
        self,
        now: float,
        limit: int,
        skip_channels: Iterable[str] = (),
        claim_ttl: float | None = None,
        channel: str | None = None,
    ) -> list[OutboxAction]:
        """The due queue heads (of ``channel`` only, if given) with their attempt counted, in
        one transaction: one agent delivers alone, so a claim needs no token here (the
        PostgreSQL store's claims are what several agents share)."""
        skipped = list(skip_channels)
        exclude = f" AND o.channel NOT IN ({', '.join('?' for _ in skipped)})" if skipped else ""
        only = " AND o.channel = ?" if channel is not None else ""
        with self._transaction() as db:
            ids = [
                row[0]
                for row in db.execute(
                    "SELECT o.id FROM outbox o WHERE o.state = 'pending'"
                    " AND o.next_attempt_at <= ?" + exclude + only + ""
                    " AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.incident_id = o.incident_id"
                    " AND p.channel = o.channel AND p.notice IS o.notice AND p.state != 'done'"
                    " AND p.id < o.id) ORDER BY o.id LIMIT ?",
                    (now, *skipped, *([channel] if channel is not None else []), limit),
                )
            ]
            db.executemany(
                "UPDATE outbox SET attempts = attempts + 1, last_attempt_at = ?,"
                " last_error = 'in flight' WHERE id = ?",
                [(now, action_id) for action_id in ids],
            )
            rows = [
                db.execute(
                    f"SELECT {', '.join(OUTBOX_COLUMNS)} FROM outbox WHERE id = ?", (action_id,)
                ).fetchone()
                for action_id in ids
            ]
        return [OutboxAction.from_row(row) for row in rows]

    def next_action_time(self, skip_channels: Iterable[str] = ()) -> float | None:
        """When the next action that ``due_actions`` could return comes due: only the head of
        each incident's queue per channel counts (a note waiting behind its create has nothing
        to say about when to wake up; counting it made the worker spin)."""
        skipped = list(skip_channels)
        exclude = f" AND o.channel NOT IN ({', '.join('?' for _ in skipped)})" if skipped else ""
        with self._lock:
            row = self._db.execute(
                "SELECT MIN(o.next_attempt_at) FROM outbox o WHERE o.state = 'pending'"
                + exclude
                + " AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.incident_id = o.incident_id"
                " AND p.channel = o.channel AND p.notice IS o.notice AND p.state != 'done'"
                " AND p.id < o.id)",
                skipped,
            ).fetchone()
        return row[0] if row and row[0] is not None else None

    def release_channel(self, channel: str, now: float) -> int:
        """Make every pending action of a channel that answers again due now, whatever its own
        backoff said (pages held for business hours stay held): the backlog drains in seconds."""
        with self._transaction() as db:
            cursor = db.execute(
                "UPDATE outbox SET next_attempt_at = ? WHERE state = 'pending' AND channel = ?"
                " AND next_attempt_at > ? AND COALESCE(json_extract(payload, '$.not_before'), 0)"
                " <= ?",
                (now, channel, now, now),
            )
        return cursor.rowcount

    def set_sent(self, action_id: int, sent_at: float | None, claim: str | None = None) -> bool:
        """Set or clear the "may be out there" mark of a create or trigger (see the module
        docstring): set before the request leaves, cleared only by an answer. (``claim``: see
        ``claim_actions``; one agent alone holds every claim.)"""
        with self._transaction() as db:
            db.execute("UPDATE outbox SET sent_at = ? WHERE id = ?", (sent_at, action_id))
        return True

    def outbox_counts(self, now: float | None = None) -> dict[str, int]:
        """Actions per state; with ``now``, also "held": pending pages that wait for business
        hours (not backlog: nothing is wrong with them)."""
        with self._lock:
            rows = self._db.execute("SELECT state, COUNT(*) FROM outbox GROUP BY state").fetchall()
            counts = {state: count for state, count in rows}
            if now is not None:
                counts["held"] = self._db.execute(
                    "SELECT COUNT(*) FROM outbox WHERE state = 'pending'"
                    " AND json_extract(payload, '$.not_before') > ? AND next_attempt_at > ?",
                    (now, now),
                ).fetchone()[0]
        return counts

    def failed_actions(self) -> list[OutboxAction]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT {', '.join(OUTBOX_COLUMNS)} FROM outbox WHERE state = 'failed' ORDER BY id"
            ).fetchall()
        return [OutboxAction.from_row(row) for row in rows]

    def pending_with_error(self, prefix: str) -> list[OutboxAction]:
        """Pending actions whose last error starts with ``prefix`` (e.g. "channel removed")."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {', '.join(OUTBOX_COLUMNS)} FROM outbox WHERE state = 'pending'"
                " AND substr(last_error, 1, ?) = ? ORDER BY id",
                (len(prefix), prefix),
            ).fetchall()
        return [OutboxAction.from_row(row) for row in rows]

    def actions_of(self, incident_id: int) -> list[OutboxAction]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT {', '.join(OUTBOX_COLUMNS)} FROM outbox WHERE incident_id = ? ORDER BY id",
                (incident_id,),
            ).fetchall()
        return [OutboxAction.from_row(row) for row in rows]

    def begin_attempt(self, action_id: int, now: float) -> int:
        """Count the attempt before it is made: after a crash, attempts > 0 means "maybe sent"."""
        with self._transaction() as db:
            db.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_attempt_at = ?,"
                " last_error = 'in flight' WHERE id = ?",
                (now, action_id),
            )
            row = db.execute("SELECT attempts FROM outbox WHERE id = ?", (action_id,)).fetchone()
        return int(row[0])

    def finish_action(
        self,
        action_id: int,
        now: float,
        incident_changes: dict[str, Any] | None = None,
        note: str | None = None,
        claim: str | None = None,
    ) -> bool:
        """Mark delivered (``note`` says why when it was skipped instead, e.g. incident over);
        ``incident_changes`` (a created ticket's id and URL) go to the ticket the action was
        for: the incident's own, or the customer notice's."""
        with self._transaction() as db:
            db.execute(
                "UPDATE outbox SET state = 'done', done_at = ?, last_error = ? WHERE id = ?",
                (now, note, action_id),
            )
            if incident_changes:
                incident_id, notice = db.execute(
                    "SELECT incident_id, notice FROM outbox WHERE id = ?", (action_id,)
                ).fetchone()
                assignments = ", ".join(f"{k} = ?" for k in incident_changes)
                if notice is None:
                    db.execute(
                        f"UPDATE incidents SET {assignments} WHERE id = ?",
                        (*incident_changes.values(), incident_id),
                    )
                else:  # the action was for a customer's notice ticket: the changes are its own
                    db.execute(
                        f"UPDATE customer_notices SET {assignments}"
                        " WHERE incident_id = ? AND customer = ?",
                        (*incident_changes.values(), incident_id, notice),
                    )
        return True

    def retry_action(self, action_id: int, at: float, error: str, claim: str | None = None) -> bool:
        with self._transaction() as db:
            db.execute(
                "UPDATE outbox SET next_attempt_at = ?, last_error = ? WHERE id = ?",
                (at, error, action_id),
            )
        return True

    def fail_action(self, action_id: int, error: str, claim: str | None = None) -> bool:
        with self._transaction() as db:
            db.execute(
                "UPDATE outbox SET state = 'failed', last_error = ? WHERE id = ?",
                (error, action_id),
            )
        return True

    def requeue_failed(self, now: float) -> int:
        """Give refused actions one more chance (after a restart or reload fixed the cause)."""
        with self._transaction() as db:
            cursor = db.execute(
                "UPDATE outbox SET state = 'pending', next_attempt_at = ? WHERE state = 'failed'",
                (now,),
            )
        return cursor.rowcount
