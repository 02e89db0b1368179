"""Each vantage's verdict on a target, and the quorum that opens its incident (part of
``PostgresStore``; the rules are ``monitor.store.verdicts``).

Why the quorum is counted under ``pg_advisory_xact_lock`` on the target, in the same
transaction as the incident insert: two vantages that cross their threshold at the same
moment would each see only their own (uncommitted) row, both count one, and nobody opens.
With the lock the second waits for the first to commit and, as READ COMMITTED reads afresh at
each statement, counts both. The partial unique index "one open incident per target" stays
the last guard against two inserts.

The same transaction opens a partial outage's lower-priority incident once it is due, and
raises it when the quorum is met (``partials``), so both happen exactly once across agents.

Writes are change-only: a vantage says down when its state goes down (and again while it
waits for confirmation, which keeps its "down" within ``window``), up when it comes back.
"""

from __future__ import annotations

from collections.abc import Sequence

from monitor.state import Transition
from monitor.store.postgres import partials
from monitor.store.postgres.access import Connection, IncidentWrites
from monitor.store.postgres.sql import incident_of, incident_query
from monitor.store.records import AGENT_TARGET, Incident
from monitor.store.schema import StateRow
from monitor.store.verdicts import (
    Decision,
    PartialPlans,
    Plan,
    Rules,
    Tally,
    VantageVerdict,
)

# pg_advisory_xact_lock(LOCK_CLASS, hashtext(target)): the two-key form, apart from the
# one-key lock of migrations.
LOCK_CLASS = 0x7764_7674  # "wdvt"
LOCK = "SELECT pg_advisory_xact_lock(%s, hashtext(%s))"
SAY = (
    "INSERT INTO verdicts (target, vantage, down, since, said_at, reason)"
    " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (target, vantage) DO UPDATE"
    " SET down = excluded.down, since = CASE WHEN verdicts.down = excluded.down"
    " THEN verdicts.since ELSE excluded.since END, said_at = excluded.said_at,"
    " reason = excluded.reason"
)
# Every vantage that is live or has a word on the target (of the target's vantages, if it
# names them), with that word and whether its canaries' alert is open.
TALLY = (
    "WITH live AS (SELECT DISTINCT vantage FROM agents"
    " WHERE heartbeat_at > now() - make_interval(secs => %(ttl)s)),"
    " names AS (SELECT vantage FROM live"
    " UNION SELECT vantage FROM verdicts WHERE target = %(target)s)"
    " SELECT n.vantage, COALESCE(v.down, false), v.since, v.said_at, COALESCE(v.reason, ''),"
    " n.vantage IN (SELECT vantage FROM live),"
    " EXISTS (SELECT 1 FROM incidents i WHERE i.target = %(impaired)s || n.vantage"
    " AND i.status = 'open')"
    " FROM names n LEFT JOIN verdicts v ON v.target = %(target)s AND v.vantage = n.vantage"
    " WHERE cardinality(%(allowed)s::text[]) = 0 OR n.vantage = ANY(%(allowed)s)"
    " ORDER BY n.vantage"
)
# What a vantage said: (down, since, said_at, reason).
Said = tuple[bool, float, float, str]


class PostgresVerdicts(IncidentWrites):
    """Mixed into ``PostgresStore``, which provides the state and incident writes."""

    # How long an agent's heartbeat keeps its vantage live (the cluster's lease_ttl).
    live_for: float = 20.0

    async def say(self, target: str, said: Said) -> None:
        """This vantage's verdict on ``target`` (called when it changes)."""

        async def work(conn: Connection) -> None:
            await conn.execute(SAY, (target, self.vantage, *said))

        await self._write(work, (target,))

    async def said_down(self) -> list[str]:
        """The targets this vantage last said down (what it must say up when they recover,
        after a restart too)."""
        rows = await self._rows(
            "SELECT target FROM verdicts WHERE vantage = %s AND down", (self.vantage,)
        )
        return [str(row[0]) for row in rows]

    async def tally(self, target: str, rules: Rules, allowed: Sequence[str], now: float) -> Tally:
        """The verdicts on ``target`` as they stand (explain, recovery)."""

        async def work(conn: Connection) -> Tally:
            return await self._tally(conn, target, rules, allowed, now)

        return await self._read(work)

    async def _tally(
        self, conn: Connection, target: str, rules: Rules, allowed: Sequence[str], now: float
    ) -> Tally:
        params = {
            "ttl": self.live_for,
            "target": target,
            "impaired": AGENT_TARGET + ":",
            "allowed": list(allowed),
        }
        rows = await (await conn.execute(TALLY, params)).fetchall()
        return Tally(tuple(VantageVerdict(*row) for row in rows), rules, now)

    async def partials(self) -> set[int]:
        """The ids of the open partial incidents (those a majority of "up" must not end)."""
        return {int(row[0]) for row in await self._rows(partials.OPEN_PARTIALS)}

    async def confirm_open(
        self,
        target: str,
        said: Said,
        rules: Rules,
        allowed: Sequence[str],
        plan: Plan,
        state: StateRow | None = None,
        transition: Transition | None = None,
    ) -> tuple[Incident | None, Tally]:
        """``decide`` with no partial ticket: the incident (None when the quorum is not met
        or one is open already; the tally tells which) and the tally."""
        decision = await self.decide(target, said, rules, allowed, plan, None, state, transition)
        return decision.incident, decision.tally

    async def decide(
        self,
        target: str,
        said: Said,
        rules: Rules,
        allowed: Sequence[str],
        plan: Plan | None,
        partial: PartialPlans | None,
        state: StateRow | None = None,
        transition: Transition | None = None,
    ) -> Decision:
        """Say down and count the quorum under the target's lock, all in one transaction with
        the state (and transition). Met: the target's open partial incident is raised
        (``partial``), else the incident ``plan`` makes of the tally opens (no ``plan``: only
        asked, the caller groups it first). Not met: the partial incident opens if due."""
        now = said[2]

        async def work(conn: Connection) -> Decision:
            await self._write_state(conn, state, transition)
            await conn.execute(LOCK, (LOCK_CLASS, target))
            await conn.execute(SAY, (target, self.vantage, *said))
            tally = await self._tally(conn, target, rules, allowed, now)
            found = await partials.open_partial(conn, target) if partial is not None else None
            if tally.confirmed():
                if found is not None and partial is not None:
                    raised = await self._raise(conn, found, tally, partial, now)
                    return Decision(tally, raised, "raised" if raised else None)
                if plan is None:
                    return Decision(tally)
                fields, build = plan(tally)
                opened = await self._insert_incident(conn, fields, build)
                return Decision(tally, opened, "opened" if opened else None)
            if partial is None or found is not None or not tally.partial_due():
                return Decision(tally, partial=found)
            fields, build = partial.open(tally)
            opened = await self._insert_incident(conn, fields, build)
            if opened is None:
                return Decision(tally)
            return Decision(tally, opened, "partial", opened.id)

        return await self._write(work, (target,))

    async def _raise(
        self, conn: Connection, incident_id: int, tally: Tally, partial: PartialPlans, now: float
    ) -> Incident | None:
        if not await partials.take_raise(conn, incident_id):
            return None
        row = await (await conn.execute(*incident_query(incident_id))).fetchone()
        if row is None:
            return None
        paged = await partials.has_paged(conn, incident_id)
        changes, actions = partial.raised(incident_of(row), tally, paged)
        await self._change_incident(conn, incident_id, changes, actions, now)
        row = await (await conn.execute(*incident_query(incident_id))).fetchone()
        return incident_of(row) if row else None
