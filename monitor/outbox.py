"""Delivers ticket (and page) actions from the store's outbox, and loses none of them.

Every action was written to the store before anything was tried. The worker takes the ones
that are due, oldest first, never two of the same incident and channel out of order. Each
attempt is counted in the store *before* it is made, so after a crash an action with attempts
is "maybe sent": a create is then reconciled by asking the backend for a ticket carrying the
incident's dedup key before another is sent. Retries back off exponentially with jitter and
honour ``Retry-After``; an action the service refuses for good is logged once, counted, shown
in /readyz, and kept (a restart or reload gives it another chance).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from monitor.clock import Clock
from monitor.metrics import Metrics
from monitor.store import OutboxAction, Store
from ticketing.base import TicketBackend, TicketDraft, TicketRef
from ticketing.errors import OutcomeUnknown, PermanentError, RetryableError
from ticketing.pagers.base import Page, Pager

log = logging.getLogger("watchdesk.outbox")

BACKOFF_BASE = 2.0
BACKOFF_CAP = 600.0
IN_FLIGHT = "in flight"
UNKNOWN = "outcome unknown"
METRIC_OPERATION = {"create": "create", "note": "note", "status": "update", "find": "get"}


@dataclass(frozen=True)
class Outcome:
    """What a delivery achieved: changes to record on the incident, or why it was skipped."""

    changes: dict[str, Any] | None = None
    skipped: str | None = None


Deliver = Callable[[OutboxAction], Awaitable[Outcome]]


def backoff(attempts: int, retry_after: float | None) -> float:
    """Seconds until the next try: the service's Retry-After, else capped exponential, jittered."""
    if retry_after is not None:
        return retry_after + random.uniform(0, 1.0)
    ceiling = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** max(0, attempts - 1))
    return random.uniform(ceiling / 2, ceiling)


class Outbox:
    def __init__(
        self,
        store: Store,
        backend: TicketBackend,
        clock: Clock,
        metrics: Metrics,
        reconcile_after: float = 0.0,
        concurrency: int = 8,
    ) -> None:
        self.store = store
        self.backend = backend
        self.clock = clock
        self.metrics = metrics
        # How long a backend's search may lag behind a create (Freshdesk: minutes); until then
        # "not found" is not proof that a lost create did not happen.
        self.reconcile_after = reconcile_after
        self.pagers: dict[str, Pager] = {}
        self.channels: dict[str, Deliver] = {
            "ticket": self._deliver_ticket,
            "pager": self._deliver_page,
        }
        self._wake = asyncio.Event()
        self._limit = asyncio.Semaphore(concurrency)
        self._task: asyncio.Task[None] | None = None
        self._refused_logged: set[int] = set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="watchdesk-outbox")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def notify(self) -> None:
        self._wake.set()

    async def _run(self) -> None:
        while True:
            try:
                await self.drain()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox pass failed; retrying in a second")
            next_at = self.store.next_action_time()
            delay = 1.0 if next_at is None else max(0.0, min(1.0, next_at - self.clock.now()))
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=delay)

    async def drain(self) -> int:
        """Deliver every action that is due now; return how many were tried."""
        tried = 0
        while True:
            actions = self.store.due_actions(self.clock.now())
            if not actions:
                break
            tried += len(actions)
            await asyncio.gather(*(self._attempt(action) for action in actions))
        self._update_pending()
        return tried

    def _update_pending(self) -> None:
        counts = self.store.outbox_counts()
        self.metrics.outbox_pending.set(counts.get("pending", 0) + counts.get("failed", 0))

    async def _attempt(self, action: OutboxAction) -> None:
        deliver = self.channels.get(action.channel.split(":", 1)[0])
        if deliver is None:
            self.store.fail_action(action.id, f"no channel {action.channel} configured")
            return
        async with self._limit:
            now = self.clock.now()
            attempts = self.store.begin_attempt(action.id, now)
            try:
                changes = await deliver(action)
            except PermanentError as error:
                self._refused(action, error.message)
            except RetryableError as error:
                marker = f"{UNKNOWN}: " if isinstance(error, OutcomeUnknown) else ""
                delay = backoff(attempts, error.retry_after)
                self.store.retry_action(action.id, self.clock.now() + delay, marker + error.message)
                self._count(action, "retry")
                if attempts & (attempts - 1) == 0:  # 1st, 2nd, 4th, 8th... attempt: not every one
                    log.warning(
                        "%s %s for incident %d not delivered (attempt %d), retrying in %.0fs: %s",
                        action.channel,
                        action.operation,
                        action.incident_id,
                        attempts,
                        delay,
                        error.message,
                    )
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.exception("%s %s failed unexpectedly", action.channel, action.operation)
                delay = backoff(attempts, None)
                self.store.retry_action(
                    action.id, self.clock.now() + delay, f"{type(error).__name__}: {error}"
                )
                self._count(action, "retry")
            else:
                self.store.finish_action(
                    action.id, self.clock.now(), changes.changes, changes.skipped
                )
                self._count(action, "skipped" if changes.skipped else "success")

    def _refused(self, action: OutboxAction, message: str) -> None:
        self.store.fail_action(action.id, message)
        self._count(action, "error")
        if action.id not in self._refused_logged:
            self._refused_logged.add(action.id)
            log.error(
                "%s refused %s for incident %d, not retrying until restart or reload: %s",
                action.channel,
                action.operation,
                action.incident_id,
                message,
                extra={"fields": {"event": "delivery_refused", "incident": action.incident_id}},
            )

    def _count(self, action: OutboxAction, result: str) -> None:
        if action.channel == "ticket":
            operation = METRIC_OPERATION.get(action.operation, action.operation)
            self.metrics.ticket_operations.labels(self.backend.name, operation, result).inc()
        elif action.operation == "page":
            pager = action.channel.split(":", 1)[1]
            reason = action.payload["page"]["reason"]
            self.metrics.pages.labels(pager, reason, result).inc()

    # ---- ticket channel --------------------------------------------------------------------

    async def _deliver_ticket(self, action: OutboxAction) -> Outcome:
        incident = self.store.incident(action.incident_id)
        if incident is None:
            raise PermanentError(f"incident {action.incident_id} is not in the store")
        if action.operation == "create":
            return await self._create(action, incident.dedup_key)
        if incident.ticket_id is None:
            # The create before it was refused: wait behind it rather than fail.
            raise RetryableError("the ticket has not been created yet")
        ref = TicketRef(incident.ticket_id, incident.ticket_url)
        if action.operation == "note":
            await self.backend.add_note(ref, action.payload["body"], bool(action.payload["public"]))
        elif action.operation == "status":
            await self.backend.set_status(ref, action.payload["status"])
        else:
            raise PermanentError(f"unknown ticket operation {action.operation}")
        return Outcome()

    async def _create(self, action: OutboxAction, dedup_key: str) -> Outcome:
        maybe_sent = action.attempts > 0 and (action.last_error or IN_FLIGHT).startswith(
            (IN_FLIGHT, UNKNOWN)
        )
        if maybe_sent:
            found = await self.backend.find(dedup_key)
            self.metrics.ticket_operations.labels(self.backend.name, "get", "success").inc()
            if found is not None:
                log.info("found the ticket of incident %d after a lost answer", action.incident_id)
                return Outcome({"ticket_id": found.id, "ticket_url": found.url})
            last = action.last_attempt_at or 0.0
            if self.clock.now() - last < self.reconcile_after:
                raise OutcomeUnknown(
                    f"{self.backend.name}: waiting for its search to confirm that no ticket "
                    f"{dedup_key} exists before creating one",
                    retry_after=max(1.0, last + self.reconcile_after - self.clock.now()),
                )
        draft = TicketDraft(
            **{**action.payload["draft"], "tags": tuple(action.payload["draft"]["tags"])}
        )
        ref = await self.backend.create(draft)
        return Outcome({"ticket_id": ref.id, "ticket_url": ref.url})

    # ---- pager channel ---------------------------------------------------------------------

    async def _deliver_page(self, action: OutboxAction) -> Outcome:
        name = action.channel.split(":", 1)[1]
        pager = self.pagers.get(name)
        if pager is None:
            raise PermanentError(f"pager {name} is no longer configured")
        incident = self.store.incident(action.incident_id)
        if incident is None:
            raise PermanentError(f"incident {action.incident_id} is not in the store")
        if action.operation == "page":
            if action.payload.get("not_before") and incident.status != "open":
                return Outcome(skipped="the incident ended before business hours began")
            fields = {**action.payload["page"], "ticket_url": incident.ticket_url}
            await pager.page(Page(**fields))
            return Outcome()
        if action.operation == "resolve":
            paged = any(
                a.channel == action.channel
                and a.operation == "page"
                and a.state == "done"
                and not a.last_error
                for a in self.store.actions_of(action.incident_id)
            )
            if not paged:
                return Outcome(skipped="never paged for this incident")
            if not pager.supports_resolve:
                return Outcome(skipped=f"{pager.name} has nothing to resolve")
            await pager.resolve(incident.dedup_key, action.payload["summary"])
            return Outcome()
        raise PermanentError(f"unknown pager operation {action.operation}")
