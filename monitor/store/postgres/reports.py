"""Scheduled reports on PostgreSQL: which report was sent for which period, and since when a
report is configured. Same answers as the SQLite store's ``monitor.store.reports`` (whose
docstring says why a send is claimed before the mail leaves); part of ``PostgresStore``. The
statements of the send's claim are shared with ``PostgresReader`` (``watchdesk report --send``):
the command and every agent's scheduler claim the same row, so one period goes out once
cluster-wide."""

from __future__ import annotations

import json

from monitor.store.postgres.access import Connection, PostgresAccess
from monitor.store.reports import REPORT_COLUMNS, SentReport, sent_report

# (report, period_start, period_end, scheduled_at, claimed_at): one row, or none if taken.
CLAIM_REPORT = (
    "INSERT INTO reports_sent (report, period_start, period_end, scheduled_at, state,"
    " claimed_at) VALUES (%s, %s, %s, %s, 'sending', %s) ON CONFLICT DO NOTHING"
)
# (sent_at, recipients as JSON, report, period_start, period_end)
FINISH_REPORT = (
    "UPDATE reports_sent SET state = 'sent', sent_at = %s, recipients = %s"
    " WHERE report = %s AND period_start = %s AND period_end = %s"
)
# (report, period_start, period_end): a claim whose send failed goes.
RELEASE_REPORT = (
    "DELETE FROM reports_sent WHERE report = %s AND period_start = %s"
    " AND period_end = %s AND state = 'sending'"
)


class PostgresReports(PostgresAccess):
    async def report_known_since(self, report: str, now: float) -> float:
        """When ``report`` was first configured (``now`` if this is the first time)."""

        async def work(conn: Connection) -> float:
            await conn.execute(
                "INSERT INTO reports_known (report, since) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                (report, now),
            )
            cursor = await conn.execute(
                "SELECT since FROM reports_known WHERE report = %s", (report,)
            )
            row = await cursor.fetchone()
            return float(row[0]) if row else now

        return await self._write(work)

    async def claim_report(
        self, report: str, period: tuple[float, float], scheduled_at: float, now: float
    ) -> bool:
        """Claim the send of ``report`` for ``period``; False when it is claimed or sent."""

        async def work(conn: Connection) -> bool:
            cursor = await conn.execute(
                CLAIM_REPORT, (report, period[0], period[1], scheduled_at, now)
            )
            return cursor.rowcount == 1

        return await self._write(work)

    async def finish_report(
        self, report: str, period: tuple[float, float], sent_at: float, recipients: list[str]
    ) -> None:
        async def work(conn: Connection) -> None:
            await conn.execute(
                FINISH_REPORT, (sent_at, json.dumps(recipients), report, period[0], period[1])
            )

        await self._write(work)

    async def release_report(self, report: str, period: tuple[float, float]) -> None:
        """The send failed: the claim goes, and the next attempt may claim it again."""

        async def work(conn: Connection) -> None:
            await conn.execute(RELEASE_REPORT, (report, period[0], period[1]))

        await self._write(work)

    async def settle_report_claims(self) -> list[SentReport]:
        """Claims left ``sending`` by a send that was cut off become ``unknown``."""

        async def work(conn: Connection) -> list[SentReport]:
            cursor = await conn.execute(
                "UPDATE reports_sent SET state = 'unknown' WHERE state = 'sending'"
                f" RETURNING {REPORT_COLUMNS.replace(', state,', ', %s,')}",
                ("sending",),
            )
            return [sent_report(row) for row in await cursor.fetchall()]

        return await self._write(work)

    async def reports_sent(self, report: str | None = None) -> list[SentReport]:
        query = f"SELECT {REPORT_COLUMNS} FROM reports_sent"
        params: tuple[str, ...] = ()
        if report is not None:
            query += " WHERE report = %s"
            params = (report,)
        rows = await self._rows(query + " ORDER BY claimed_at, report", params)
        return [sent_report(row) for row in rows]
