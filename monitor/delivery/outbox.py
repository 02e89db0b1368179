"""Delivers ticket (and page) actions from the store's outbox, and loses none of them.

Every action was written to the store before anything was tried. The worker takes the ones
that are due, oldest first, never two of the same incident and channel out of order (create
before notes before the status change; a page before its resolve).

What one send does, exactly once where the service lets us: ``monitor.delivery.deliver``.

Backoff is per channel (the helpdesk, each pager), not only per action: a channel that fails
(5xx, 429, no answer) is left alone until its backoff ends (``Retry-After`` exactly when the
service sent one, else 1 s doubling up to 15 s), then one action goes as a half-open probe;
when it is answered, the channel's whole backlog is due again at once and drains at the
worker's concurrency, however long each action had been backing off. An action the service
refuses for good is logged once, counted, shown in /readyz, and kept (a restart or reload
gives it another chance).

Actions are claimed (``Store.claim_actions``), never merely read: at most as many as the worker
runs at once, their attempt counted by the claim. In a cluster every agent runs this worker on
the one queue: a claim has a token and an expiry, so an action goes out from one agent at a
time, in its queue's order, and one whose claimer died is taken over when the claim runs out.
Before each send the worker asks whether it still may: its leases vouched for by its own clock
(``Ownership.live``) and the claim short of its expiry by a margin. A paused or cut-off agent
that wakes up mid-delivery therefore sends nothing (counted as a fenced send), and its late
finish or retry changes nothing (the store checks the token).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from monitor.actions import Action, SendPage
from monitor.clock import Clock
from monitor.cluster.ownership import Alone, Ownership
from monitor.delivery.channels import Channels, backoff
from monitor.delivery.deliver import (
    CHANNEL_REMOVED,
    UNKNOWN,
    Delivery,
    MayNotSend,
    NotYet,
)
from monitor.delivery.integrations import IntegrationsSlot
from monitor.errors import StoreError
from monitor.faults import crash_point
from monitor.metrics import Metrics
from monitor.store import OutboxAction, Store
from monitor.waits import wait_set
from ticketing.base import TicketBackend
from ticketing.errors import OutcomeUnknown, PermanentError, RetryableError

__all__ = ["CHANNEL_REMOVED", "UNKNOWN", "Outbox"]
METRIC_OPERATION = {"create": "create", "note": "note", "status": "update", "find": "get"}

log = logging.getLogger("watchdesk.outbox")


class Outbox:
    def __init__(
        self,
        store: Store,
        integrations: IntegrationsSlot,
        clock: Clock,
        metrics: Metrics,
        concurrency: int = 8,
        ownership: Ownership | None = None,
        claim_ttl: float | None = None,
    ) -> None:
        self.store = store
        self.integrations = integrations
        self.clock = clock
        self.metrics = metrics
        self.channels = Channels()
        self.concurrency = concurrency
        self.ownership = ownership or Alone()
        self.claim_ttl = claim_ttl
        self.delivery = Delivery(store, integrations, clock, metrics, self.ownership, claim_ttl)
        self._wake = asyncio.Event()
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

    def reset_channels(self) -> None:
        """Forget every channel's backoff: a reload replaced the services behind them."""
        self.channels.clear()

    async def _run(self) -> None:
        while True:
            try:
                await self.drain()
            except asyncio.CancelledError:
                raise
            except StoreError as error:
                log.error("outbox pass failed, retrying in a second: %s", error)
            except Exception:
                log.exception("outbox pass failed; retrying in a second")
            try:
                delay = max(0.0, min(1.0, await self._next_wake() - self.clock.now()))
            except StoreError:
                delay = 1.0
            self._wake.clear()
            await wait_set(self._wake, delay)

    async def _next_wake(self) -> float:
        now = self.clock.now()
        times = self.channels.wake_times(now)
        if self.ownership.live():
            next_at = await self.store.next_action_time(self.channels.backing_off(now))
            if next_at is not None:
                times.append(next_at)
        return min(times, default=now + 1.0)

    async def _claim(self) -> list[OutboxAction]:
        """What goes next: due actions of healthy channels, and one probe per channel whose
        backoff is over (claimed, their attempt counted)."""
        now = self.clock.now()
        half_open = self.channels.half_open(now)
        skip = self.channels.backing_off(now) + half_open
        claimed = await self.store.claim_actions(now, self.concurrency, skip, self.claim_ttl)
        for channel in half_open:
            probe = await self.store.claim_actions(now, 1, (), self.claim_ttl, channel)
            if probe:
                self.channels.probing(channel)
                claimed += probe
        at = time.monotonic()
        self.delivery.claimed_at.update((action.id, at) for action in claimed)
        return claimed

    async def drain(self) -> int:
        """Deliver every action that is due now; return how many were tried. Nothing goes
        while the agent's leases are not vouched for (in a cluster)."""
        tried = 0
        while self.ownership.live():
            batch = await self._claim()
            if not batch:
                break
            tried += len(batch)
            await asyncio.gather(*(self._attempt(action) for action in batch))
        if self.ownership.live():
            await self._update_pending()
        return tried

    async def _update_pending(self) -> None:
        counts = await self.store.outbox_counts(self.clock.now())
        held = counts.get("held", 0)
        self.metrics.outbox_held.set(held)
        self.metrics.outbox_pending.set(counts.get("pending", 0) - held + counts.get("failed", 0))

    async def _attempt(self, action: OutboxAction) -> None:
        try:
            await self._attempt_claimed(action)
        except asyncio.CancelledError:
            # Stopping mid-delivery: in a cluster the claim goes back at once, so another agent
            # takes the action now rather than when the claim runs out ("may be out there"
            # stays marked: it reconciles by lookup, as after a crash).
            if action.claim_token is not None and self.ownership.live():
                with contextlib.suppress(Exception):
                    await self.store.retry_action(
                        action.id, self.clock.now(), "stopped mid-delivery", action.claim_token
                    )
            raise
        finally:
            self.delivery.claimed_at.pop(action.id, None)

    async def _attempt_claimed(self, action: OutboxAction) -> None:
        claim = action.claim_token
        try:
            typed = action.action()
        except (ValueError, KeyError, TypeError) as error:
            await self._refused(
                action, None, f"this watchdesk cannot read the stored action: {error!r}"
            )
            return
        attempts = action.attempts
        try:
            outcome = await self.delivery.deliver(action, typed)
        except MayNotSend as why:
            self.channels.probe_done(action.channel)
            await self._not_sent(action, str(why))
        except NotYet as wait:
            self.channels.probe_done(action.channel)
            await self.store.retry_action(
                action.id, self.clock.now() + wait.delay, wait.reason, claim
            )
        except PermanentError as error:
            await self._answered(action.channel)
            await self._refused(action, typed, error.message)
        except RetryableError as error:
            await self._retry(action, typed, attempts, error)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            log.exception("%s %s failed unexpectedly", action.channel, action.operation)
            self.channels.probe_done(action.channel)
            await self.store.retry_action(
                action.id,
                self.clock.now() + backoff(attempts, None),
                f"{type(error).__name__}: {error}",
                claim,
            )
            self._count(action, typed, "retry")
        else:
            if not await self.store.finish_action(
                action.id, self.clock.now(), outcome.changes, outcome.skipped, claim
            ):
                log.warning(
                    "%s %s for incident %d was delivered after its claim was taken over: it "
                    "may go twice",
                    action.channel,
                    action.operation,
                    action.incident_id,
                )
            if action.operation == "create":
                crash_point("after_answer_stored")
            await self._answered(action.channel)
            self._count(action, typed, "skipped" if outcome.skipped else "success")

    async def _not_sent(self, action: OutboxAction, why: str) -> None:
        """A send this agent may no longer make: counted; the claim is given back at once if
        the agent may still write, else it runs out and another agent takes the action over."""
        self.ownership.refused_send()
        log.warning(
            "%s %s for incident %d not sent: %s",
            action.channel,
            action.operation,
            action.incident_id,
            why,
            extra={"fields": {"event": "send_fenced", "incident": action.incident_id}},
        )
        if self.ownership.live():
            await self.store.retry_action(
                action.id, self.clock.now(), f"not sent: {why}", action.claim_token
            )

    async def _retry(
        self, action: OutboxAction, typed: Action, attempts: int, error: RetryableError
    ) -> None:
        now = self.clock.now()
        channel_until = self.channels.failed(action.channel, error.retry_after, now)
        delay = backoff(attempts, error.retry_after)
        marker = f"{UNKNOWN}: " if isinstance(error, OutcomeUnknown) else ""
        await self.store.retry_action(
            action.id, max(now + delay, channel_until), marker + error.message, action.claim_token
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

    async def _answered(self, channel: str) -> None:
        """The service answered: if the channel was backing off, its backlog is due now."""
        if not self.channels.answered(channel):
            return
        released = await self.store.release_channel(channel, self.clock.now())
        log.info("%s answers again: %d queued actions go now", channel, released)
        self.notify()

    async def _refused(self, action: OutboxAction, typed: Action | None, message: str) -> None:
        await self.store.fail_action(action.id, message, action.claim_token)
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
