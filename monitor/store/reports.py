"""Scheduled reports in the store: which report was sent for which period, and since when a
report is configured. Part of ``SqliteDatabase``.

A send is claimed (a ``sending`` row, keyed by report name and period) before the mail leaves
and marked ``sent`` once the server took it; a send that failed releases its claim so that it
is tried again. A claim still ``sending`` when an agent starts was cut off by a stop or a
crash mid-send: whether the mail left is unknown, so it becomes ``unknown`` and is not sent
again (a report twice in every inbox is worse than one to send by hand).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from contextlib import AbstractContextManager
from dataclasses import dataclass


@dataclass(frozen=True)
class SentReport:
    report: str
    period_start: float
    period_end: float
    scheduled_at: float
    state: str  # sending | sent | unknown
    claimed_at: float
    sent_at: float | None
    recipients: tuple[str, ...]


REPORT_COLUMNS = (
    "report, period_start, period_end, scheduled_at, state, claimed_at, sent_at, recipients"
)


class ReportQueries:
    """Mixed into ``SqliteDatabase``, which provides the connection, its lock and transactions."""

    _db: sqlite3.Connection
    _lock: threading.Lock

    def _transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError

    def report_known_since(self, report: str, now: float) -> float:
        """When ``report`` was first configured (``now`` if this is the first time): no
        occurrence from before that is caught up."""
        with self._transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO reports_known (report, since) VALUES (?, ?)", (report, now)
            )
            row = db.execute(
                "SELECT since FROM reports_known WHERE report = ?", (report,)
            ).fetchone()
        return float(row[0])

    def claim_report(
        self, report: str, period: tuple[float, float], scheduled_at: float, now: float
    ) -> bool:
        """Claim the send of ``report`` for ``period``; False when it is already claimed or sent
        (by this agent before a restart, or by ``watchdesk report --send``)."""
        with self._transaction() as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO reports_sent (report, period_start, period_end,"
                " scheduled_at, state, claimed_at) VALUES (?, ?, ?, ?, 'sending', ?)",
                (report, period[0], period[1], scheduled_at, now),
            )
            return cursor.rowcount == 1

    def finish_report(
        self, report: str, period: tuple[float, float], sent_at: float, recipients: list[str]
    ) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE reports_sent SET state = 'sent', sent_at = ?, recipients = ?"
                " WHERE report = ? AND period_start = ? AND period_end = ?",
                (sent_at, json.dumps(recipients), report, period[0], period[1]),
            )

    def release_report(self, report: str, period: tuple[float, float]) -> None:
        """The send failed: the claim goes, and the next attempt may claim it again."""
        with self._transaction() as db:
            db.execute(
                "DELETE FROM reports_sent WHERE report = ? AND period_start = ?"
                " AND period_end = ? AND state = 'sending'",
                (report, period[0], period[1]),
            )

    def settle_report_claims(self) -> list[SentReport]:
        """Claims left ``sending`` by an agent that stopped mid-send become ``unknown``; they
        are returned so that the agent can say which reports to check by hand."""
        with self._transaction() as db:
            rows = db.execute(
                f"SELECT {REPORT_COLUMNS} FROM reports_sent WHERE state = 'sending'"
            ).fetchall()
            db.execute("UPDATE reports_sent SET state = 'unknown' WHERE state = 'sending'")
        return [sent_report(row) for row in rows]

    def reports_sent(self, report: str | None = None) -> list[SentReport]:
        query = f"SELECT {REPORT_COLUMNS} FROM reports_sent"
        params: tuple[str, ...] = ()
        if report is not None:
            query += " WHERE report = ?"
            params = (report,)
        with self._lock:
            rows = self._db.execute(query + " ORDER BY claimed_at, report", params).fetchall()
        return [sent_report(row) for row in rows]


def sent_report(row: tuple[object, ...]) -> SentReport:
    values = list(row)
    values[-1] = tuple(json.loads(str(values[-1])))
    return SentReport(*values)  # type: ignore[arg-type]
