"""The pauses of incidents' SLA clocks: while a ticket waits on the customer during an outage,
the response, resolution and escalation clocks stand still. Part of ``SqliteDatabase``.

A pause is a row (start, end); the end stays NULL while it lasts. At most one pause of an
incident is open at a time, and a resolved incident's open pause ends with it (its clocks have
stopped for good), in the same transaction as the resolution.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable
from contextlib import AbstractContextManager

from monitor.store.records import Pause


class PauseQueries:
    """Mixed into ``SqliteDatabase``, which provides the connection, its lock and transactions."""

    _db: sqlite3.Connection
    _lock: threading.Lock

    def _transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError

    def pause_clocks(self, incident_id: int, at: float) -> bool:
        """Stop the incident's SLA clocks at ``at``; False when they stand already."""
        with self._transaction() as db:
            if db.execute(
                "SELECT 1 FROM sla_pauses WHERE incident_id = ? AND ended_at IS NULL",
                (incident_id,),
            ).fetchone():
                return False
            db.execute(
                "INSERT INTO sla_pauses (incident_id, started_at) VALUES (?, ?)",
                (incident_id, at),
            )
        return True

    def resume_clocks(self, incident_id: int, at: float) -> bool:
        """Let the incident's SLA clocks run again from ``at``; False when they were running."""
        with self._transaction() as db:
            return self._end_pauses(db, incident_id, at) > 0

    @staticmethod
    def _end_pauses(db: sqlite3.Connection, incident_id: int, at: float) -> int:
        cursor = db.execute(
            "UPDATE sla_pauses SET ended_at = MAX(started_at, ?)"
            " WHERE incident_id = ? AND ended_at IS NULL",
            (at, incident_id),
        )
        return cursor.rowcount

    def _pauses_of(self, incident_ids: Iterable[int]) -> dict[int, tuple[Pause, ...]]:
        """incident id -> its pauses in order (call with the lock held)."""
        rows = self._db.execute(
            "SELECT incident_id, started_at, ended_at FROM sla_pauses"
            " WHERE incident_id IN (SELECT value FROM json_each(?)) ORDER BY started_at, id",
            (json.dumps(list(incident_ids)),),
        ).fetchall()
        found: dict[int, list[Pause]] = {}
        for incident_id, start, end in rows:
            found.setdefault(incident_id, []).append((start, end))
        return {key: tuple(value) for key, value in found.items()}
