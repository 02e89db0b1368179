"""The members of storm incidents (``monitor.policy.storms``) and what their customers were told
of them. Part of ``SqliteDatabase``.

A storm incident has no ticket of its own: each affected customer has a notice ticket (the
``customer_notices`` of shared outages, one per incident and customer), listing their targets.
So a ticket action queued for a storm incident's own ticket (an escalation note, a status
update, an acknowledgement) is queued once for every customer's ticket instead (``addressed``),
in the same transaction.

Every change is one transaction with what it causes, like an incident and its actions: a
storm's row, its first members and the state transition that made it; a member leaving and
the storm's resolution; a customer's ticket (or note) and the members it tells of, marked told.
So a crash between two decisions repeats no ticket or note and forgets none.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import threading
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any

from monitor.actions import Action, AddNote, CreateTicket, SetStatus
from monitor.faults import crash_point
from monitor.state import Transition
from monitor.store.records import STORM_MEMBER_COLUMNS, Incident, StormMember
from monitor.store.schema import StateRow


def addressed(db: sqlite3.Connection, incident_id: int, actions: list[Action]) -> list[Action]:
    """``actions`` as they are queued: on a storm incident, a ticket action without a
    ``notice`` goes to every customer's open notice ticket of it (and nowhere before the
    customers have been told)."""
    if not any(own_ticket(action) for action in actions):
        return actions
    row = db.execute("SELECT kind FROM incidents WHERE id = ?", (incident_id,)).fetchone()
    if row is None or row[0] != "storm":
        return actions
    customers = [
        found[0]
        for found in db.execute(
            "SELECT customer FROM customer_notices WHERE incident_id = ? AND status = 'open'"
            " AND via_incident IS NULL ORDER BY id",
            (incident_id,),
        )
    ]
    return spread(actions, customers)


def own_ticket(action: Action) -> bool:
    """A ticket action for the incident's own ticket (a storm has none)."""
    return isinstance(action, CreateTicket | AddNote | SetStatus) and action.notice is None


def spread(actions: list[Action], customers: Sequence[str]) -> list[Action]:
    """A storm's ``actions`` with each own-ticket one copied to every customer's ticket."""
    result: list[Action] = []
    for action in actions:
        if isinstance(action, CreateTicket | AddNote | SetStatus) and action.notice is None:
            result += [dataclasses.replace(action, notice=customer) for customer in customers]
        else:
            result.append(action)
    return result


class StormQueries:
    """Mixed into ``SqliteDatabase``, which provides the connection, its lock, transactions,
    the state writes and the incident writes."""

    _db: sqlite3.Connection
    _lock: threading.Lock

    def _transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        raise NotImplementedError

    @staticmethod
    def _write_state(
        db: sqlite3.Connection, state: StateRow | None, transition: Transition | None
    ) -> None:
        raise NotImplementedError

    @staticmethod
    def _enqueue(
        db: sqlite3.Connection, incident_id: int, actions: list[Action], now: float
    ) -> None:
        raise NotImplementedError

    def _insert_incident(
        self,
        db: sqlite3.Connection,
        incident: dict[str, Any],
        build: Callable[[int], tuple[str, list[Action]]],
    ) -> Incident | None:
        raise NotImplementedError

    def _change_incident(
        self,
        db: sqlite3.Connection,
        incident_id: int,
        changes: dict[str, Any],
        actions: Sequence[Action],
        now: float,
    ) -> None:
        raise NotImplementedError

    def open_storm(
        self,
        incident: dict[str, Any],
        build: Callable[[int], tuple[str, list[Action]]],
        members: Sequence[StormMember],
        state: StateRow | None = None,
        transition: Transition | None = None,
    ) -> Incident | None:
        """Insert a storm incident with its first members (their ``incident_id`` is set here)
        and the transition that made it, in one transaction; None when its target (the
        storm's name) has an open incident already (the state and transition are written
        all the same)."""
        with self._transaction() as db:
            self._write_state(db, state, transition)
            crash_point("after_state_write")
            opened = self._insert_incident(db, incident, build)
            if opened is not None:
                self._insert_members(db, opened.id, members)
        return opened

    def join_storm(
        self,
        incident_id: int,
        members: Sequence[StormMember],
        state: StateRow | None = None,
        transition: Transition | None = None,
    ) -> None:
        """Add members to a storm (a member that had left is down again: it joins anew)."""
        with self._transaction() as db:
            self._write_state(db, state, transition)
            self._insert_members(db, incident_id, members)

    @staticmethod
    def _insert_members(
        db: sqlite3.Connection, incident_id: int, members: Sequence[StormMember]
    ) -> None:
        db.executemany(
            f"INSERT INTO storm_members ({', '.join(STORM_MEMBER_COLUMNS)})"
            " VALUES (?,?,?,?,?,?,NULL,'none') ON CONFLICT (incident_id, target) DO UPDATE"
            " SET joined_at = excluded.joined_at, first_failure_at = excluded.first_failure_at,"
            " reason = excluded.reason, left_at = NULL",
            [
                (incident_id, m.target, m.customer, m.joined_at, m.first_failure_at, m.reason)
                for m in members
            ],
        )

    def leave_storm(
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
        """Members are up again (``targets`` leave at ``at``); with ``changes`` and
        ``actions`` the storm's own (its resolution when the last one left), and the
        transition that caused it: one transaction."""
        with self._transaction() as db:
            self._write_state(db, state, transition)
            db.executemany(
                "UPDATE storm_members SET left_at = ? WHERE incident_id = ? AND target = ?"
                " AND left_at IS NULL",
                [(at, incident_id, target) for target in targets],
            )
            self._change_incident(db, incident_id, changes, actions, now)

    def tell_storm(
        self,
        incident_id: int,
        customer: str,
        told: Mapping[str, str],
        actions: Sequence[Action],
        dependents: Sequence[str],
        now: float,
        notice_key: str | None = None,
    ) -> bool:
        """Tell ``customer`` about their members of a storm: queue ``actions`` (their ticket's
        create, or a note on it) and mark each member in ``told`` as told (down or up), in one
        transaction. With ``notice_key`` the customer's notice is opened here (at most once per
        incident and customer: False, queuing nothing, when it exists already); ``dependents``
        (their targets in the storm) is kept on the notice for its recovery note."""
        with self._transaction() as db:
            if notice_key is not None:
                cursor = db.execute(
                    "INSERT INTO customer_notices (incident_id, customer, dedup_key,"
                    " via_incident, dependents, status, opened_at) VALUES (?,?,?,NULL,?,'open',?)"
                    " ON CONFLICT DO NOTHING",
                    (incident_id, customer, notice_key, json.dumps(list(dependents)), now),
                )
                if cursor.rowcount != 1:
                    return False
            else:
                db.execute(
                    "UPDATE customer_notices SET dependents = ? WHERE incident_id = ?"
                    " AND customer = ?",
                    (json.dumps(list(dependents)), incident_id, customer),
                )
            db.executemany(
                "UPDATE storm_members SET told = ? WHERE incident_id = ? AND target = ?",
                [(what, incident_id, target) for target, what in told.items()],
            )
            self._enqueue(db, incident_id, list(actions), now)
        return True

    def storm_members(self, incident_id: int | None = None) -> list[StormMember]:
        """The members of one storm, or of every open storm (``None``), in joining order."""
        if incident_id is None:
            where = " WHERE incident_id IN (SELECT id FROM incidents WHERE status = 'open')"
            params: tuple[object, ...] = ()
        else:
            where, params = " WHERE incident_id = ?", (incident_id,)
        with self._lock:
            rows = self._db.execute(
                f"SELECT {', '.join(STORM_MEMBER_COLUMNS)} FROM storm_members{where}"
                " ORDER BY incident_id, joined_at, target",
                params,
            ).fetchall()
        return [StormMember.from_row(row) for row in rows]
