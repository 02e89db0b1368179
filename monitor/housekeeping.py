"""The periodic jobs off the probe path, each sized to the durations it serves: the incident
sweep (maintenance ends, parents recover, flapping settles), the support policy's sweep
(escalations, status updates, pauses of the SLA clocks), the follow-up of tickets after
recovery (reopened by a customer's reply, closed after ``auto_close_after`` without one) and
the scheduled reports (every few seconds, and once at start-up: a minute missed while the agent
was stopped is caught up).

In a cluster the incident sweep runs on every agent for the targets it probes, while its
leases are vouched for; the others are singletons: only the agent holding the coordinator
lease runs them, and their writes are fenced by that lease (``as_coordinator``)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from functools import partial

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from monitor.cluster.ownership import Alone, Ownership
from monitor.config import Config
from monitor.reporting.sender import CHECK_EVERY, ReportScheduler
from monitor.store.fence import as_coordinator
from ticketing.base import PRIORITIES

log = logging.getLogger("watchdesk")

STOP_GRACE = 2.0  # seconds a sweep under way, or a report being mailed, gets to finish at stop


def sweep_interval(config: Config) -> float:
    """How often the housekeeping sweeps run: every 5 s, or often enough that the policy's
    shortest duration (ack timeout, poll, status update) is met to within a quarter of it."""
    escalation = config.escalation
    timeouts = [escalation.ack_timeout_for(p) for p in PRIORITIES]
    shortest = min(escalation.poll_interval, escalation.status_update_interval, *timeouts)
    return min(5.0, max(0.25, shortest / 4))


def follow_up_every(config: Config) -> float:
    """The sweeps' pace, or a quarter of ``auto_close_after`` when that is shorter
    (``auto_close_after = "2s"`` closes in seconds). Each ticket is still asked at most every
    ``poll_interval``, and once more when its wait runs out."""
    return min(sweep_interval(config), max(0.25, config.auto_close_after / 4))


class Housekeeping:
    def __init__(
        self,
        incident_sweep: Callable[[], Awaitable[None]],
        policy_sweep: Callable[[], Awaitable[None]],
        follow_up: Callable[[], Awaitable[None]],
        reports: ReportScheduler,
        ownership: Ownership | None = None,
    ) -> None:
        self.scheduler = AsyncIOScheduler(timezone="UTC")
        self.ownership = ownership or Alone()
        self._incident_sweep = incident_sweep
        self._policy_sweep = policy_sweep
        self._follow_up = follow_up
        self.reports = reports
        self._running: set[asyncio.Task[None]] = set()
        self._stopping = False

    async def _when_live(self, name: str, job: Callable[[], Awaitable[None]]) -> None:
        if self.ownership.live():
            await self._run(name, job)

    async def _if_coordinator(self, name: str, job: Callable[[], Awaitable[None]]) -> None:
        if self.ownership.coordinator():
            with as_coordinator():
                await self._run(name, job)

    async def _run(self, name: str, job: Callable[[], Awaitable[None]]) -> None:
        """Run a job where ``stop`` can see it: a sweep cut short by the stop is said so in a
        warning, not reported by apscheduler as a failed job (an ERROR with a traceback)."""
        task = asyncio.current_task()
        assert task is not None
        self._running.add(task)
        try:
            await job()
        except asyncio.CancelledError:
            if not self._stopping:
                raise
            log.warning("the %s was cut short by the stop after %.0f s", name, STOP_GRACE)
        finally:
            self._running.discard(task)

    def start(self, config: Config) -> None:
        every = sweep_interval(config)
        self.scheduler.add_job(
            partial(self._when_live, "incident sweep", self._incident_sweep),
            "interval",
            seconds=every,
            id="incidents",
            name="incident sweep",
            max_instances=1,
        )
        self.scheduler.add_job(
            partial(self._if_coordinator, "policy sweep", self._policy_sweep),
            "interval",
            seconds=every,
            id="policy",
            name="policy sweep",
            max_instances=1,
        )
        self.scheduler.add_job(
            partial(self._if_coordinator, "ticket follow-up", self._follow_up),
            "interval",
            seconds=follow_up_every(config),
            id="follow-up",
            name="ticket follow-up",
            max_instances=1,
            next_run_time=datetime.now(UTC),
        )
        self.scheduler.add_job(
            partial(self._if_coordinator, "scheduled reports", self.reports.tick),
            "interval",
            seconds=CHECK_EVERY,
            id="reports",
            name="scheduled reports",
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
            "follow-up", trigger="interval", seconds=follow_up_every(config)
        )

    async def stop(self) -> None:
        """Stop the jobs. A sweep under way (it may be writing a ticket's escalation) and a
        report being mailed get ``STOP_GRACE`` to finish; what is still running then is
        cancelled."""
        if self.scheduler.running:
            self._stopping = True
            self.scheduler.pause()
            if self._running:
                await asyncio.wait(set(self._running), timeout=STOP_GRACE)
            self.scheduler.shutdown(wait=False)
        await self.reports.stop(grace=STOP_GRACE)
