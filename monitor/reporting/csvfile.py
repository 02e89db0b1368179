"""The CSV attachment of a scheduled report: one row per target per local day of the period,
for spreadsheets.

Columns: ``date`` (local, in the report's zone), ``target``, ``customer``, ``uptime_percent``
(empty: no data that day), ``downtime_seconds`` and ``maintenance_seconds`` (inside windows,
not counted as down), ``measured_seconds`` (the day's time the uptime is over: configured,
outside maintenance), ``incidents`` (opened that day).
"""

from __future__ import annotations

import csv
import io
from zoneinfo import ZoneInfo

from monitor.reporting.figures import Report, daily
from monitor.reporting.timelines import local_days

DAILY_COLUMNS = (
    "date",
    "target",
    "customer",
    "uptime_percent",
    "downtime_seconds",
    "maintenance_seconds",
    "measured_seconds",
    "incidents",
)


def daily_csv(report: Report) -> str:
    days = local_days(report.since, report.until, ZoneInfo(report.zone))
    reported = {row.target for row in report.targets}
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(DAILY_COLUMNS)
    for line in report.timelines:
        if line.target not in reported:
            continue
        for figure in daily(line, days):
            writer.writerow(
                [
                    figure.day.isoformat(),
                    line.target,
                    line.customer or "",
                    "" if figure.uptime_percent is None else f"{figure.uptime_percent:.4f}",
                    f"{figure.downtime_seconds:.0f}",
                    f"{figure.maintenance_seconds:.0f}",
                    f"{figure.observed_seconds:.0f}",
                    figure.incidents,
                ]
            )
    return out.getvalue()
