"""When a ``[[reports]]`` entry is due and which period it covers, in its zone (its calendar's,
its ``timezone``, else ``agent.timezone``), across daylight-saving changes.

- ``daily`` at ``time``; ``weekly`` on ``weekday`` (default Monday); ``monthly`` on ``day``
  (default 1; a day the month does not have means its last day).
- The period: the calendar ``month``, ``week`` (Monday 00:00 to Monday 00:00) or ``day`` before
  the day it is sent on (by default the one its schedule names), or a duration up to the
  scheduled minute (``period = "30d"``).
"""

from __future__ import annotations

import calendar as months
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from monitor.config import Config
from monitor.config.reports import ReportSection
from monitor.durations import parse_duration

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def zone_of(config: Config, report: ReportSection) -> ZoneInfo:
    if report.calendar is not None:
        return config.calendars[report.calendar].zone
    return ZoneInfo(report.timezone or config.agent.timezone)


def _at(day: date, report: ReportSection, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, report.time, zone)


def _monthly(year: int, month: int, report: ReportSection, zone: ZoneInfo) -> datetime:
    last = months.monthrange(year, month)[1]
    return _at(date(year, month, min(report.day or 1, last)), report, zone)


def latest_occurrence(report: ReportSection, zone: ZoneInfo, now: float) -> datetime:
    """The report's latest scheduled minute at or before ``now``, local."""
    today = datetime.fromtimestamp(now, zone).date()
    if report.schedule == "daily":
        candidate = _at(today, report, zone)
        if candidate.timestamp() > now:
            candidate = _at(today - timedelta(days=1), report, zone)
        return candidate
    if report.schedule == "weekly":
        weekday = WEEKDAYS.index(report.weekday or "mon")
        day = today - timedelta(days=(today.weekday() - weekday) % 7)
        candidate = _at(day, report, zone)
        if candidate.timestamp() > now:
            candidate = _at(day - timedelta(days=7), report, zone)
        return candidate
    candidate = _monthly(today.year, today.month, report, zone)
    if candidate.timestamp() > now:
        year, month = (today.year, today.month - 1) if today.month > 1 else (today.year - 1, 12)
        candidate = _monthly(year, month, report, zone)
    return candidate


def _midnight(day: date, zone: ZoneInfo) -> float:
    return datetime.combine(day, datetime.min.time(), zone).timestamp()


def period_of(report: ReportSection, occurrence: datetime) -> tuple[float, float]:
    """The ``[start, end)`` the report sent at ``occurrence`` covers."""
    zone = occurrence.tzinfo
    assert isinstance(zone, ZoneInfo)
    day = occurrence.date()
    kind = report.period_kind
    if kind == "day":
        return _midnight(day - timedelta(days=1), zone), _midnight(day, zone)
    if kind == "week":
        monday = day - timedelta(days=day.weekday())
        return _midnight(monday - timedelta(days=7), zone), _midnight(monday, zone)
    if kind == "month":
        first = day.replace(day=1)
        previous = (first - timedelta(days=1)).replace(day=1)
        return _midnight(previous, zone), _midnight(first, zone)
    end = occurrence.timestamp()
    return end - parse_duration(kind), end


def period_label(period: tuple[float, float], zone: ZoneInfo) -> str:
    """``2026-11-01 to 2026-11-30`` for whole days, else with the times."""
    start = datetime.fromtimestamp(period[0], zone)
    end = datetime.fromtimestamp(period[1], zone)
    if start.time() == end.time() == datetime.min.time():
        last = end.date() - timedelta(days=1)
        if last == start.date():
            return start.date().isoformat()
        return f"{start.date().isoformat()} to {last.isoformat()}"
    return f"{start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M}"
