"""A report as HTML: each target's last 30 days as a row of daily uptime bars (inline SVG,
because people would rather look than read), then the period's tables.

A bar's colour says its day's uptime, maintenance left out: green at 100%, amber from 99% (a
quarter of an hour down in a day is below it), red below, grey when there is nothing to
measure (no verdict yet, not configured that day, or maintenance all day). Each bar carries
its date and figure as a tooltip (``<title>``). The page is one file with no external
resource, so it renders the same in a mail client, a browser or from ``--html FILE``.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from monitor.reporting.figures import DayFigure, Report
from monitor.reporting.schedule import period_label
from monitor.reporting.text import percent, share, span, targets_text

BAR_DAYS = 30
BAR_WIDTH, BAR_GAP, BAR_HEIGHT = 12, 3, 36
GREEN, AMBER, RED, GREY = "#2da44e", "#f5a623", "#cf222e", "#afb8c1"
AMBER_FROM = 99.0
LEGEND = (
    ("100%", GREEN),
    (f"{AMBER_FROM:g}% or more", AMBER),
    (f"below {AMBER_FROM:g}%", RED),
    ("no data", GREY),
)

_ENVIRONMENT = Environment(
    loader=FileSystemLoader(str(Path(__file__).parent / "templates")),
    autoescape=select_autoescape(["html", "j2"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def colour(uptime: float | None) -> str:
    if uptime is None:
        return GREY
    if uptime >= 100.0:
        return GREEN
    return AMBER if uptime >= AMBER_FROM else RED


def _bar(index: int, figure: DayFigure) -> dict[str, Any]:
    if figure.uptime_percent is not None:
        label = f"{figure.uptime_percent:.2f}% up"
        if figure.downtime_seconds:
            label += f", down {span(figure.downtime_seconds)}"
    elif figure.maintenance_seconds:
        label = "maintenance all day"
    else:
        label = "no data"
    if figure.maintenance_seconds and figure.uptime_percent is not None:
        label += f", maintenance {span(figure.maintenance_seconds)}"
    return {
        "x": index * (BAR_WIDTH + BAR_GAP),
        "day": figure.day.isoformat(),
        "colour": colour(figure.uptime_percent),
        "label": label,
    }


def render_html(report: Report, title: str, generated_at: float) -> str:
    zone = ZoneInfo(report.zone)
    uptime = {row.target: row.uptime_percent for row in report.targets}
    rows = [
        {
            "target": target,
            "bars": [_bar(i, figure) for i, figure in enumerate(figures)],
            "uptime": percent(uptime.get(target)),
        }
        for target, figures in report.bars.items()
    ]
    days = [figure.day for figures in report.bars.values() for figure in figures]
    template = _ENVIRONMENT.get_template("report.html.j2")
    return template.render(
        title=title,
        period=period_label((report.since, report.until), zone),
        zone=report.zone,
        customer=report.customer,
        days=BAR_DAYS,
        rows=rows,
        first_day=min(days).isoformat() if days else "",
        last_day=max(days).isoformat() if days else "",
        svg_width=BAR_DAYS * (BAR_WIDTH + BAR_GAP) - BAR_GAP,
        bar_width=BAR_WIDTH,
        bar_height=BAR_HEIGHT,
        legend=LEGEND,
        targets=[
            {
                "target": r.target,
                "customer": r.customer or "-",
                "uptime": percent(r.uptime_percent),
                "downtime": span(r.downtime_seconds),
                "maintenance": span(r.maintenance_seconds),
                "longest": span(r.longest_downtime_seconds),
                "incidents": r.incidents,
                "escalations": r.escalations,
                "mtta": span(r.mtta_seconds),
                "mttr": span(r.mttr_seconds),
            }
            for r in report.targets
        ],
        customers=[
            {
                "customer": c.customer,
                "targets": c.targets,
                "uptime": percent(c.uptime_percent),
                "downtime": span(c.downtime_seconds),
                "maintenance": span(c.maintenance_seconds),
                "incidents": c.incidents,
                "escalations": c.escalations,
            }
            for c in report.customers
        ],
        sla=[
            {
                "priority": s.priority,
                "response_target": targets_text(s.response_targets),
                "incidents": s.incidents,
                "within": s.within,
                "response": share(s.percent),
                "resolution_target": targets_text(s.resolution_targets),
                "resolution_incidents": s.resolution_incidents,
                "resolution_within": s.resolution_within,
                "resolution": share(s.resolution_percent),
            }
            for s in report.sla
        ],
        tiers=report.tiers,
        generated=f"{datetime.fromtimestamp(generated_at, zone):%Y-%m-%d %H:%M %Z}",
    )
