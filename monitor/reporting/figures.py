"""The figures of a report over a period, per target, per customer, per priority and per tier:
what ``watchdesk report`` prints and the scheduled ``[[reports]]`` mail.

- Uptime per target over the part of the period it was configured, maintenance left out (and
  shown as its own figure); each outage counted from its first failed check to the recovery
  verdict, across agent restarts.
- MTTA (open to first worked: assigned, status changed, acknowledged) and MTTR (open to
  recovered) of the incidents opened in the period.
- Response and resolution compliance per priority, each incident against the SLA in force when
  it happened (stored with it, see ``monitor.policy.timeliness``), in that SLA's clock
  (business or calendar hours). An incident still inside a target at the end of the period is
  not judged on it yet.
- Incidents per escalation tier reached.
- A storm (many targets, one incident) is an incident of each of its targets, judged and counted
  once in the compliance and tier figures (in a customer's report too: they had a ticket).
- With ``bars``: each target's uptime day by day over the last ``bars`` days (the HTML's bars).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from zoneinfo import ZoneInfo

from monitor.config import Config
from monitor.policy.timeliness import targets_of
from monitor.reporting.timelines import (
    Measure,
    ReportData,
    Timeline,
    in_scope,
    last_days,
    timelines,
)
from monitor.store import Incident
from ticketing.base import PRIORITIES


@dataclass
class TargetReport:
    target: str
    customer: str | None
    observed_seconds: float  # measured: configured, outside maintenance
    downtime_seconds: float
    longest_downtime_seconds: float
    incidents: int
    escalations: int
    mtta_seconds: float | None
    mttr_seconds: float | None
    # False when the store holds no verdict on the target before the period ended: nothing to
    # compute an uptime from ("no data", never 100%).
    has_data: bool = True
    maintenance_seconds: float = 0.0

    @property
    def uptime_percent(self) -> float | None:
        return Measure(
            self.observed_seconds,
            self.downtime_seconds,
            self.maintenance_seconds,
            self.longest_downtime_seconds,
            self.has_data,
        ).uptime_percent


@dataclass
class SlaCompliance:
    priority: str
    # The targets of the latest incident judged (each incident is judged against its own).
    response_time_seconds: float
    incidents: int = 0
    within: int = 0
    resolution_time_seconds: float = 0.0
    resolution_incidents: int = 0
    resolution_within: int = 0
    # Every distinct target the incidents were judged against, shortest first.
    response_targets: list[float] = field(default_factory=list)
    resolution_targets: list[float] = field(default_factory=list)

    @property
    def percent(self) -> float | None:
        return None if self.incidents == 0 else 100.0 * self.within / self.incidents

    @property
    def resolution_percent(self) -> float | None:
        if self.resolution_incidents == 0:
            return None
        return 100.0 * self.resolution_within / self.resolution_incidents


@dataclass
class CustomerReport:
    customer: str
    targets: int
    uptime_percent: float | None
    downtime_seconds: float
    incidents: int
    escalations: int
    maintenance_seconds: float = 0.0


@dataclass
class TierCount:
    """Incidents of the period by the escalation tier they reached."""

    tier: str
    incidents: int = 0
    worked: int = 0
    resolved: int = 0


@dataclass
class DayFigure:
    day: date
    uptime_percent: float | None
    downtime_seconds: float
    maintenance_seconds: float
    observed_seconds: float
    incidents: int


@dataclass
class Report:
    since: float
    until: float
    targets: list[TargetReport] = field(default_factory=list)
    customers: list[CustomerReport] = field(default_factory=list)
    sla: list[SlaCompliance] = field(default_factory=list)
    tiers: list[TierCount] = field(default_factory=list)
    zone: str = "UTC"
    customer: str | None = None  # the one customer reported on; None: all
    # target -> its last days, oldest first (when asked for bars).
    bars: dict[str, list[DayFigure]] = field(default_factory=dict)
    timelines: list[Timeline] = field(default_factory=list)


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def build_report(
    data: ReportData,
    config: Config,
    since: float,
    until: float,
    zone: ZoneInfo | None = None,
    customer: str | None = None,
    bars: int = 0,
) -> Report:
    zone = zone or ZoneInfo(config.agent.timezone)
    days = last_days(until, bars, zone) if bars else []
    earliest = min([since, *(start for _, start, _ in days)])
    report = Report(since=since, until=until, zone=str(zone), customer=customer)
    report.timelines = timelines(data, config, earliest, until, zone, customer)
    sla: dict[str, SlaCompliance] = {}
    tiers: dict[str, TierCount] = {}
    counted: set[int] = set()
    for line in report.timelines:
        low, high = line.span(since, until)
        if high <= low:
            continue
        measure = line.measure(since, until)
        own = [i for i in line.incidents if since <= i.opened_at < until]
        report.targets.append(
            TargetReport(
                target=line.target,
                customer=line.customer,
                observed_seconds=measure.observed,
                downtime_seconds=measure.downtime,
                longest_downtime_seconds=measure.longest,
                incidents=len(own),
                escalations=sum(1 for i in own if i.escalated_at is not None),
                mtta_seconds=_mean(
                    [i.worked_at - i.opened_at for i in own if i.worked_at is not None]
                ),
                mttr_seconds=_mean(
                    [i.resolved_at - i.opened_at for i in own if i.resolved_at is not None]
                ),
                has_data=measure.has_data,
                maintenance_seconds=measure.maintenance,
            )
        )
        for incident in own:
            # A storm is in each of its targets' lines: judged and counted once.
            if in_scope(incident, customer) and incident.id not in counted:
                counted.add(incident.id)
                _judge(config, incident, until, sla)
                _count_tier(incident, tiers)
        if days:
            report.bars[line.target] = daily(line, days)
    order: dict[str, int] = {p: n for n, p in enumerate(PRIORITIES)}
    judged = [e for e in sla.values() if e.incidents or e.resolution_incidents]
    report.sla = sorted(judged, key=lambda e: order.get(e.priority, len(order)))
    report.tiers = [tiers[name] for name in sorted(tiers)]
    report.customers = _customers(report.targets)
    return report


def _judge(config: Config, incident: Incident, until: float, sla: dict[str, SlaCompliance]) -> None:
    """One incident's response and resolution against the targets it was opened under, none
    of the time its ticket waited on the customer counted (as for the breach counters)."""
    targets = targets_of(config, incident)
    entry = sla.setdefault(incident.priority, SlaCompliance(incident.priority, targets.response))
    answered = incident.worked_at if incident.worked_at is not None else incident.resolved_at
    due = targets.response_due(incident.opened_at, incident.pauses)
    if answered is not None or until >= due:
        entry.response_time_seconds = targets.response
        entry.response_targets = sorted({*entry.response_targets, targets.response})
        entry.incidents += 1
        entry.within += answered is not None and answered <= due
    resolved = incident.resolved_at
    due = targets.resolution_due(incident.opened_at, incident.pauses)
    if resolved is not None or until >= due:
        entry.resolution_time_seconds = targets.resolution
        entry.resolution_targets = sorted({*entry.resolution_targets, targets.resolution})
        entry.resolution_incidents += 1
        entry.resolution_within += resolved is not None and resolved <= due


def _count_tier(incident: Incident, tiers: dict[str, TierCount]) -> None:
    entry = tiers.setdefault(incident.tier, TierCount(incident.tier))
    entry.incidents += 1
    entry.worked += incident.worked_at is not None
    entry.resolved += incident.resolved_at is not None


def daily(line: Timeline, days: list[tuple[date, float, float]]) -> list[DayFigure]:
    """The target's figures for each of ``days``."""
    figures = []
    for day, start, end in days:
        measure = line.measure(start, end)
        figures.append(
            DayFigure(
                day=day,
                uptime_percent=measure.uptime_percent,
                downtime_seconds=measure.downtime,
                maintenance_seconds=measure.maintenance,
                observed_seconds=measure.observed,
                incidents=sum(1 for i in line.incidents if start <= i.opened_at < end),
            )
        )
    return figures


def _customers(rows: list[TargetReport]) -> list[CustomerReport]:
    by_customer: dict[str, list[TargetReport]] = {}
    for row in rows:
        if row.customer:
            by_customer.setdefault(row.customer, []).append(row)
    found = []
    for customer, own in sorted(by_customer.items()):
        measured = [r for r in own if r.has_data]
        observed = sum(r.observed_seconds for r in measured)
        downtime = sum(r.downtime_seconds for r in measured)
        uptime = None if not measured else 100.0 * (1 - downtime / observed) if observed else 100.0
        found.append(
            CustomerReport(
                customer=customer,
                targets=len(own),
                uptime_percent=uptime,
                downtime_seconds=downtime,
                incidents=sum(r.incidents for r in own),
                escalations=sum(r.escalations for r in own),
                maintenance_seconds=sum(r.maintenance_seconds for r in own),
            )
        )
    return found
