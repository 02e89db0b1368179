"""The pauses of incidents' SLA clocks on PostgreSQL, and the incidents whose ticket watchdesk
still follows after recovery. Same answers as the SQLite store's ``monitor.store.pauses`` and
``SqliteDatabase.watched_incidents`` (whose docstrings say why); part of ``PostgresStore``.

Several agents may see a ticket wait on the customer at the same moment: the partial unique
index of migration 0004 keeps one open pause per incident, so the second insert does nothing
and answers False, as the SQLite store does for a pause that stands already.
"""

from __future__ import annotations

from monitor.store.postgres.access import Connection, PostgresAccess
from monitor.store.postgres.sql import incidents_of, incidents_query
from monitor.store.records import FOLLOWED_TICKET_STATES, Incident


def watched_query() -> tuple[str, tuple[object, ...]]:
    """Open incidents, and resolved ones whose ticket is still followed, newest first."""
    states = ", ".join(f"'{state}'" for state in FOLLOWED_TICKET_STATES)
    return incidents_query(False, None, f"status = 'open' OR ticket_state IN ({states})")


async def end_pauses(conn: Connection, incident_id: int, at: float) -> int:
    """End the incident's open pause at ``at`` (never before it began); how many ended."""
    cursor = await conn.execute(
        "UPDATE sla_pauses SET ended_at = GREATEST(started_at, %s)"
        " WHERE incident_id = %s AND ended_at IS NULL",
        (at, incident_id),
    )
    return cursor.rowcount


class PostgresPauses(PostgresAccess):
    async def watched_incidents(self) -> list[Incident]:
        return incidents_of(await self._rows(*watched_query()))

    async def pause_clocks(self, incident_id: int, at: float) -> bool:
        """Stop the incident's SLA clocks at ``at``; False when they stand already."""

        async def work(conn: Connection) -> bool:
            cursor = await conn.execute(
                "INSERT INTO sla_pauses (incident_id, started_at) VALUES (%s, %s)"
                " ON CONFLICT (incident_id) WHERE ended_at IS NULL DO NOTHING",
                (incident_id, at),
            )
            return cursor.rowcount == 1

        return await self._write(work)

    async def resume_clocks(self, incident_id: int, at: float) -> bool:
        """Let the incident's SLA clocks run again from ``at``; False when they were running."""

        async def work(conn: Connection) -> bool:
            return await end_pauses(conn, incident_id, at) > 0

        return await self._write(work)
