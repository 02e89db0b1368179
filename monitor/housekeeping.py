"""The periodic jobs off the probe path, each sized to the durations it serves: the incident
sweep (maintenance ends, parents recover, flapping settles), the support policy's sweep
(escalations, status updates), the helpdesk's auto-close of pending tickets (local) and the
scheduled reports (every few seconds, and once at start-up: a minute missed while the agent
was stopped is caught up)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from monitor.clock import Clock
from monitor.config import Config
from monitor.delivery.integrations import IntegrationsSlot
from monitor.reporting.sender import CHECK_EVERY, ReportScheduler
from ticketing.base import PRIORITIES


def sweep_interval(config: Config) -> float:
    """How often the housekeeping sweeps run: every 5 s, or often enough that the policy's
    shortest duration (ack timeout, poll, status update) is met to within a quarter of it."""
    escalation = config.escalation
    timeouts = [escalation.ack_timeout_for(p) for p in PRIORITIES]
    shortest = min(escalation.poll_interval, escalation.status_update_interval, *timeouts)
    return min(5.0, max(0.25, shortest / 4))


def auto_close_every(integrations: IntegrationsSlot) -> float:
    """Every 10 minutes, or a quarter of the helpdesk's auto-close delay when that is shorter
    (``auto_close_after = "2s"`` closes in seconds)."""
    after = getattr(integrations.current.backend, "auto_close_after", None)
    return 600.0 if after is None else min(600.0, max(0.25, after / 4))


class Housekeeping:
    def __init__(
        self,
        integrations: IntegrationsSlot,
        clock: Clock,
        incident_sweep: Callable[[], Awaitable[None]],
        policy_sweep: Callable[[], Awaitable[None]],
        reports: ReportScheduler,
    ) -> None:
        self.integrations = integrations
        self.clock = clock
        self.scheduler = AsyncIOScheduler(timezone="UTC")
        self._incident_sweep = incident_sweep
        self._policy_sweep = policy_sweep
        self.reports = reports

    def start(self, config: Config) -> None:
        every = sweep_interval(config)
        self.scheduler.add_job(
            self._incident_sweep, "interval", seconds=every, id="incidents", max_instances=1
        )
        self.scheduler.add_job(
            self._policy_sweep, "interval", seconds=every, id="policy", max_instances=1
        )
        self.scheduler.add_job(
            self.auto_close,
            "interval",
            seconds=auto_close_every(self.integrations),
            id="auto-close",
            max_instances=1,
            next_run_time=datetime.now(UTC),
        )
        self.scheduler.add_job(
            self.reports.tick,
            "interval",
            seconds=CHECK_EVERY,
            id="reports",
            max_instances=1,
            next_run_time=datetime.now(UTC),
        )
        self.scheduler.start()

    def resize(self, config: Config) -> None:
        """After a reload: the jobs follow the new durations."""
        if not self.scheduler.running:
            return
        every = sweep_interval(config)
        for job in ("incidents", "policy"):
            self.scheduler.reschedule_job(job, trigger="interval", seconds=every)
        self.scheduler.reschedule_job(
            "auto-close", trigger="interval", seconds=auto_close_every(self.integrations)
        )

    async def auto_close(self) -> None:
        """The helpdesk in force closes its pending tickets, if it keeps them itself (local):
        in a worker thread, off the event loop."""
        sweep = getattr(self.integrations.current.backend, "sweep", None)
        if sweep is not None:
            await asyncio.to_thread(sweep, self.clock.now())

    async def stop(self) -> None:
        """Stop the jobs; a report being mailed gets 2 s to finish."""
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        await self.reports.stop(grace=2.0)
