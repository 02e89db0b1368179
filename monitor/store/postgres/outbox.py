"""The outbox's calls on PostgreSQL: which actions are due, their attempts and outcomes, the
sticky "may be out there" mark (``sent_at``: set before a create leaves, cleared only by an
answer), the release of a channel's backlog. Same answers as the SQLite store's
``monitor.store.outbox``; part of ``PostgresStore``.

Several agents share the queue through claims: ``claim_actions`` claims the heads of the
due queues (per incident, channel and notice ticket) in ONE statement with ``FOR UPDATE SKIP
LOCKED``, counts their attempt and gives them a ``claim_token`` that lives ``claim_ttl`` (database
time). Finishing, retrying, failing and the "may be out there" mark go through only ``WHERE
claim_token`` is still the claimer's: a claim that expired (its agent died or stalled) was
taken over, and the late answer of the old claimer changes nothing. A finished or retried
action gives its claim back; each retry is a new claim. A claim taken over after a crash finds
``sent_at`` as the crash left it, and reconciles by dedup-key lookup as a restart does.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from psycopg import sql

from monitor.actions import Action, to_json
from monitor.errors import StoreError
from monitor.store.postgres.access import Connection, PostgresAccess
from monitor.store.postgres.sql import (
    INSERT_ACTION,
    NOT_BEFORE,
    QUEUE_HEAD,
    SELECT_ACTIONS,
    actions_query,
)
from monitor.store.records import INCIDENT_COLUMNS, OUTBOX_COLUMNS, OutboxAction
from monitor.store.storms import own_ticket, spread


def set_clause(changes: dict[str, Any]) -> sql.Composed:
    """``SET a = %s, b = %s`` for an incident's columns (a name that is none is refused)."""
    refused = (set(changes) - set(INCIDENT_COLUMNS)) | ({"id"} & set(changes))
    if refused:
        raise StoreError(f"not columns an update may set: {', '.join(sorted(refused))}")
    return sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(name)) for name in changes)


async def addressed(conn: Connection, incident_id: int, actions: list[Action]) -> list[Action]:
    """As the SQLite store's ``monitor.store.storms.addressed``: on a storm incident, an
    own-ticket action goes to every customer's open notice ticket of it instead."""
    if not any(own_ticket(action) for action in actions):
        return actions
    cursor = await conn.execute("SELECT kind FROM incidents WHERE id = %s", (incident_id,))
    row = await cursor.fetchone()
    if row is None or row[0] != "storm":
        return actions
    cursor = await conn.execute(
        "SELECT customer FROM customer_notices WHERE incident_id = %s AND status = 'open'"
        " AND via_incident IS NULL ORDER BY id",
        (incident_id,),
    )
    return spread(actions, [found[0] for found in await cursor.fetchall()])


def guard_clause(expect: Mapping[str, Any]) -> sql.Composed | None:
    """``a IS NOT DISTINCT FROM %s AND ...``: the compare of a compare-and-set (None: none)."""
    if not expect:
        return None
    refused = set(expect) - set(INCIDENT_COLUMNS)
    if refused:
        raise StoreError(f"not columns a guard may compare: {', '.join(sorted(refused))}")
    return sql.SQL(" AND ").join(
        sql.SQL("{} IS NOT DISTINCT FROM %s").format(sql.Identifier(name)) for name in expect
    )


# Rows still held by a live claim are nobody else's to take.
UNCLAIMED = " AND (o.claim_expires_at IS NULL OR o.claim_expires_at <= now())"
CLAIMED_BY = " AND (%s::uuid IS NULL OR claim_token = %s::uuid)"
RELEASE_CLAIM = "claim_token = NULL, claim_expires_at = NULL"


class PostgresOutbox(PostgresAccess):
    @staticmethod
    async def _enqueue(
        conn: Connection, incident_id: int, actions: Sequence[Action], now: float
    ) -> None:
        if not actions:
            return
        actions = await addressed(conn, incident_id, list(actions))
        rows = [
            (
                incident_id,
                action.channel,
                action.operation,
                json.dumps(to_json(action)),
                max(now, getattr(action, "not_before", None) or now),
                now,
                getattr(action, "notice", None),
            )
            for action in actions
        ]
        async with conn.cursor() as cursor:
            await cursor.executemany(INSERT_ACTION, rows)

    async def actions_of(self, incident_id: int) -> list[OutboxAction]:
        return [OutboxAction.from_row(row) for row in await self._rows(*actions_query(incident_id))]

    async def due_actions(
        self, now: float, limit: int = 50, skip_channels: Iterable[str] = ()
    ) -> list[OutboxAction]:
        """Pending actions that may go now, oldest first, none of ``skip_channels``; per
        incident and channel only the oldest undelivered one."""
        rows = await self._rows(
            SELECT_ACTIONS + " FROM outbox o WHERE o.state = 'pending' AND o.next_attempt_at <= %s"
            " AND o.channel <> ALL(%s)" + QUEUE_HEAD + " ORDER BY o.id LIMIT %s",
            (now, list(skip_channels), limit),
        )
        return [OutboxAction.from_row(row) for row in rows]

    async def claim_actions(
        self,
        now: float,
        limit: int,
        skip_channels: Iterable[str] = (),
        claim_ttl: float | None = None,
        channel: str | None = None,
    ) -> list[OutboxAction]:
        """Claim the due queue heads (of ``channel`` only, if given; none of
        ``skip_channels``), oldest first, and count their attempt: one statement, so two agents
        claiming at the same moment get different rows and never two of one queue."""
        token = str(uuid.uuid4())
        ttl = claim_ttl if claim_ttl is not None else 60.0
        only = " AND o.channel = %(channel)s" if channel is not None else ""
        query = (
            "WITH due AS (SELECT o.id FROM outbox o WHERE o.state = 'pending'"
            " AND o.next_attempt_at <= %(now)s AND o.channel <> ALL(%(skip)s)"
            + only
            + UNCLAIMED
            + QUEUE_HEAD
            + " ORDER BY o.id LIMIT %(limit)s FOR UPDATE OF o SKIP LOCKED)"
            " UPDATE outbox o SET attempts = o.attempts + 1, last_attempt_at = %(now)s,"
            " last_error = 'in flight', claim_token = %(token)s::uuid,"
            " claim_expires_at = now() + make_interval(secs => %(ttl)s)"
            " FROM due WHERE o.id = due.id RETURNING "
            + ", ".join("o.payload::text" if c == "payload" else f"o.{c}" for c in OUTBOX_COLUMNS)
        )
        params = {
            "now": now,
            "skip": list(skip_channels),
            "channel": channel,
            "limit": limit,
            "token": token,
            "ttl": ttl,
        }

        async def work(conn: Connection) -> list[OutboxAction]:
            cursor = await conn.execute(query, params)
            return [OutboxAction.from_row(row) for row in await cursor.fetchall()]

        claimed = await self._write(work)
        claimed.sort(key=lambda action: action.id)
        return [dataclasses.replace(action, claim_token=token) for action in claimed]

    async def next_action_time(self, skip_channels: Iterable[str] = ()) -> float | None:
        """When the next action ``due_actions`` could return comes due (queue heads only; a
        head another agent has claimed is due when its claim runs out, at the earliest)."""
        rows = await self._rows(
            "SELECT MIN(GREATEST(o.next_attempt_at,"
            " COALESCE(EXTRACT(EPOCH FROM o.claim_expires_at)::double precision, 0)))"
            " FROM outbox o WHERE o.state = 'pending' AND o.channel <> ALL(%s)" + QUEUE_HEAD,
            (list(skip_channels),),
        )
        return rows[0][0] if rows and rows[0][0] is not None else None

    async def release_channel(self, channel: str, now: float) -> int:
        """Every pending action of a channel that answers again is due now, whatever its own
        backoff said; pages held for business hours stay held."""

        async def work(conn: Connection) -> int:
            cursor = await conn.execute(
                "UPDATE outbox SET next_attempt_at = %s WHERE state = 'pending' AND channel = %s"
                f" AND next_attempt_at > %s AND COALESCE({NOT_BEFORE}, 0) <= %s",
                (now, channel, now, now),
            )
            return cursor.rowcount

        return await self._write(work)

    async def set_sent(
        self, action_id: int, sent_at: float | None, claim: str | None = None
    ) -> bool:
        return await self._execute(
            "UPDATE outbox SET sent_at = %s WHERE id = %s" + CLAIMED_BY,
            (sent_at, action_id, claim, claim),
        )

    async def outbox_counts(self, now: float | None = None) -> dict[str, int]:
        """Actions per state; with ``now`` also "held": pending pages waiting for business
        hours."""

        async def work(conn: Connection) -> dict[str, int]:
            cursor = await conn.execute("SELECT state, COUNT(*) FROM outbox GROUP BY state")
            counts = {state: int(count) for state, count in await cursor.fetchall()}
            if now is not None:
                cursor = await conn.execute(
                    f"SELECT COUNT(*) FROM outbox WHERE state = 'pending' AND {NOT_BEFORE} > %s"
                    " AND next_attempt_at > %s",
                    (now, now),
                )
                row = await cursor.fetchone()
                counts["held"] = int(row[0]) if row else 0
            return counts

        return await self._read(work)

    async def failed_actions(self) -> list[OutboxAction]:
        rows = await self._rows(SELECT_ACTIONS + " FROM outbox WHERE state = 'failed' ORDER BY id")
        return [OutboxAction.from_row(row) for row in rows]

    async def pending_with_error(self, prefix: str) -> list[OutboxAction]:
        """Pending actions whose last error starts with ``prefix``."""
        rows = await self._rows(
            SELECT_ACTIONS + " FROM outbox WHERE state = 'pending'"
            " AND substr(last_error, 1, %s) = %s ORDER BY id",
            (len(prefix), prefix),
        )
        return [OutboxAction.from_row(row) for row in rows]

    async def begin_attempt(self, action_id: int, now: float) -> int:
        """Count the attempt before it is made: after a crash, attempts > 0 means "maybe
        sent"."""

        async def work(conn: Connection) -> int:
            cursor = await conn.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_attempt_at = %s,"
                " last_error = 'in flight' WHERE id = %s RETURNING attempts",
                (now, action_id),
            )
            row = await cursor.fetchone()
            if row is None:
                raise StoreError(f"no outbox action {action_id}")
            return int(row[0])

        return await self._write(work)

    async def finish_action(
        self,
        action_id: int,
        now: float,
        incident_changes: dict[str, Any] | None = None,
        note: str | None = None,
        claim: str | None = None,
    ) -> bool:
        """Delivered (``note`` says why when it was skipped instead), with what the answer
        changes on the ticket it was for (its id): the incident's own, or the customer
        notice's, in one transaction. False when ``claim`` is no longer the action's."""
        changes = dict(incident_changes or {})
        assignments = set_clause(changes) if changes else None

        async def work(conn: Connection) -> bool:
            cursor = await conn.execute(
                "UPDATE outbox SET state = 'done', done_at = %s, last_error = %s, "
                + RELEASE_CLAIM
                + " WHERE id = %s"
                + CLAIMED_BY
                + " RETURNING incident_id, notice",
                (now, note, action_id, claim, claim),
            )
            row = await cursor.fetchone()
            if row is None:
                return False
            if assignments is None:
                return True
            if row[1] is None:
                await conn.execute(
                    sql.SQL("UPDATE incidents SET {} WHERE id = %s").format(assignments),
                    (*changes.values(), row[0]),
                )
            else:  # for a customer's notice ticket: the changes are the notice's own
                await conn.execute(
                    sql.SQL(
                        "UPDATE customer_notices SET {} WHERE incident_id = %s AND customer = %s"
                    ).format(assignments),
                    (*changes.values(), row[0], row[1]),
                )
            return True

        return await self._write(work)

    async def retry_action(
        self, action_id: int, at: float, error: str, claim: str | None = None
    ) -> bool:
        return await self._execute(
            f"UPDATE outbox SET next_attempt_at = %s, last_error = %s, {RELEASE_CLAIM}"
            " WHERE id = %s" + CLAIMED_BY,
            (at, error, action_id, claim, claim),
        )

    async def fail_action(self, action_id: int, error: str, claim: str | None = None) -> bool:
        return await self._execute(
            f"UPDATE outbox SET state = 'failed', last_error = %s, {RELEASE_CLAIM}"
            " WHERE id = %s" + CLAIMED_BY,
            (error, action_id, claim, claim),
        )

    async def requeue_failed(self, now: float) -> int:
        """Refused actions get one more chance (after a restart or reload fixed the cause)."""

        async def work(conn: Connection) -> int:
            cursor = await conn.execute(
                "UPDATE outbox SET state = 'pending', next_attempt_at = %s WHERE state = 'failed'",
                (now,),
            )
            return cursor.rowcount

        return await self._write(work)

    async def _execute(self, query: str, params: tuple[object, ...]) -> bool:
        """One statement in a transaction; whether it changed a row."""

        async def work(conn: Connection) -> bool:
            cursor = await conn.execute(query, params)
            return cursor.rowcount > 0

        return await self._write(work)
