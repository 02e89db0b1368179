"""Delivers ticket (and page) actions from the store's outbox, and loses none of them.

Every action was written to the store before anything was tried. The worker takes the ones
that are due, oldest first, never two of the same incident and channel out of order (create
before notes before the status change; a page before its resolve).

Exactly once where the service lets us, at least once where it does not:

- A create marks itself "may be out there" in the store (``sent_at``) before the request
  leaves. While the mark is set, every attempt asks the helpdesk for a ticket carrying the
  incident's dedup key first, and creates again only when that lookup answers "none" after
  the helpdesk's search lag; errors in between (503, 429, timeouts, a crash) leave the mark.
- PagerDuty and Opsgenie de-duplicate triggers by our dedup key, so a trigger sent again after
  a lost answer pages nobody twice. Email, webhook and apprise have nothing to ask and nothing
  that de-duplicates: after a lost answer (or a crash between sending and recording) the page
  is sent again: at least once. So are notes: a lost answer to a note means the note may
  appear twice, never that it is missing. Status changes are idempotent.

Backoff is per channel (the helpdesk, each pager), not only per action: a channel that fails
(5xx, 429, no answer) is left alone until its backoff ends (``Retry-After`` exactly when the
service sent one, else 1 s doubling up to 15 s), then one action goes as a half-open probe;
when it is answered, the channel's whole backlog is due again at once and drains at the
worker's concurrency, however long each action had been backing off. An action the service
refuses for good is logged once, counted, shown in /readyz, and kept (a restart or reload
gives it another chance).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from monitor.actions import (
    Action,
    AddNote,
    CreateTicket,
    ResolvePage,
    SendPage,
    SetStatus,
    status_delivered,
)
from monitor.clock import Clock
from monitor.delivery.integrations import IntegrationsSlot
from monitor.faults import crash_point
from monitor.metrics import Metrics
from monitor.store import CustomerNotice, Incident, OutboxAction, Store
from ticketing.base import TicketBackend, TicketRef
from ticketing.errors import DeliveryError, OutcomeUnknown, PermanentError, RetryableError
from ticketing.pagers.base import Pager

log = logging.getLogger("watchdesk.outbox")

BACKOFF_BASE = 1.0
# An action's own backoff (its channel answers, the action keeps failing): at most this long.
BACKOFF_CAP = 60.0
# A channel that does not answer is probed again at least this often.
CHANNEL_BACKOFF_CAP = 15.0
UNKNOWN = "outcome unknown"
CHANNEL_REMOVED = "channel removed"
METRIC_OPERATION = {"create": "create", "note": "note", "status": "update", "find": "get"}


@dataclass(frozen=True)
class Outcome:
    """What a delivery achieved: changes to record on the incident, or why it was skipped."""

    changes: dict[str, Any] | None = None
    skipped: str | None = None


class NotYet(Exception):
    """The action must wait for something of ours (its ticket's create, a search lag); says
    nothing about the health of the channel."""

    def __init__(self, reason: str, delay: float) -> None:
        super().__init__(reason)
        self.reason = reason
        self.delay = delay


def backoff(attempts: int, retry_after: float | None, cap: float = BACKOFF_CAP) -> float:
    """Seconds until the next try: the service's Retry-After exactly, else capped exponential
    with jitter (so that many actions do not retry in lockstep)."""
    if retry_after is not None:
        return retry_after
    ceiling = min(cap, BACKOFF_BASE * 2 ** max(0, attempts - 1))
    return random.uniform(ceiling * 0.75, ceiling)


@dataclass
class ChannelHealth:
    """One channel's (the helpdesk's, a pager's) backoff, shared by all its actions."""

    failures: int = 0  # consecutive failed rounds
    until: float = 0.0  # nothing goes before this
    probing: bool = False  # the half-open probe is in flight


class Outbox:
    def __init__(
        self,
        store: Store,
        integrations: IntegrationsSlot,
        clock: Clock,
        metrics: Metrics,
        concurrency: int = 8,
    ) -> None:
        self.store = store
        self.integrations = integrations
        self.clock = clock
        self.metrics = metrics
        self.health: dict[str, ChannelHealth] = {}
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

    @property
    def backend(self) -> TicketBackend:
        return self.integrations.current.backend

    @property
    def pagers(self) -> Mapping[str, Pager]:
        return self.integrations.current.pagers

    @property
    def reconcile_after(self) -> float:
        """How long the helpdesk's search may lag behind a create (Freshdesk: minutes); until
        then "not found" is no proof that a lost create did not happen."""
        return self.integrations.current.search_lag

    def reset_channels(self) -> None:
        """Forget every channel's backoff: a reload replaced the services behind them."""
        self.health.clear()

    async def _run(self) -> None:
        while True:
            try:
                await self.drain()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox pass failed; retrying in a second")
            delay = max(0.0, min(1.0, await self._next_wake() - self.clock.now()))
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=delay)

    def _backing_off(self, now: float) -> list[str]:
        return [
            channel
            for channel, health in self.health.items()
            if health.until > now or health.probing
        ]

    async def _next_wake(self) -> float:
        now = self.clock.now()
        times = [h.until for h in self.health.values() if h.until > now and not h.probing]
        next_at = await self.store.next_action_time(self._backing_off(now))
        if next_at is not None:
            times.append(next_at)
        return min(times, default=now + 1.0)

    async def drain(self) -> int:
        """Deliver every action that is due now; return how many were tried."""
        tried = 0
        while True:
            now = self.clock.now()
            actions = await self.store.due_actions(now, skip_channels=self._backing_off(now))
            batch: list[OutboxAction] = []
            for action in actions:
                health = self.health.get(action.channel)
                if health is not None and health.failures:
                    if health.probing:
                        continue  # one half-open probe per channel at a time
                    health.probing = True
                batch.append(action)
            if not batch:
                break
            tried += len(batch)
            await asyncio.gather(*(self._attempt(action) for action in batch))
        await self._update_pending()
        return tried

    async def _update_pending(self) -> None:
        counts = await self.store.outbox_counts(self.clock.now())
        held = counts.get("held", 0)
        self.metrics.outbox_held.set(held)
        self.metrics.outbox_pending.set(counts.get("pending", 0) - held + counts.get("failed", 0))

    async def _attempt(self, action: OutboxAction) -> None:
        try:
            typed = action.action()
        except (ValueError, KeyError, TypeError) as error:
            await self._refused(
                action, None, f"this watchdesk cannot read the stored action: {error!r}"
            )
            return
        async with self._limit:
            attempts = await self.store.begin_attempt(action.id, self.clock.now())
            try:
                if isinstance(typed, SendPage | ResolvePage):
                    outcome = await self._deliver_page(action, typed)
                else:
                    outcome = await self._deliver_ticket(action, typed)
            except NotYet as wait:
                self._probe_done(action.channel)
                await self.store.retry_action(action.id, self.clock.now() + wait.delay, wait.reason)
            except PermanentError as error:
                await self._answered(action.channel)
                await self._refused(action, typed, error.message)
            except RetryableError as error:
                await self._retry(action, typed, attempts, error)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.exception("%s %s failed unexpectedly", action.channel, action.operation)
                self._probe_done(action.channel)
                await self.store.retry_action(
                    action.id,
                    self.clock.now() + backoff(attempts, None),
                    f"{type(error).__name__}: {error}",
                )
                self._count(action, typed, "retry")
            else:
                await self.store.finish_action(
                    action.id, self.clock.now(), outcome.changes, outcome.skipped
                )
                if action.operation == "create":
                    crash_point("after_answer_stored")
                await self._answered(action.channel)
                self._count(action, typed, "skipped" if outcome.skipped else "success")

    async def _retry(
        self, action: OutboxAction, typed: Action, attempts: int, error: RetryableError
    ) -> None:
        now = self.clock.now()
        channel_until = self._channel_failed(action.channel, error.retry_after, now)
        delay = backoff(attempts, error.retry_after)
        marker = f"{UNKNOWN}: " if isinstance(error, OutcomeUnknown) else ""
        await self.store.retry_action(
            action.id, max(now + delay, channel_until), marker + error.message
        )
        self._count(action, typed, "retry")
        if attempts & (attempts - 1) == 0:  # 1st, 2nd, 4th, 8th... attempt: not every one
            log.warning(
                "%s %s for incident %d not delivered (attempt %d), retrying in %.0fs: %s",
                action.channel,
                action.operation,
                action.incident_id,
                attempts,
                max(delay, channel_until - now),
                error.message,
            )

    def _channel_failed(self, channel: str, retry_after: float | None, now: float) -> float:
        """Back the whole channel off; return until when. Failures of actions that were in
        flight together count as one round."""
        health = self.health.setdefault(channel, ChannelHealth())
        health.probing = False
        if now >= health.until:
            health.failures += 1
            health.until = now + backoff(health.failures, None, CHANNEL_BACKOFF_CAP)
        if retry_after is not None:
            health.until = max(health.until, now + retry_after)
        return health.until

    async def _answered(self, channel: str) -> None:
        """The service answered: if the channel was backing off, its backlog is due now."""
        health = self.health.get(channel)
        if health is None or not health.failures:
            return
        del self.health[channel]
        released = await self.store.release_channel(channel, self.clock.now())
        log.info("%s answers again: %d queued actions go now", channel, released)
        self.notify()

    def _probe_done(self, channel: str) -> None:
        health = self.health.get(channel)
        if health is not None:
            health.probing = False

    async def _refused(self, action: OutboxAction, typed: Action | None, message: str) -> None:
        await self.store.fail_action(action.id, message)
        self._count(action, typed, "error")
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

    def _count(self, action: OutboxAction, typed: Action | None, result: str) -> None:
        """``typed`` is the action read from the row (None: unreadable, so no page reason)."""
        if action.channel == "ticket":
            operation = METRIC_OPERATION.get(action.operation, action.operation)
            self.metrics.ticket_operations.labels(self.backend.name, operation, result).inc()
        elif isinstance(typed, SendPage):
            self.metrics.pages.labels(typed.pager, typed.page.reason, result).inc()

    # ---- ticket channel --------------------------------------------------------------------

    async def _deliver_ticket(
        self, action: OutboxAction, typed: CreateTicket | AddNote | SetStatus
    ) -> Outcome:
        ticket = await self._ticket_of(action, typed.notice)
        if isinstance(typed, CreateTicket):
            return await self._create(action, typed, ticket.dedup_key)
        if ticket.ticket_id is None:
            # The create before it was refused: wait behind it rather than fail.
            raise NotYet("the ticket has not been created yet", 5.0)
        ref = TicketRef(ticket.ticket_id, ticket.ticket_url)
        if isinstance(typed, AddNote):
            await self.backend.add_note(ref, typed.body, typed.public)
            crash_point("after_note_sent")
        else:
            await self.backend.set_status(ref, typed.status)
            crash_point("after_status_sent")
            return Outcome(status_delivered(typed, self.clock.now()))
        return Outcome()

    async def _ticket_of(
        self, action: OutboxAction, notice: str | None
    ) -> Incident | CustomerNotice:
        """What the action's ticket is known by: the incident's own, or a customer's notice."""
        if notice is None:
            incident = await self.store.incident(action.incident_id)
            if incident is None:
                raise PermanentError(f"incident {action.incident_id} is not in the store")
            return incident
        found = await self.store.notice(action.incident_id, notice)
        if found is None:
            raise PermanentError(f"no notice to {notice} of incident {action.incident_id}")
        return found

    async def _create(self, action: OutboxAction, typed: CreateTicket, dedup_key: str) -> Outcome:
        if action.sent_at is not None:
            # A create may be out there: only a lookup's answer decides, whatever came between.
            found = await self.backend.find(dedup_key)
            self.metrics.ticket_operations.labels(self.backend.name, "get", "success").inc()
            if found is not None:
                log.info("found the ticket of incident %d after a lost answer", action.incident_id)
                return Outcome({"ticket_id": found.id, "ticket_url": found.url})
            wait = action.sent_at + self.reconcile_after - self.clock.now()
            if wait > 0:
                raise NotYet(
                    f"{UNKNOWN}: {self.backend.name}: waiting for its search to confirm that no "
                    f"ticket {dedup_key} exists before creating one",
                    max(1.0, wait),
                )
        await self.store.set_sent(action.id, self.clock.now())
        crash_point("before_create_sent")
        try:
            ref = await self.backend.create(typed.draft)
        except OutcomeUnknown:
            raise
        except DeliveryError:
            # Answered with a refusal: this create did not happen, and the lookup before it
            # (if any) said no earlier one did either.
            await self.store.set_sent(action.id, None)
            raise
        crash_point("after_create_sent")
        return Outcome({"ticket_id": ref.id, "ticket_url": ref.url})

    # ---- pager channel ---------------------------------------------------------------------

    async def _deliver_page(self, action: OutboxAction, typed: SendPage | ResolvePage) -> Outcome:
        name = typed.pager
        pager = self.pagers.get(name)
        if pager is None:
            # Kept, never dropped: a reload that configures the pager again delivers it.
            raise NotYet(f"{CHANNEL_REMOVED}: pager {name} is no longer configured", 60.0)
        incident = await self.store.incident(action.incident_id)
        if incident is None:
            raise PermanentError(f"incident {action.incident_id} is not in the store")
        if isinstance(typed, SendPage):
            if typed.not_before and incident.status != "open":
                return Outcome(skipped="the incident ended before business hours began")
            crash_point("before_page_sent")
            await pager.page(dataclasses.replace(typed.page, ticket_url=incident.ticket_url))
            crash_point("after_page_sent")
            return Outcome()
        paged = any(
            a.channel == action.channel
            and a.operation == "page"
            and a.state == "done"
            and not a.last_error
            for a in await self.store.actions_of(action.incident_id)
        )
        if not paged:
            return Outcome(skipped="never paged for this incident")
        if not pager.supports_resolve:
            return Outcome(skipped=f"{pager.name} has nothing to resolve")
        await pager.resolve(incident.dedup_key, typed.summary)
        crash_point("after_resolve_sent")
        return Outcome()
