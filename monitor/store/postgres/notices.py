"""The customer notices of a shared component's outage on PostgreSQL: what each affected
customer was told, and its ticket. Same answers as the SQLite store's ``monitor.store.notices``
(whose docstring says why a notice and its actions are one fact); part of ``PostgresStore``."""

from __future__ import annotations

import json
from collections.abc import Sequence

from monitor.actions import Action
from monitor.store.postgres.access import Connection
from monitor.store.postgres.outbox import PostgresOutbox
from monitor.store.records import NOTICE_COLUMNS, CustomerNotice

SELECT_NOTICES = f"SELECT {', '.join(NOTICE_COLUMNS)} FROM customer_notices"


def notices_query(
    incident_id: int | None = None, open_only: bool = False
) -> tuple[str, tuple[object, ...]]:
    """Notices of one incident (or of all), oldest first."""
    conditions: list[str] = []
    params: list[object] = []
    if incident_id is not None:
        conditions.append("incident_id = %s")
        params.append(incident_id)
    if open_only:
        conditions.append("status = 'open'")
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    return f"{SELECT_NOTICES}{where} ORDER BY id", tuple(params)


class PostgresNotices(PostgresOutbox):
    async def open_notice(
        self,
        incident_id: int,
        customer: str,
        dedup_key: str,
        dependents: Sequence[str],
        via_incident: int | None,
        actions: Sequence[Action],
        now: float,
    ) -> bool:
        """Record that ``customer`` is told about the incident and queue what tells them, in
        one transaction; False, queuing nothing, when they were told already."""
        queued = list(actions)

        async def work(conn: Connection) -> bool:
            cursor = await conn.execute(
                "INSERT INTO customer_notices (incident_id, customer, dedup_key, via_incident,"
                " dependents, status, opened_at) VALUES (%s, %s, %s, %s, %s, 'open', %s)"
                " ON CONFLICT DO NOTHING",
                (incident_id, customer, dedup_key, via_incident, json.dumps(list(dependents)), now),
            )
            if cursor.rowcount != 1:
                return False
            await self._enqueue(conn, via_incident or incident_id, queued, now)
            return True

        return await self._write(work)

    async def close_notice(
        self, notice_id: int, actions: Sequence[Action], queue_on: int, now: float
    ) -> bool:
        """Close an open notice and queue its last actions on incident ``queue_on``, in one
        transaction; False when it was closed already."""
        queued = list(actions)

        async def work(conn: Connection) -> bool:
            cursor = await conn.execute(
                "UPDATE customer_notices SET status = 'closed', closed_at = %s"
                " WHERE id = %s AND status = 'open'",
                (now, notice_id),
            )
            if cursor.rowcount != 1:
                return False
            await self._enqueue(conn, queue_on, queued, now)
            return True

        return await self._write(work)

    async def notices(
        self, incident_id: int | None = None, open_only: bool = False
    ) -> list[CustomerNotice]:
        rows = await self._rows(*notices_query(incident_id, open_only))
        return [CustomerNotice.from_row(row) for row in rows]

    async def notice(self, incident_id: int, customer: str) -> CustomerNotice | None:
        rows = await self._rows(
            f"{SELECT_NOTICES} WHERE incident_id = %s AND customer = %s", (incident_id, customer)
        )
        return CustomerNotice.from_row(rows[0]) if rows else None
