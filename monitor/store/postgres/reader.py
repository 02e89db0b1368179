"""``PostgresReader``: what the commands (``tickets``, ``report``) read, synchronously, from
the cluster's database; the same calls as ``SqliteDatabase`` offers them, so one command
reads either store. It reads the whole cluster's incidents, and the transitions of the
config's vantage (the one the uptime report counts). ``watchdesk report --send`` claims the
period's send here, in the same ledger as the agents' scheduled sends (``reports``)."""

from __future__ import annotations

import json
from typing import Any

import psycopg

from monitor.errors import StoreError
from monitor.store.postgres import migrate
from monitor.store.postgres.connect import connect, describe
from monitor.store.postgres.members import ClusterView, cluster_view
from monitor.store.postgres.notices import notices_query
from monitor.store.postgres.pauses import watched_query
from monitor.store.postgres.reports import CLAIM_REPORT, FINISH_REPORT, RELEASE_REPORT
from monitor.store.postgres.sql import (
    TARGETS_SEEN,
    actions_query,
    incident_of,
    incident_query,
    incidents_of,
    incidents_query,
    seen_of,
    transitions_of,
    transitions_query,
)
from monitor.store.postgres.storms import members_of, members_query
from monitor.store.records import (
    CustomerNotice,
    Incident,
    OutboxAction,
    StoredTransition,
    StormMember,
)


class PostgresReader:
    def __init__(self, url: str, vantage: str) -> None:
        self.location = describe(url)
        self.vantage = vantage
        self._conn = connect(url, f"watchdesk-cli {vantage}")
        try:
            migrate.check(self._conn)
        except StoreError as error:
            self._conn.close()
            raise StoreError(f"{self.location}: {error}") from None

    def close(self) -> None:
        self._conn.close()

    def _rows(self, query: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        try:
            return self._conn.execute(query, params).fetchall()
        except psycopg.Error as exc:
            raise StoreError(f"reading the {self.location} failed: {exc}") from exc

    def _change(self, statement: str, params: tuple[object, ...]) -> int:
        """One statement (its own transaction: the connection autocommits); the rows it
        changed."""
        try:
            return self._conn.execute(statement, params).rowcount
        except psycopg.Error as exc:
            raise StoreError(f"writing to the {self.location} failed: {exc}") from exc

    def claim_report(
        self, report: str, period: tuple[float, float], scheduled_at: float, now: float
    ) -> bool:
        """Claim the send of ``report`` for ``period``; False when an agent (or another
        command) claimed or sent it already."""
        return self._change(CLAIM_REPORT, (report, *period, scheduled_at, now)) == 1

    def finish_report(
        self, report: str, period: tuple[float, float], sent_at: float, recipients: list[str]
    ) -> None:
        self._change(FINISH_REPORT, (sent_at, json.dumps(recipients), report, *period))

    def release_report(self, report: str, period: tuple[float, float]) -> None:
        self._change(RELEASE_REPORT, (report, *period))

    def incidents(self, open_only: bool = False, limit: int | None = None) -> list[Incident]:
        return incidents_of(self._rows(*incidents_query(open_only, limit)))

    def incident(self, incident_id: int) -> Incident | None:
        rows = self._rows(*incident_query(incident_id))
        return incident_of(rows[0]) if rows else None

    def watched_incidents(self) -> list[Incident]:
        return incidents_of(self._rows(*watched_query()))

    def actions_of(self, incident_id: int) -> list[OutboxAction]:
        return [OutboxAction.from_row(row) for row in self._rows(*actions_query(incident_id))]

    def notices(
        self, incident_id: int | None = None, open_only: bool = False
    ) -> list[CustomerNotice]:
        return [
            CustomerNotice.from_row(row)
            for row in self._rows(*notices_query(incident_id, open_only))
        ]

    def storm_members(self, incident_id: int | None = None) -> list[StormMember]:
        return members_of(self._rows(*members_query(incident_id)))

    def targets_seen(self) -> dict[str, tuple[float, float]]:
        return seen_of(self._rows(TARGETS_SEEN))

    def transitions(self, target: str | None = None, since: float = 0.0) -> list[StoredTransition]:
        return transitions_of(self._rows(*transitions_query(self.vantage, target, since)))

    def cluster(self) -> ClusterView:
        """The agents, the slots of each vantage and the coordinator (``watchdesk cluster``)."""
        return cluster_view(self._rows)
