"""The SQL both PostgreSQL accesses share (the agent's async store and the commands' sync
reader), and the conversions between rows and the store's values.

The statements mirror the SQLite store's (``monitor.store.schema``, ``sqlite``, ``outbox``)
with two differences of shape: a state row and a transition belong to a (target, vantage), and
an outbox payload is JSONB (read back as text, so ``OutboxAction.from_row`` reads both stores'
rows alike).
"""

from __future__ import annotations

from typing import Any

from monitor.state import TargetState, Transition
from monitor.store.records import INCIDENT_COLUMNS, OUTBOX_COLUMNS, Incident, StoredTransition
from monitor.store.schema import StateRow

STATE_FIELDS = (
    "identity",
    "status",
    "consecutive_failures",
    "consecutive_successes",
    "first_failure_at",
    "since",
    "last_checked_at",
    "last_ok",
    "last_reason",
    "last_duration",
    "seq",
)
UPSERT_STATE = (
    f"INSERT INTO target_state (target, vantage, {', '.join(STATE_FIELDS)})"
    f" VALUES ({', '.join(['%s'] * (len(STATE_FIELDS) + 2))})"
    " ON CONFLICT (target, vantage) DO UPDATE SET "
    + ", ".join(f"{name} = excluded.{name}" for name in STATE_FIELDS)
    + " WHERE excluded.seq > target_state.seq"
)
LOAD_STATES = f"SELECT target, {', '.join(STATE_FIELDS[:-1])} FROM target_state WHERE vantage = %s"
INSERT_TRANSITION = (
    "INSERT INTO transitions (target, vantage, previous, current, at, first_failure_at,"
    " consecutive_failures, reason) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
)
# An incident's row ends with the pauses of its SLA clocks, in order, as one array of
# [start, end] pairs (``monitor.store.postgres.pauses``): one statement, one snapshot.
PAUSES_OF = (
    "ARRAY(SELECT ARRAY[p.started_at, p.ended_at] FROM sla_pauses p"
    " WHERE p.incident_id = incidents.id ORDER BY p.started_at, p.id)"
)
SELECT_INCIDENTS = f"SELECT {', '.join(INCIDENT_COLUMNS)}, {PAUSES_OF} FROM incidents"
SELECT_ACTIONS = "SELECT " + ", ".join(
    "payload::text" if c == "payload" else c for c in OUTBOX_COLUMNS
)
INSERT_ACTION = (
    "INSERT INTO outbox (incident_id, channel, operation, payload, state, next_attempt_at,"
    " created_at, notice) VALUES (%s, %s, %s, %s::jsonb, 'pending', %s, %s, %s)"
)
# The head of each incident's queue per channel and customer notice ticket (a note never
# overtakes its ticket's create; a customer's notice ticket never waits behind the incident's).
QUEUE_HEAD = (
    " AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.incident_id = o.incident_id"
    " AND p.channel = o.channel AND p.notice IS NOT DISTINCT FROM o.notice"
    " AND p.state <> 'done' AND p.id < o.id)"
)
NOT_BEFORE = "(payload->>'not_before')::double precision"


def state_params(row: StateRow, vantage: str) -> tuple[object, ...]:
    name, identity, state, seq = row
    return (
        name,
        vantage,
        identity,
        state.status,
        state.consecutive_failures,
        state.consecutive_successes,
        state.first_failure_at,
        state.since,
        state.last_checked_at,
        state.last_ok,
        state.last_reason,
        state.last_duration,
        seq,
    )


def transition_params(name: str, t: Transition, vantage: str) -> tuple[object, ...]:
    return (
        name,
        vantage,
        t.previous,
        t.current,
        t.at,
        t.first_failure_at,
        t.consecutive_failures,
        t.reason,
    )


def states_of(rows: list[tuple[Any, ...]]) -> dict[str, tuple[str, TargetState]]:
    return {
        row[0]: (
            row[1],
            TargetState(
                status=row[2],
                consecutive_failures=row[3],
                consecutive_successes=row[4],
                first_failure_at=row[5],
                since=row[6],
                last_checked_at=row[7],
                last_ok=row[8],
                last_reason=row[9],
                last_duration=row[10],
            ),
        )
        for row in rows
    }


# ---- reads shared with the commands: (query, parameters) -------------------------------------


def incidents_query(
    open_only: bool, limit: int | None, where: str = ""
) -> tuple[str, tuple[object, ...]]:
    """Incidents newest first: open ones only, or those ``where`` (a condition) says."""
    condition = " WHERE status = 'open'" if open_only else (f" WHERE {where}" if where else "")
    query = SELECT_INCIDENTS + condition + " ORDER BY id DESC"
    if limit:
        return query + " LIMIT %s", (int(limit),)
    return query, ()


def incident_query(incident_id: int) -> tuple[str, tuple[object, ...]]:
    return SELECT_INCIDENTS + " WHERE id = %s", (incident_id,)


def actions_query(incident_id: int) -> tuple[str, tuple[object, ...]]:
    return SELECT_ACTIONS + " FROM outbox WHERE incident_id = %s ORDER BY id", (incident_id,)


TARGETS_SEEN = "SELECT target, first_seen, last_seen FROM targets_seen"


def transitions_query(
    vantage: str, target: str | None, since: float
) -> tuple[str, tuple[object, ...]]:
    query = (
        "SELECT target, previous, current, at, first_failure_at, consecutive_failures, reason"
        " FROM transitions WHERE vantage = %s AND at >= %s"
    )
    params: tuple[object, ...] = (vantage, since)
    if target is not None:
        query += " AND target = %s"
        params = (*params, target)
    return query + " ORDER BY at, id", params


def incident_of(row: tuple[Any, ...]) -> Incident:
    """An incident from a row of ``SELECT_INCIDENTS`` (its columns, then its pauses)."""
    *columns, pauses = row
    return Incident.from_row(tuple(columns), tuple((start, end) for start, end in pauses or ()))


def incidents_of(rows: list[tuple[Any, ...]]) -> list[Incident]:
    return [incident_of(row) for row in rows]


def transitions_of(rows: list[tuple[Any, ...]]) -> list[StoredTransition]:
    return [StoredTransition(*row) for row in rows]


def seen_of(rows: list[tuple[Any, ...]]) -> dict[str, tuple[float, float]]:
    return {row[0]: (row[1], row[2]) for row in rows}
