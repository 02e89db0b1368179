"""A report as text: a table for people (``watchdesk report``, the mail's plain-text part),
JSON and CSV (one row per target) for scripts and spreadsheets."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from monitor.durations import format_duration
from monitor.reporting.figures import Report, TargetReport

CSV_COLUMNS = (
    "target",
    "customer",
    "uptime_percent",
    "downtime_seconds",
    "longest_downtime_seconds",
    "incidents",
    "escalations",
    "mtta_seconds",
    "mttr_seconds",
    "maintenance_seconds",
)


def as_json(report: Report) -> str:
    def target(row: TargetReport) -> dict[str, Any]:
        uptime = row.uptime_percent
        return {**asdict(row), "uptime_percent": None if uptime is None else round(uptime, 4)}

    payload = {
        "since": report.since,
        "until": report.until,
        "customer": report.customer,
        "targets": [target(row) for row in report.targets],
        "customers": [asdict(row) for row in report.customers],
        "sla": [
            {**asdict(row), "percent": row.percent, "resolution_percent": row.resolution_percent}
            for row in report.sla
        ],
        "tiers": [asdict(row) for row in report.tiers],
    }
    return json.dumps(payload, indent=2)


def _seconds(value: float | None) -> str:
    return "" if value is None else f"{value:.0f}"


def as_csv(report: Report) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for row in report.targets:
        writer.writerow(
            [
                row.target,
                row.customer or "",
                "" if row.uptime_percent is None else f"{row.uptime_percent:.4f}",
                _seconds(row.downtime_seconds),
                _seconds(row.longest_downtime_seconds),
                row.incidents,
                row.escalations,
                _seconds(row.mtta_seconds),
                _seconds(row.mttr_seconds),
                _seconds(row.maintenance_seconds),
            ]
        )
    return out.getvalue()


def percent(value: float | None) -> str:
    return "no data" if value is None else f"{value:.3f}%"


def span(seconds: float | None) -> str:
    return "-" if seconds is None else format_duration(seconds) if seconds else "0s"


def share(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}%"


def targets_text(values: list[float]) -> str:
    return " / ".join(format_duration(v) for v in values) or "-"


def as_table(report: Report) -> str:
    header = (
        "TARGET",
        "CUSTOMER",
        "UPTIME",
        "DOWNTIME",
        "MAINTENANCE",
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
            percent(r.uptime_percent),
            span(r.downtime_seconds),
            span(r.maintenance_seconds),
            span(r.longest_downtime_seconds),
            str(r.incidents),
            str(r.escalations),
            span(r.mtta_seconds),
            span(r.mttr_seconds),
        )
        for r in report.targets
    ]
    lines = [columns(header, rows)]
    if report.customers:
        lines += [
            "",
            columns(
                (
                    "CUSTOMER",
                    "TARGETS",
                    "UPTIME",
                    "DOWNTIME",
                    "MAINTENANCE",
                    "INCIDENTS",
                    "ESCALATIONS",
                ),
                [
                    (
                        c.customer,
                        str(c.targets),
                        percent(c.uptime_percent),
                        span(c.downtime_seconds),
                        span(c.maintenance_seconds),
                        str(c.incidents),
                        str(c.escalations),
                    )
                    for c in report.customers
                ],
            ),
        ]
    if report.sla:
        lines += [
            "",
            columns(
                (
                    "PRIORITY",
                    "RESPONSE TIME",
                    "INCIDENTS",
                    "ANSWERED IN TIME",
                    "COMPLIANCE",
                    "RESOLUTION TIME",
                    "JUDGED",
                    "RESOLVED IN TIME",
                    "COMPLIANCE",
                ),
                [
                    (
                        s.priority,
                        targets_text(s.response_targets),
                        str(s.incidents),
                        str(s.within),
                        share(s.percent),
                        targets_text(s.resolution_targets),
                        str(s.resolution_incidents),
                        str(s.resolution_within),
                        share(s.resolution_percent),
                    )
                    for s in report.sla
                ],
            ),
        ]
    if report.tiers:
        lines += [
            "",
            columns(
                ("TIER", "INCIDENTS", "WORKED", "RESOLVED"),
                [(t.tier, str(t.incidents), str(t.worked), str(t.resolved)) for t in report.tiers],
            ),
        ]
    return "\n".join(lines)


def columns(header: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> str:
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=False)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in (header, *rows)
    )
