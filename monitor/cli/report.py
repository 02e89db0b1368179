"""``watchdesk report``: uptime and SLA figures from the store, per target and per customer.

Uptime comes from the state transitions, with each outage counted from its first failed
check (not from the moment the threshold was crossed), and over the part of the period the
target was configured: a target added mid-period is measured from when it was added. The store
keeps state across restarts, so an outage that spans one is one outage.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from monitor.config import DEFAULT_ACK_TIMEOUTS, Config
from monitor.durations import format_duration
from monitor.policy.timeliness import deadline
from monitor.store import Incident, StoredTransition
from monitor.store.factory import StoreReader
from ticketing.base import PRIORITIES

PRIORITY_ORDER = PRIORITIES


@dataclass
class TargetReport:
    target: str
    customer: str | None
    observed_seconds: float
    downtime_seconds: float
    longest_downtime_seconds: float
    incidents: int
    escalations: int
    mtta_seconds: float | None
    mttr_seconds: float | None
    # False when the store holds no verdict on the target before the period ended: nothing to
    # compute an uptime from ("no data", never 100%).
    has_data: bool = True

    @property
    def uptime_percent(self) -> float | None:
        if not self.has_data:
            return None
        if self.observed_seconds <= 0:
            return 100.0
        return max(0.0, 100.0 * (1 - self.downtime_seconds / self.observed_seconds))


@dataclass
class SlaCompliance:
    priority: str
    response_time_seconds: float
    incidents: int = 0
    within: int = 0

    @property
    def percent(self) -> float | None:
        return None if self.incidents == 0 else 100.0 * self.within / self.incidents


@dataclass
class CustomerReport:
    customer: str
    targets: int
    uptime_percent: float | None
    downtime_seconds: float
    incidents: int
    escalations: int


@dataclass
class Report:
    since: float
    until: float
    targets: list[TargetReport] = field(default_factory=list)
    customers: list[CustomerReport] = field(default_factory=list)
    sla: list[SlaCompliance] = field(default_factory=list)


def down_intervals(transitions: list[StoredTransition], until: float) -> list[tuple[float, float]]:
    """Each outage as (first failed check, recovery), the last one open until ``until``."""
    intervals: list[tuple[float, float]] = []
    start: float | None = None
    for transition in transitions:
        if transition.current == "down" and start is None:
            start = transition.first_failure_at or transition.at
        elif transition.current != "down" and start is not None:
            intervals.append((start, transition.at))
            start = None
    if start is not None:
        intervals.append((start, until))
    return intervals


def _clip(
    intervals: list[tuple[float, float]], low: float, high: float
) -> list[tuple[float, float]]:
    return [(max(a, low), min(b, high)) for a, b in intervals if b > low and a < high]


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def response_time(config: Config, customer: str | None, priority: str) -> float:
    """The policy's response time: the customer's SLA ``response_time``, else ``ack_timeout``."""
    sla = config.plan_of(customer)
    if sla is not None and sla.response_time is not None:
        if isinstance(sla.response_time, dict):
            if priority in sla.response_time:
                return sla.response_time[priority]
        else:
            return sla.response_time
    return config.escalation.ack_timeout_for(priority)


def build_report(store: StoreReader, config: Config, since: float, until: float) -> Report:
    report = Report(since=since, until=until)
    seen = store.targets_seen()
    configured = {target.name: target for target in config.targets}
    transitions: dict[str, list[StoredTransition]] = {}
    for transition in store.transitions():
        transitions.setdefault(transition.target, []).append(transition)
    incidents: dict[str, list[Incident]] = {}
    for incident in store.incidents():
        if since <= incident.opened_at < until:
            incidents.setdefault(incident.target, []).append(incident)
    names = sorted(set(configured) | {n for n in transitions if n in seen})
    sla = {p: SlaCompliance(p, DEFAULT_ACK_TIMEOUTS[p]) for p in PRIORITY_ORDER}
    for name in names:
        first, last = seen.get(name, (since, until))
        start = max(since, first)
        end = until if name in configured else min(until, last)
        if end <= start:
            continue
        outages = _clip(down_intervals(transitions.get(name, []), until), start, end)
        lengths = [b - a for a, b in outages]
        own = sorted(incidents.get(name, []), key=lambda i: i.opened_at)
        customer = (
            configured[name].customer if name in configured else (own[0].customer if own else None)
        )
        report.targets.append(
            TargetReport(
                target=name,
                customer=customer,
                observed_seconds=end - start,
                downtime_seconds=sum(lengths),
                longest_downtime_seconds=max(lengths, default=0.0),
                incidents=len(own),
                escalations=sum(1 for i in own if i.escalated_at is not None),
                mtta_seconds=_mean(
                    [i.worked_at - i.opened_at for i in own if i.worked_at is not None]
                ),
                mttr_seconds=_mean(
                    [i.resolved_at - i.opened_at for i in own if i.resolved_at is not None]
                ),
                has_data=any(t.at < end for t in transitions.get(name, [])),
            )
        )
        for incident in own:
            allowed = response_time(config, incident.customer, incident.priority)
            entry = sla.setdefault(incident.priority, SlaCompliance(incident.priority, allowed))
            entry.response_time_seconds = allowed
            answered = (
                incident.worked_at if incident.worked_at is not None else incident.resolved_at
            )
            # On the plan's clock: a business-hours issue opened at night is due in the
            # morning, as the agent's own breach counters judge it.
            policy = config.policy_for(incident.customer, incident.priority)
            due = deadline(policy, incident.opened_at, allowed)
            if answered is None and until < due:
                continue  # still within its response time: not yet judged
            entry.incidents += 1
            if answered is not None and answered <= due:
                entry.within += 1
    report.sla = [entry for entry in sla.values() if entry.incidents]
    by_customer: dict[str, list[TargetReport]] = {}
    for row in report.targets:
        if row.customer:
            by_customer.setdefault(row.customer, []).append(row)
    for customer, rows in sorted(by_customer.items()):
        measured = [r for r in rows if r.has_data]
        observed = sum(r.observed_seconds for r in measured)
        downtime = sum(r.downtime_seconds for r in measured)
        uptime = None if not measured else 100.0 * (1 - downtime / observed) if observed else 100.0
        report.customers.append(
            CustomerReport(
                customer=customer,
                targets=len(rows),
                uptime_percent=uptime,
                downtime_seconds=downtime,
                incidents=sum(r.incidents for r in rows),
                escalations=sum(r.escalations for r in rows),
            )
        )
    return report


# ---- output ----------------------------------------------------------------------------------


def as_json(report: Report) -> str:
    def target(row: TargetReport) -> dict[str, Any]:
        uptime = row.uptime_percent
        return {**asdict(row), "uptime_percent": None if uptime is None else round(uptime, 4)}

    payload = {
        "since": report.since,
        "until": report.until,
        "targets": [target(row) for row in report.targets],
        "customers": [asdict(row) for row in report.customers],
        "sla": [{**asdict(row), "percent": row.percent} for row in report.sla],
    }
    return json.dumps(payload, indent=2)


def as_csv(report: Report) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        [
            "target",
            "customer",
            "uptime_percent",
            "downtime_seconds",
            "longest_downtime_seconds",
            "incidents",
            "escalations",
            "mtta_seconds",
            "mttr_seconds",
        ]
    )
    for row in report.targets:
        writer.writerow(
            [
                row.target,
                row.customer or "",
                "" if row.uptime_percent is None else f"{row.uptime_percent:.4f}",
                f"{row.downtime_seconds:.0f}",
                f"{row.longest_downtime_seconds:.0f}",
                row.incidents,
                row.escalations,
                "" if row.mtta_seconds is None else f"{row.mtta_seconds:.0f}",
                "" if row.mttr_seconds is None else f"{row.mttr_seconds:.0f}",
            ]
        )
    return out.getvalue()


def _percent(value: float | None) -> str:
    return "no data" if value is None else f"{value:.3f}%"


def as_table(report: Report) -> str:
    def when(seconds: float | None) -> str:
        return "-" if seconds is None else format_duration(seconds) if seconds else "0s"

    header = (
        "TARGET",
        "CUSTOMER",
        "UPTIME",
        "DOWNTIME",
        "LONGEST",
        "INCIDENTS",
        "ESCALATIONS",
        "MTTA",
        "MTTR",
    )
    rows = [
        (
            r.target,
            r.customer or "-",
            _percent(r.uptime_percent),
            when(r.downtime_seconds),
            when(r.longest_downtime_seconds),
            str(r.incidents),
            str(r.escalations),
            when(r.mtta_seconds),
            when(r.mttr_seconds),
        )
        for r in report.targets
    ]
    lines = [_columns(header, rows)]
    if report.customers:
        lines.append("")
        lines.append(
            _columns(
                ("CUSTOMER", "TARGETS", "UPTIME", "DOWNTIME", "INCIDENTS", "ESCALATIONS"),
                [
                    (
                        c.customer,
                        str(c.targets),
                        _percent(c.uptime_percent),
                        when(c.downtime_seconds),
                        str(c.incidents),
                        str(c.escalations),
                    )
                    for c in report.customers
                ],
            )
        )
    if report.sla:
        lines.append("")
        lines.append(
            _columns(
                ("PRIORITY", "RESPONSE TIME", "INCIDENTS", "ANSWERED IN TIME", "COMPLIANCE"),
                [
                    (
                        s.priority,
                        format_duration(s.response_time_seconds),
                        str(s.incidents),
                        str(s.within),
                        f"{s.percent:.1f}%" if s.percent is not None else "-",
                    )
                    for s in report.sla
                ],
            )
        )
    return "\n".join(lines)


def _columns(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> str:
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=False)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in (header, *rows)
    )
