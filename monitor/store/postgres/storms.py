"""The members of storm incidents and what their customers were told of them, on PostgreSQL.
Same answers as the SQLite store's ``monitor.store.storms`` (whose docstring says why each
change is one transaction with what it causes); part of ``PostgresStore``.

Several agents may see one storm: the partial unique index "one open incident per target"
(migration 0001) holds for a storm's target too (its name: "the outage of many services", "the
outage of group G"), so the second agent's ``open_storm`` answers None and it joins the open
one (``monitor.policy.storms``); a customer's notice is opened once whoever tells it first
(``customer_notices``' unique keys), the others queue nothing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from monitor.actions import Action
from monitor.faults import crash_point
from monitor.state import Transition
from monitor.store.base import BuildActions
from monitor.store.postgres.access import Connection, IncidentWrites
from monitor.store.postgres.outbox import PostgresOutbox
from monitor.store.records import STORM_MEMBER_COLUMNS, Incident, StormMember
from monitor.store.schema import StateRow

SELECT_MEMBERS = f"SELECT {', '.join(STORM_MEMBER_COLUMNS)} FROM storm_members"
UPSERT_MEMBER = (
    f"INSERT INTO storm_members ({', '.join(STORM_MEMBER_COLUMNS)})"
    " VALUES (%s, %s, %s, %s, %s, %s, NULL, 'none') ON CONFLICT (incident_id, target) DO UPDATE"
    " SET joined_at = excluded.joined_at, first_failure_at = excluded.first_failure_at,"
    " reason = excluded.reason, left_at = NULL"
)


def members_query(incident_id: int | None) -> tuple[str, tuple[object, ...]]:
    """The members of one storm, or of every open storm (``None``), in joining order."""
    if incident_id is None:
        where = " WHERE incident_id IN (SELECT id FROM incidents WHERE status = 'open')"
        params: tuple[object, ...] = ()
    else:
        where, params = " WHERE incident_id = %s", (incident_id,)
    return f"{SELECT_MEMBERS}{where} ORDER BY incident_id, joined_at, target", params


def members_of(rows: list[tuple[Any, ...]]) -> list[StormMember]:
    return [StormMember.from_row(row) for row in rows]


class PostgresStorms(PostgresOutbox, IncidentWrites):
    """Mixed into ``PostgresStore``, which provides the state writes and the incident
    writes (``IncidentWrites``)."""

    async def open_storm(
        self,
        incident: dict[str, Any],
        build: BuildActions,
        members: Sequence[StormMember],
        state: StateRow | None = None,
        transition: Transition | None = None,
    ) -> Incident | None:
        """A storm incident with its first members and the transition that made it, in one
        transaction; None when its target has an open incident already (the state and
        transition are written all the same)."""
        rows = list(members)

        async def work(conn: Connection) -> Incident | None:
            await self._write_state(conn, state, transition)
            crash_point("after_state_write")
            opened = await self._insert_incident(conn, incident, build)
            if opened is not None:
                await _insert_members(conn, opened.id, rows)
            return opened

        return await self._write(work)

    async def join_storm(
        self,
        incident_id: int,
        members: Sequence[StormMember],
        state: StateRow | None = None,
        transition: Transition | None = None,
    ) -> None:
        """Add members (a member that had left is down again: it joins anew)."""
        rows = list(members)

        async def work(conn: Connection) -> None:
            await self._write_state(conn, state, transition)
            await _insert_members(conn, incident_id, rows)

        await self._write(work)

    async def leave_storm(
        self,
        incident_id: int,
        targets: Sequence[str],
        at: float,
        changes: dict[str, Any],
        actions: Sequence[Action],
        now: float,
        state: StateRow | None = None,
        transition: Transition | None = None,
    ) -> None:
        """Members are up again; the storm's own changes and actions (its resolution when
        the last one left) and the transition that caused it: one transaction."""
        left = [(at, incident_id, target) for target in targets]
        fields, queued = dict(changes), list(actions)

        async def work(conn: Connection) -> None:
            await self._write_state(conn, state, transition)
            if left:
                async with conn.cursor() as cursor:
                    await cursor.executemany(
                        "UPDATE storm_members SET left_at = %s WHERE incident_id = %s"
                        " AND target = %s AND left_at IS NULL",
                        left,
                    )
            await self._change_incident(conn, incident_id, fields, queued, now)

        await self._write(work)

    async def tell_storm(
        self,
        incident_id: int,
        customer: str,
        told: Mapping[str, str],
        actions: Sequence[Action],
        dependents: Sequence[str],
        now: float,
        notice_key: str | None = None,
    ) -> bool:
        """Queue what tells ``customer`` of their members and mark them told, in one
        transaction; with ``notice_key`` their notice opens here (False, queuing nothing,
        when it exists already, whichever agent opened it)."""
        marks = [(what, incident_id, target) for target, what in told.items()]
        queued, names = list(actions), json.dumps(list(dependents))

        async def work(conn: Connection) -> bool:
            if notice_key is not None:
                cursor = await conn.execute(
                    "INSERT INTO customer_notices (incident_id, customer, dedup_key,"
                    " via_incident, dependents, status, opened_at)"
                    " VALUES (%s, %s, %s, NULL, %s, 'open', %s) ON CONFLICT DO NOTHING",
                    (incident_id, customer, notice_key, names, now),
                )
                if cursor.rowcount != 1:
                    return False
            else:
                await conn.execute(
                    "UPDATE customer_notices SET dependents = %s WHERE incident_id = %s"
                    " AND customer = %s",
                    (names, incident_id, customer),
                )
            if marks:
                async with conn.cursor() as cursor:
                    await cursor.executemany(
                        "UPDATE storm_members SET told = %s WHERE incident_id = %s AND target = %s",
                        marks,
                    )
            await self._enqueue(conn, incident_id, queued, now)
            return True

        return await self._write(work)

    async def storm_members(self, incident_id: int | None = None) -> list[StormMember]:
        return members_of(await self._rows(*members_query(incident_id)))


async def _insert_members(conn: Connection, incident_id: int, members: list[StormMember]) -> None:
    if not members:
        return
    async with conn.cursor() as cursor:
        await cursor.executemany(
            UPSERT_MEMBER,
            [
                (incident_id, m.target, m.customer, m.joined_at, m.first_failure_at, m.reason)
                for m in members
            ],
        )
