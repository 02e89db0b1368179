"""A partial outage's incident in the quorum's transaction (part of ``PostgresVerdicts``):
the target's open partial incident, and its raise once the quorum is met.

A partial incident is an incident of kind "partial" (``monitor.store.records.PARTIAL``): the
partial unique index "one open incident per target" holds for it as for any other, so a
target has at most one, and a confirmed outage finds it there instead of opening a second.
Raising it turns its kind to "target" with a compare-and-set on the kind, under the target's
advisory lock: exactly one vantage raises it, however many confirm at once.
"""

from __future__ import annotations

from monitor.store.postgres.access import Connection

OPEN_PARTIAL = "SELECT id FROM incidents WHERE target = %s AND status = 'open' AND kind = 'partial'"
RAISE = (
    "UPDATE incidents SET kind = 'target' WHERE id = %s AND status = 'open'"
    " AND kind = 'partial' RETURNING id"
)
PAGED = "SELECT 1 FROM outbox WHERE incident_id = %s AND channel LIKE 'pager:%%' LIMIT 1"
OPEN_PARTIALS = "SELECT id FROM incidents WHERE status = 'open' AND kind = 'partial'"


async def open_partial(conn: Connection, target: str) -> int | None:
    """The id of ``target``'s open partial incident, if it has one."""
    row = await (await conn.execute(OPEN_PARTIAL, (target,))).fetchone()
    return int(row[0]) if row else None


async def take_raise(conn: Connection, incident_id: int) -> bool:
    """Mark the partial incident raised; False when another vantage did first."""
    return await (await conn.execute(RAISE, (incident_id,))).fetchone() is not None


async def has_paged(conn: Connection, incident_id: int) -> bool:
    """Whether a page of the incident was queued (a raise does not page twice)."""
    return await (await conn.execute(PAGED, (incident_id,))).fetchone() is not None
