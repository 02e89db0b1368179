"""Scheduled reports going out: the agent's job (``ReportScheduler.tick``, run by the
housekeeping every few seconds on the agent's clock) and ``watchdesk report --send NAME``.

Once per scheduled minute, across restarts: each tick looks at every report's latest
scheduled minute at or before now; the send of that report for that period is claimed in the
store before the mail leaves (``monitor.store.reports``), so a second tick, a restart at
08:00:30 or another agent on the same store finds it taken and sends nothing. An agent that was
stopped at the minute finds it unclaimed when it starts and sends it then, once (catch-up); it
catches up only minutes since the report was first configured, so a new ``[[reports]]`` entry
does not mail last month's report at once. A send that fails gives its claim back and is
tried again after a backoff (1 minute, doubling, at most an hour).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from monitor.clock import Clock
from monitor.config import Config
from monitor.config.reports import ReportSection
from monitor.delivery.integrations import IntegrationsSlot, build_pager
from monitor.errors import SecretError
from monitor.metrics import Metrics
from monitor.reporting.figures import build_report
from monitor.reporting.html import BAR_DAYS
from monitor.reporting.mail import Composed, compose
from monitor.reporting.schedule import latest_occurrence, period_label, period_of, zone_of
from monitor.reporting.timelines import ReportData
from monitor.store import Store
from monitor.store.factory import StoreReader
from ticketing.errors import DeliveryError, PermanentError
from ticketing.pagers.base import Pager
from ticketing.pagers.email import EmailPager

log = logging.getLogger("watchdesk.reports")

CHECK_EVERY = 10.0  # seconds between ticks: the mail leaves within the scheduled minute
BACKOFF_FIRST, BACKOFF_MAX = 60.0, 3600.0


@dataclass(frozen=True)
class Due:
    """A report's latest scheduled minute and the period it covers."""

    section: ReportSection
    scheduled_at: float
    period: tuple[float, float]
    label: str

    @property
    def key(self) -> tuple[str, float, float]:
        return (self.section.name, *self.period)


def due(config: Config, section: ReportSection, now: float) -> Due:
    zone = zone_of(config, section)
    occurrence = latest_occurrence(section, zone, now)
    period = period_of(section, occurrence)
    return Due(section, occurrence.timestamp(), period, period_label(period, zone))


def produce(config: Config, item: Due, data: ReportData, pager: EmailPager, now: float) -> Composed:
    """The report's figures and mail (CPU work: the agent runs it in a worker thread)."""
    section = item.section
    start, end = item.period
    zone = zone_of(config, section)
    report = build_report(data, config, start, end, zone, section.customer, bars=BAR_DAYS)
    return compose(section, report, item.label, pager.settings, now)


def _label(config: Config, name: str, start: float, end: float) -> str:
    section = next((s for s in config.reports if s.name == name), None)
    zone = zone_of(config, section) if section else ZoneInfo(config.agent.timezone)
    return period_label((start, end), zone)


def email_pager(pager: Pager | None, name: str) -> EmailPager:
    if not isinstance(pager, EmailPager):
        raise PermanentError(f'pager "{name}" is not an email pager of this config')
    return pager


class ReportScheduler:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        config: Callable[[], Config],
        integrations: IntegrationsSlot,
        metrics: Metrics,
    ) -> None:
        self.store = store
        self.clock = clock
        self._config = config
        self.integrations = integrations
        self.metrics = metrics
        self._lock = asyncio.Lock()
        self._settled = False
        self._since: dict[str, float] = {}
        # Sends claimed or judged out (before the report existed): nothing more to do.
        self._done: set[tuple[str, float, float]] = set()
        self._failures: dict[tuple[str, float, float], tuple[int, float]] = {}

    async def tick(self) -> None:
        """Send every report whose latest scheduled minute has not been sent yet."""
        async with self._lock:
            if not self._settled:
                for claim in await self.store.settle_report_claims():
                    log.warning(
                        "report %s for %s may not have been sent: the agent stopped while "
                        "sending it; it is not sent again (watchdesk report --send %s sends it)",
                        claim.report,
                        _label(self._config(), claim.report, claim.period_start, claim.period_end),
                        claim.report,
                    )
                self._settled = True
            config = self._config()
            for section in config.reports:
                item = due(config, section, self.clock.now())
                failures, retry_at = self._failures.get(item.key, (0, 0.0))
                if item.key in self._done or self.clock.now() < retry_at:
                    continue
                await self._maybe_send(config, item, failures)

    async def _maybe_send(self, config: Config, item: Due, failures: int) -> None:
        name = item.section.name
        now = self.clock.now()
        if name not in self._since:
            self._since[name] = await self.store.report_known_since(name, now)
        if item.scheduled_at < self._since[name] or not await self.store.claim_report(
            name, item.period, item.scheduled_at, now
        ):
            self._done.add(item.key)  # from before the report existed, or already sent
            return
        try:
            pager = email_pager(self.integrations.current.pagers.get(item.section.pager), name)
            data = await ReportData.fetch(self.store)
            composed = await asyncio.to_thread(produce, config, item, data, pager, now)
            await pager.send(composed.message, list(item.section.recipients))
        except Exception as error:  # whatever failed, the claim goes back: tried again later
            await self.store.release_report(name, item.period)
            delay = min(BACKOFF_MAX, BACKOFF_FIRST * 2**failures)
            self._failures[item.key] = (failures + 1, self.clock.now() + delay)
            self.metrics.reports_sent.labels(name, "failure").inc()
            log.error(
                "report %s for %s not sent: %s; trying again in %.0fs",
                name,
                item.label,
                error.message if isinstance(error, DeliveryError) else repr(error),
                delay,
                exc_info=not isinstance(error, DeliveryError),
                extra={"fields": {"event": "report_failed", "report": name}},
            )
            return
        await self.store.finish_report(name, item.period, self.clock.now(), item.section.recipients)
        self._done.add(item.key)
        self._failures.pop(item.key, None)
        self.metrics.reports_sent.labels(name, "success").inc()
        log.info(
            "report %s for %s sent to %s",
            name,
            item.label,
            ", ".join(item.section.recipients),
            extra={"fields": {"event": "report_sent", "report": name}},
        )

    async def stop(self, grace: float) -> None:
        """Let a send in flight finish for up to ``grace`` seconds; one still going then keeps
        its claim, which the next start reports as possibly not sent."""
        try:
            async with asyncio.timeout(grace), self._lock:
                pass
        except TimeoutError:
            log.warning("stopping while a report is being sent; it may not arrive")


@dataclass(frozen=True)
class Outcome:
    label: str
    recipients: tuple[str, ...]
    html: str
    error: str | None = None


async def send_now(config: Config, name: str, store: StoreReader, now: float) -> Outcome:
    """``watchdesk report --send NAME``: the report over its latest period, mailed now (again,
    if the agent sent it already); a period the agent has not sent is marked sent, so that it
    does not go twice."""
    section = next(s for s in config.reports if s.name == name)
    item = due(config, section, now)
    recipients = tuple(section.recipients)
    try:
        built = build_pager(config, section.pager)
    except SecretError as error:
        return Outcome(item.label, recipients, "", f"pagers.{section.pager}: {error}")
    html = ""
    try:
        pager = email_pager(built, section.pager)
        composed = produce(config, item, ReportData.read(store), pager, now)
        html = composed.html
        claimed = store.claim_report(name, item.period, item.scheduled_at, now)
        try:
            await pager.send(composed.message, list(recipients))
        except DeliveryError:
            if claimed:
                store.release_report(name, item.period)
            raise
        if claimed:
            store.finish_report(name, item.period, now, list(recipients))
        return Outcome(item.label, recipients, html)
    except DeliveryError as error:
        return Outcome(item.label, recipients, html, error.message)
    finally:
        await built.aclose()
