"""``PostgresStore``: the ``Store`` interface on the cluster's PostgreSQL database.

It keeps what the SQLite store keeps (``monitor.store.sqlite`` says why each part matters):

- **A transition and what it causes are one fact**: the target's state row, its transition,
  the incident it opens or changes and that incident's first outbox rows commit in one
  transaction, or none of them does.
- **One open incident per target**, by the partial unique index: the insert is
  ``ON CONFLICT DO NOTHING``, so of two writers that see the same outage one opens it and the
  other gets None (its state and transition are written all the same).
- **A state row is written only if its ``seq`` is newer** than the stored one.
- **Calls take effect in the order they were made** (``CallOrder``).

State rows and transitions are this agent's vantage's: several vantages may judge one target.
Incidents, the outbox, mutes and the targets seen are the cluster's; so are the vantages'
verdicts (``verdicts``), which confirmation from several vantages counts.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import psycopg
from psycopg import sql

from monitor.actions import Action
from monitor.errors import StoreError
from monitor.faults import crash_point
from monitor.state import TargetState, Transition
from monitor.store.base import BuildActions
from monitor.store.fence import WriteScope, current_scope
from monitor.store.postgres.access import Connection, Work
from monitor.store.postgres.notices import PostgresNotices
from monitor.store.postgres.outbox import guard_clause, set_clause
from monitor.store.postgres.pauses import PostgresPauses, end_pauses
from monitor.store.postgres.records import Record
from monitor.store.postgres.reports import PostgresReports
from monitor.store.postgres.sql import (
    INSERT_TRANSITION,
    LOAD_STATES,
    NOT_BEFORE,
    TARGETS_SEEN,
    UPSERT_STATE,
    incident_of,
    incident_query,
    incidents_of,
    incidents_query,
    seen_of,
    state_params,
    states_of,
    transition_params,
    transitions_of,
    transitions_query,
)
from monitor.store.postgres.storms import PostgresStorms
from monitor.store.postgres.verdicts import PostgresVerdicts
from monitor.store.records import INCIDENT_COLUMNS, Incident, StoredTransition
from monitor.store.schema import StateRow


class PostgresStore(
    PostgresNotices, PostgresReports, PostgresPauses, PostgresStorms, PostgresVerdicts
):
    """The ``Store`` of an agent with a ``[cluster]`` section."""

    async def writable(self) -> bool:
        """A write beside the queued calls (in their order it would wait behind writes stuck
        on a lost database, each until its pool timeout): what /readyz asks."""
        try:
            async with self._connection() as conn, conn.transaction():
                await conn.execute(
                    "INSERT INTO meta (key, value) VALUES (%s, 'ok')"
                    " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (f"ready_check:{self.vantage}",),
                )
        except (psycopg.Error, StoreError):
            return False
        return True

    # ---- target state and transitions -----------------------------------------------------

    async def last_seq(self) -> int:
        rows = await self._rows(
            "SELECT MAX(seq) FROM target_state WHERE vantage = %s", (self.vantage,)
        )
        return int(rows[0][0] or 0) if rows else 0

    async def last_resolved(self) -> dict[str, float]:
        rows = await self._rows(
            "SELECT target, MAX(resolved_at) FROM incidents WHERE status = 'resolved'"
            " GROUP BY target"
        )
        return {row[0]: row[1] for row in rows if row[1] is not None}

    async def load_states(
        self, targets: Iterable[str] | None = None
    ) -> dict[str, tuple[str, TargetState]]:
        if targets is None:
            return states_of(await self._rows(LOAD_STATES, (self.vantage,)))
        query = LOAD_STATES + " AND target = ANY(%s)"
        return states_of(await self._rows(query, (self.vantage, list(targets))))

    async def save(
        self, states: Iterable[StateRow], transitions: Iterable[tuple[str, Transition]] = ()
    ) -> None:
        """A batch of state rows (each kept only if newer) and transitions in one
        transaction: the periodic flush."""
        batch = self._batch(states, transitions)
        if batch is not None:
            await self._write(*batch)

    def _batch(
        self, states: Iterable[StateRow], transitions: Iterable[tuple[str, Transition]]
    ) -> tuple[Work[None], tuple[str, ...]] | None:
        """State rows and transitions as one transaction's work, with the targets it is
        about (the flush's, a batch of records'); None: nothing to write."""
        state_rows = [state_params(row, self.vantage) for row in states]
        changes = [transition_params(name, t, self.vantage) for name, t in transitions]
        if not state_rows and not changes:
            return None

        async def work(conn: Connection) -> None:
            async with conn.cursor() as cursor:
                if state_rows:
                    await cursor.executemany(UPSERT_STATE, state_rows)
                if changes:
                    await cursor.executemany(INSERT_TRANSITION, changes)

        return work, tuple(dict.fromkeys(str(row[0]) for row in state_rows + changes))

    async def record(self, state: StateRow, transition: Transition | None = None) -> None:
        """Joined with the records queued beside it (``monitor.store.postgres.records``),
        unless made on behalf of another target or of the coordinator."""
        scope = current_scope()
        if scope.coordinator or any(name != state[0] for name in scope.targets):

            async def work(conn: Connection) -> None:
                await self._write_state(conn, state, transition)

            await self._write(work, (state[0],))
            return
        await self._record((state, transition), self._write_records)

    async def _write_records(self, records: list[Record]) -> None:
        """In the batch's turn: its records in one transaction, fenced by all their targets."""
        batch = self._batch(
            (state for state, _ in records),
            ((state[0], t) for state, t in records if t is not None),
        )
        if batch is not None:
            await self._transaction(*batch, WriteScope())

    async def _write_state(
        self, conn: Connection, state: StateRow | None, transition: Transition | None
    ) -> None:
        if state is None:
            return
        await conn.execute(UPSERT_STATE, state_params(state, self.vantage))
        if transition is not None:
            await conn.execute(
                INSERT_TRANSITION, transition_params(state[0], transition, self.vantage)
            )

    async def set_mute(
        self, target: str, until: float | None, reason: str, by: str, at: float
    ) -> None:
        async def work(conn: Connection) -> None:
            if until is None:
                await conn.execute("DELETE FROM mutes WHERE target = %s", (target,))
                return
            await conn.execute(
                "INSERT INTO mutes (target, until, reason, muted_by, at) VALUES (%s,%s,%s,%s,%s)"
                " ON CONFLICT (target) DO UPDATE SET until = excluded.until,"
                " reason = excluded.reason, muted_by = excluded.muted_by, at = excluded.at",
                (target, until, reason, by, at),
            )

        await self._write(work)

    async def mutes(self) -> dict[str, tuple[float, str, str]]:
        rows = await self._rows("SELECT target, until, reason, muted_by FROM mutes")
        return {row[0]: (row[1], row[2], row[3]) for row in rows}

    async def mark_seen(self, targets: Iterable[str], at: float) -> None:
        rows = [(name, at, at) for name in targets]
        if not rows:
            return

        async def work(conn: Connection) -> None:
            async with conn.cursor() as cursor:
                await cursor.executemany(
                    "INSERT INTO targets_seen (target, first_seen, last_seen) VALUES (%s,%s,%s)"
                    " ON CONFLICT (target) DO UPDATE SET last_seen = excluded.last_seen",
                    rows,
                )

        await self._write(work)

    async def forget(self, targets: Iterable[str], at: float) -> None:
        """Drop this vantage's live state of removed targets; their transitions stay for
        reports, which count them until ``at``."""
        names = list(targets)

        async def work(conn: Connection) -> None:
            await conn.execute(
                "DELETE FROM target_state WHERE vantage = %s AND target = ANY(%s)",
                (self.vantage, names),
            )
            await conn.execute(
                "UPDATE targets_seen SET last_seen = %s WHERE target = ANY(%s)", (at, names)
            )

        await self._write(work)

    async def targets_seen(self) -> dict[str, tuple[float, float]]:
        return seen_of(await self._rows(TARGETS_SEEN))

    async def transitions(
        self, target: str | None = None, since: float = 0.0
    ) -> list[StoredTransition]:
        return transitions_of(await self._rows(*transitions_query(self.vantage, target, since)))

    # ---- incidents ------------------------------------------------------------------------

    async def open_incident(
        self,
        incident: dict[str, Any],
        build: BuildActions,
        state: StateRow | None = None,
        transition: Transition | None = None,
    ) -> Incident | None:
        """The incident and its first actions, with the state (and transition) that opened
        it, in one transaction; None when the target already has an open incident."""

        async def work(conn: Connection) -> Incident | None:
            await self._write_state(conn, state, transition)
            crash_point("after_state_write")
            return await self._insert_incident(conn, incident, build)

        return await self._write(work, (incident["target"],))

    async def _insert_incident(
        self, conn: Connection, incident: dict[str, Any], build: BuildActions
    ) -> Incident | None:
        """The insert of ``open_incident`` (and of ``open_storm``), inside its transaction."""
        fields = {c: incident[c] for c in INCIDENT_COLUMNS if c in incident and c != "id"}
        fields["dedup_key"] = f"new-{incident['target']}-{incident['opened_at']}"
        if "affected" in fields:
            fields["affected"] = json.dumps(list(fields["affected"]))
        insert = sql.SQL(
            "INSERT INTO incidents ({}) VALUES ({}) ON CONFLICT (target) WHERE status = 'open'"
            " DO NOTHING RETURNING id"
        ).format(
            sql.SQL(", ").join(sql.Identifier(name) for name in fields),
            sql.SQL(", ").join(sql.Placeholder() for _ in fields),
        )
        # Asked first so that only a real race spends an id (SQLite numbers without gaps).
        open_now = await conn.execute(
            "SELECT 1 FROM incidents WHERE target = %s AND status = 'open'", (incident["target"],)
        )
        if await open_now.fetchone():
            return None
        row = await (await conn.execute(insert, tuple(fields.values()))).fetchone()
        if row is None:
            return None
        incident_id = int(row[0])
        key, actions = build(incident_id)
        await conn.execute("UPDATE incidents SET dedup_key = %s WHERE id = %s", (key, incident_id))
        await self._enqueue(conn, incident_id, actions, incident["opened_at"])
        cursor = await conn.execute(*incident_query(incident_id))
        stored = await cursor.fetchone()
        return incident_of(stored) if stored else None

    async def update_incident(
        self,
        incident_id: int,
        changes: dict[str, Any],
        actions: Sequence[Action] = (),
        now: float = 0.0,
        state: StateRow | None = None,
        transition: Transition | None = None,
        expect: Mapping[str, Any] | None = None,
    ) -> bool:
        """Change an incident and queue its next actions in one transaction, with the state
        (and transition) that caused it, if any. Resolving it ends a pause of its clocks. With
        ``expect`` a compare-and-set: the incident changes (and the actions are queued) only if
        its columns still hold those values, else False (the state and transition are written
        all the same)."""
        fields, queued = dict(changes), list(actions)
        guard = dict(expect or {})
        condition = guard_clause(guard)

        async def work(conn: Connection) -> bool:
            await self._write_state(conn, state, transition)
            if condition is not None:
                cursor = await conn.execute(
                    sql.SQL("SELECT 1 FROM incidents WHERE id = %s AND {} FOR UPDATE").format(
                        condition
                    ),
                    (incident_id, *guard.values()),
                )
                if await cursor.fetchone() is None:
                    return False
            await self._change_incident(conn, incident_id, fields, queued, now)
            return True

        return await self._write(work, () if state is None else (state[0],))

    async def _change_incident(
        self,
        conn: Connection,
        incident_id: int,
        changes: dict[str, Any],
        actions: Sequence[Action],
        now: float,
    ) -> None:
        """The writes of ``update_incident`` (and of ``leave_storm``), inside its transaction."""
        values = {k: json.dumps(list(v)) if k == "affected" else v for k, v in changes.items()}
        if values:
            await conn.execute(
                sql.SQL("UPDATE incidents SET {} WHERE id = %s").format(set_clause(values)),
                (*values.values(), incident_id),
            )
        if changes.get("status") == "resolved":
            await end_pauses(conn, incident_id, changes.get("resolved_at") or now)
            # A page held for business hours has nothing left to wait for: due now, to be
            # dropped at once instead of counting as held until the office opens.
            await conn.execute(
                "UPDATE outbox SET next_attempt_at = %s WHERE incident_id = %s"
                f" AND state = 'pending' AND next_attempt_at > %s AND {NOT_BEFORE} > %s",
                (now, incident_id, now, now),
            )
        await self._enqueue(conn, incident_id, list(actions), now)

    async def incidents(self, open_only: bool = False, limit: int | None = None) -> list[Incident]:
        return incidents_of(await self._rows(*incidents_query(open_only, limit)))

    async def incident(self, incident_id: int) -> Incident | None:
        rows = await self._rows(*incident_query(incident_id))
        return incident_of(rows[0]) if rows else None
