"""The customer notices of a shared component's outage (``monitor.policy.shared_outage``): what
each affected customer was told, and its ticket. Part of ``SqliteDatabase``.

A notice and the actions that tell the customer are one fact, like an incident and its actions:
the row is inserted (at most once per incident and customer, the table's unique key) in the
same transaction as its first actions, and closed in the same transaction as its recovery
note. So a crash or a restart between two decisions never tells a customer twice, and never
forgets to tell them the component is back.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Sequence
from contextlib import AbstractContextManager

from monitor.actions import Action
from monitor.store.records import NOTICE_COLUMNS, CustomerNotice


class NoticeQueries:
    """Mixed into ``SqliteDatabase``, which provides the connection, its lock, transactions and
    the outbox's ``_enqueue``."""

    _db: sqlite3.Connection
    _lock: threading.Lock

    def _transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError

    @staticmethod
    def _enqueue(
        db: sqlite3.Connection, incident_id: int, actions: list[Action], now: float
    ) -> None:
        raise NotImplementedError

    def open_notice(
        self,
        incident_id: int,
        customer: str,
        dedup_key: str,
        dependents: Sequence[str],
        via_incident: int | None,
        actions: Sequence[Action],
        now: float,
    ) -> bool:
        """Record that ``customer`` is told about incident ``incident_id`` and queue what tells
        them (on the incident's queue, or on ``via_incident``'s: the customer's own open
        incident), in one transaction; False, queuing nothing, when they were told already."""
        with self._transaction() as db:
            cursor = db.execute(
                "INSERT INTO customer_notices (incident_id, customer, dedup_key, via_incident,"
                " dependents, status, opened_at) VALUES (?,?,?,?,?,'open',?)"
                " ON CONFLICT DO NOTHING",
                (incident_id, customer, dedup_key, via_incident, json.dumps(list(dependents)), now),
            )
            if cursor.rowcount != 1:
                return False
            self._enqueue(db, via_incident or incident_id, list(actions), now)
        return True

    def close_notice(
        self, notice_id: int, actions: Sequence[Action], queue_on: int, now: float
    ) -> bool:
        """Close an open notice and queue its last actions (the recovery note, the status) on
        incident ``queue_on``'s queue, in one transaction; False when it was closed already."""
        with self._transaction() as db:
            cursor = db.execute(
                "UPDATE customer_notices SET status = 'closed', closed_at = ?"
                " WHERE id = ? AND status = 'open'",
                (now, notice_id),
            )
            if cursor.rowcount != 1:
                return False
            self._enqueue(db, queue_on, list(actions), now)
        return True

    def notices(
        self, incident_id: int | None = None, open_only: bool = False
    ) -> list[CustomerNotice]:
        """Notices of one incident (or of all), oldest first."""
        conditions, params = [], []
        if incident_id is not None:
            conditions.append("incident_id = ?")
            params.append(incident_id)
        if open_only:
            conditions.append("status = 'open'")
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {', '.join(NOTICE_COLUMNS)} FROM customer_notices{where} ORDER BY id",
                params,
            ).fetchall()
        return [CustomerNotice.from_row(row) for row in rows]

    def notice(self, incident_id: int, customer: str) -> CustomerNotice | None:
        with self._lock:
            row = self._db.execute(
                f"SELECT {', '.join(NOTICE_COLUMNS)} FROM customer_notices"
                " WHERE incident_id = ? AND customer = ?",
                (incident_id, customer),
            ).fetchone()
        return CustomerNotice.from_row(row) if row else None
