"""``SqliteStore``: the ``Store`` interface over ``SqliteDatabase``, for the agent's event loop.

Every call runs in ONE dedicated writer thread (a single-worker executor), so:

- no SQLite statement runs on the event loop (the connection is even opened in that thread,
  with ``check_same_thread``: a statement from any other thread is refused);
- calls run in the order they were submitted: a coroutine's call is submitted when the
  coroutine reaches it, before its first await gives the loop away. The batched state flush
  started after a transition's transaction therefore runs after it (``seq`` and the
  transaction invariant of ``monitor.store.sqlite`` hold as before).

A call whose awaiting task is cancelled runs anyway if the thread has started it, and not at
all if it was still queued: like a crash, never half of one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from monitor.actions import Action
from monitor.errors import StoreError
from monitor.state import TargetState, Transition
from monitor.store.base import BuildActions
from monitor.store.groupcommit import GroupCommit
from monitor.store.records import (
    CustomerNotice,
    Incident,
    OutboxAction,
    StoredTransition,
    StormMember,
)
from monitor.store.reports import SentReport
from monitor.store.schema import StateRow
from monitor.store.sqlite import FILE_NAME, SqliteDatabase

T = TypeVar("T")


class SqliteStore:
    """The default ``Store``: a SQLite file under ``agent.state_dir``, one writer thread."""

    def __init__(self, state_dir: str | Path) -> None:
        self.state_dir = Path(state_dir)
        self.path = self.state_dir / FILE_NAME
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="watchdesk-store")
        self._db: SqliteDatabase | None = None
        self._closed = False
        self._records = GroupCommit()

    @property
    def location(self) -> str:
        return str(self.path)

    async def _run(self, work: Callable[[SqliteDatabase], T]) -> T:
        """Run ``work`` in the writer thread, after every call submitted before it."""
        self._records.close()
        return await self._submit(work)

    def _submit(self, work: Callable[[SqliteDatabase], T]) -> asyncio.Future[T]:
        try:
            return asyncio.get_running_loop().run_in_executor(self._executor, self._apply, work)
        except RuntimeError as exc:  # the executor is shut down
            raise StoreError(f"the store {self.path} is closed") from exc

    def _apply(self, work: Callable[[SqliteDatabase], T]) -> T:
        if self._db is None:
            raise StoreError(f"the store {self.path} is not open")
        return work(self._db)

    # ---- lifecycle ------------------------------------------------------------------------

    async def open(self) -> None:
        if self._db is not None:
            return

        def connect() -> None:
            self._db = SqliteDatabase(self.state_dir, check_same_thread=True)

        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, connect)
        except RuntimeError as exc:
            raise StoreError(f"the store {self.path} is closed") from exc

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._records.close()

        def disconnect() -> None:
            if self._db is not None:
                self._db.close()
                self._db = None

        await asyncio.get_running_loop().run_in_executor(self._executor, disconnect)
        self._executor.shutdown(wait=False)

    async def reconnect(self) -> None:
        return None

    def abandon(self) -> None:
        return None

    async def writable(self) -> bool:
        try:
            return await self._run(lambda db: db.writable())
        except StoreError:
            return False

    # ---- target state and transitions -----------------------------------------------------

    async def last_seq(self) -> int:
        return await self._run(lambda db: db.last_seq())

    async def last_resolved(self) -> dict[str, float]:
        return await self._run(lambda db: db.last_resolved())

    async def load_states(
        self, targets: Iterable[str] | None = None
    ) -> dict[str, tuple[str, TargetState]]:
        states = await self._run(lambda db: db.load_states())
        if targets is None:
            return states
        wanted = set(targets)
        return {name: found for name, found in states.items() if name in wanted}

    async def save(
        self, states: Iterable[StateRow], transitions: Iterable[tuple[str, Transition]] = ()
    ) -> None:
        rows, changes = list(states), list(transitions)
        await self._run(lambda db: db.save(rows, changes))

    async def record(self, state: StateRow, transition: Transition | None = None) -> None:
        """Joins the records queued just before it (``monitor.store.groupcommit``)."""
        batch, new = self._records.join(state, transition)
        if new:
            try:
                batch.done = self._submit(lambda db: db.save(*self._records.take(batch)))
            except StoreError:
                self._records.close()
                raise
        assert batch.done is not None
        await asyncio.shield(batch.done)

    async def set_mute(
        self, target: str, until: float | None, reason: str, by: str, at: float
    ) -> None:
        await self._run(lambda db: db.set_mute(target, until, reason, by, at))

    async def mutes(self) -> dict[str, tuple[float, str, str]]:
        return await self._run(lambda db: db.mutes())

    async def mark_seen(self, targets: Iterable[str], at: float) -> None:
        names = list(targets)
        await self._run(lambda db: db.mark_seen(names, at))

    async def forget(self, targets: Iterable[str], at: float) -> None:
        names = list(targets)
        await self._run(lambda db: db.forget(names, at))

    async def targets_seen(self) -> dict[str, tuple[float, float]]:
        return await self._run(lambda db: db.targets_seen())

    async def transitions(
        self, target: str | None = None, since: float = 0.0
    ) -> list[StoredTransition]:
        return await self._run(lambda db: db.transitions(target, since))

    # ---- incidents ------------------------------------------------------------------------

    async def open_incident(
        self,
        incident: dict[str, Any],
        build: BuildActions,
        state: StateRow | None = None,
        transition: Transition | None = None,
    ) -> Incident | None:
        fields = dict(incident)
        return await self._run(lambda db: db.open_incident(fields, build, state, transition))

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
        fields, queued = dict(changes), list(actions)
        guard = None if expect is None else dict(expect)
        return await self._run(
            lambda db: db.update_incident(
                incident_id, fields, queued, now, state, transition, guard
            )
        )

    async def incidents(self, open_only: bool = False, limit: int | None = None) -> list[Incident]:
        return await self._run(lambda db: db.incidents(open_only, limit))

    async def incident(self, incident_id: int) -> Incident | None:
        return await self._run(lambda db: db.incident(incident_id))

    # ---- customer notices of shared outages ------------------------------------------------

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
        names, queued = list(dependents), list(actions)
        return await self._run(
            lambda db: db.open_notice(
                incident_id, customer, dedup_key, names, via_incident, queued, now
            )
        )

    async def close_notice(
        self, notice_id: int, actions: Sequence[Action], queue_on: int, now: float
    ) -> bool:
        queued = list(actions)
        return await self._run(lambda db: db.close_notice(notice_id, queued, queue_on, now))

    async def notices(
        self, incident_id: int | None = None, open_only: bool = False
    ) -> list[CustomerNotice]:
        return await self._run(lambda db: db.notices(incident_id, open_only))

    async def notice(self, incident_id: int, customer: str) -> CustomerNotice | None:
        return await self._run(lambda db: db.notice(incident_id, customer))

    async def watched_incidents(self) -> list[Incident]:
        return await self._run(lambda db: db.watched_incidents())

    async def pause_clocks(self, incident_id: int, at: float) -> bool:
        return await self._run(lambda db: db.pause_clocks(incident_id, at))

    async def resume_clocks(self, incident_id: int, at: float) -> bool:
        return await self._run(lambda db: db.resume_clocks(incident_id, at))

    # ---- storms ---------------------------------------------------------------------------

    async def open_storm(
        self,
        incident: dict[str, Any],
        build: BuildActions,
        members: Sequence[StormMember],
        state: StateRow | None = None,
        transition: Transition | None = None,
    ) -> Incident | None:
        fields, rows = dict(incident), list(members)
        return await self._run(lambda db: db.open_storm(fields, build, rows, state, transition))

    async def join_storm(
        self,
        incident_id: int,
        members: Sequence[StormMember],
        state: StateRow | None = None,
        transition: Transition | None = None,
    ) -> None:
        rows = list(members)
        await self._run(lambda db: db.join_storm(incident_id, rows, state, transition))

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
        names, fields, queued = list(targets), dict(changes), list(actions)
        await self._run(
            lambda db: db.leave_storm(
                incident_id, names, at, fields, queued, now, state, transition
            )
        )

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
        marks, queued, names = dict(told), list(actions), list(dependents)
        return await self._run(
            lambda db: db.tell_storm(incident_id, customer, marks, queued, names, now, notice_key)
        )

    async def storm_members(self, incident_id: int | None = None) -> list[StormMember]:
        return await self._run(lambda db: db.storm_members(incident_id))

    # ---- the outbox -----------------------------------------------------------------------

    async def actions_of(self, incident_id: int) -> list[OutboxAction]:
        return await self._run(lambda db: db.actions_of(incident_id))

    async def due_actions(
        self, now: float, limit: int = 50, skip_channels: Iterable[str] = ()
    ) -> list[OutboxAction]:
        skipped = list(skip_channels)
        return await self._run(lambda db: db.due_actions(now, limit, skipped))

    async def claim_actions(
        self,
        now: float,
        limit: int,
        skip_channels: Iterable[str] = (),
        claim_ttl: float | None = None,
        channel: str | None = None,
    ) -> list[OutboxAction]:
        skipped = list(skip_channels)
        return await self._run(lambda db: db.claim_actions(now, limit, skipped, claim_ttl, channel))

    async def next_action_time(self, skip_channels: Iterable[str] = ()) -> float | None:
        skipped = list(skip_channels)
        return await self._run(lambda db: db.next_action_time(skipped))

    async def begin_attempt(self, action_id: int, now: float) -> int:
        return await self._run(lambda db: db.begin_attempt(action_id, now))

    async def finish_action(
        self,
        action_id: int,
        now: float,
        incident_changes: dict[str, Any] | None = None,
        note: str | None = None,
        claim: str | None = None,
    ) -> bool:
        changes = None if incident_changes is None else dict(incident_changes)
        return await self._run(lambda db: db.finish_action(action_id, now, changes, note, claim))

    async def retry_action(
        self, action_id: int, at: float, error: str, claim: str | None = None
    ) -> bool:
        return await self._run(lambda db: db.retry_action(action_id, at, error, claim))

    async def fail_action(self, action_id: int, error: str, claim: str | None = None) -> bool:
        return await self._run(lambda db: db.fail_action(action_id, error, claim))

    async def set_sent(
        self, action_id: int, sent_at: float | None, claim: str | None = None
    ) -> bool:
        return await self._run(lambda db: db.set_sent(action_id, sent_at, claim))

    async def release_channel(self, channel: str, now: float) -> int:
        return await self._run(lambda db: db.release_channel(channel, now))

    async def requeue_failed(self, now: float) -> int:
        return await self._run(lambda db: db.requeue_failed(now))

    async def outbox_counts(self, now: float | None = None) -> dict[str, int]:
        return await self._run(lambda db: db.outbox_counts(now))

    async def failed_actions(self) -> list[OutboxAction]:
        return await self._run(lambda db: db.failed_actions())

    async def pending_with_error(self, prefix: str) -> list[OutboxAction]:
        return await self._run(lambda db: db.pending_with_error(prefix))

    # ---- scheduled reports ----------------------------------------------------------------

    async def report_known_since(self, report: str, now: float) -> float:
        return await self._run(lambda db: db.report_known_since(report, now))

    async def claim_report(
        self, report: str, period: tuple[float, float], scheduled_at: float, now: float
    ) -> bool:
        return await self._run(lambda db: db.claim_report(report, period, scheduled_at, now))

    async def finish_report(
        self, report: str, period: tuple[float, float], sent_at: float, recipients: list[str]
    ) -> None:
        sent_to = list(recipients)
        await self._run(lambda db: db.finish_report(report, period, sent_at, sent_to))

    async def release_report(self, report: str, period: tuple[float, float]) -> None:
        await self._run(lambda db: db.release_report(report, period))

    async def settle_report_claims(self) -> list[SentReport]:
        return await self._run(lambda db: db.settle_report_claims())

    async def reports_sent(self, report: str | None = None) -> list[SentReport]:
        return await self._run(lambda db: db.reports_sent(report))
