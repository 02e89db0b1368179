"""The sections about time: maintenance windows and business calendars."""

from __future__ import annotations

import zoneinfo
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from monitor.calendar import WEEKDAYS, Calendar, weekday_spans
from monitor.config.diagnostics import Collector
from monitor.config.model import (
    DEFAULT_CALENDAR,
    BusinessHoursSection,
    CustomerSection,
    MaintenanceSection,
    MaintenanceWindow,
)
from monitor.config.reports import ReportSection
from monitor.config.sections import missing_ref
from monitor.config.tomlpos import Path as KeyPath
from monitor.config.types import clock_time


def parse_maintenance(raw: Any, raw_targets: Any, problems: Collector) -> list[MaintenanceWindow]:
    if not isinstance(raw, list):
        problems.add(
            ("maintenance",), "must be an array of tables: write each window as [[maintenance]]"
        )
        return []
    declared = (
        [t for t in raw_targets if isinstance(t, dict)] if isinstance(raw_targets, list) else []
    )
    names = {t["name"] for t in declared if isinstance(t.get("name"), str)}
    tags = {
        tag
        for t in declared
        if isinstance(t.get("tags"), list)
        for tag in t["tags"]
        if isinstance(tag, str)
    }
    windows: list[MaintenanceWindow] = []
    for index, body in enumerate(raw):
        path: KeyPath = ("maintenance", index)
        section = problems.validate(path, MaintenanceSection, body)
        if section is None:
            continue
        if not section.targets and not section.tags:
            problems.add(path, "name the targets or tags this window covers")
        for position, name in enumerate(section.targets):
            if name not in names:
                problems.add(
                    (*path, "targets", position),
                    missing_ref("target", name, names, "a [[targets]] entry"),
                )
        for position, tag in enumerate(section.tags):
            if tag not in tags:
                problems.add((*path, "tags", position), f'no target has the tag "{tag}"')
        window = parse_window(section, path, problems)
        if window is not None:
            windows.append(window)
    return windows


def parse_window(
    section: MaintenanceSection, path: KeyPath, problems: Collector
) -> MaintenanceWindow | None:
    if section.days:
        try:
            start_time, end_time = clock_time(section.start), clock_time(section.end)
        except ValueError as exc:
            problems.add(
                (*path, "start"), f"{exc} (a weekly window, with days, takes times of day)"
            )
            return None
        return MaintenanceWindow(
            tuple(section.targets),
            tuple(section.tags),
            start_time,
            end_time,
            tuple(section.days),
            section.reason,
        )
    parsed: list[datetime] = []
    for key in ("start", "end"):
        value = getattr(section, key)
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            problems.add(
                (*path, key),
                f'"{value}" is not a date-time; write it like "2026-12-01T02:00:00-05:00"',
            )
            continue
        if moment.tzinfo is None:
            problems.add(
                (*path, key),
                f'"{value}" has no UTC offset; write it like "2026-12-01T02:00:00-05:00"',
            )
            continue
        parsed.append(moment)
    if len(parsed) != 2:
        return None
    if parsed[1] <= parsed[0]:
        problems.add((*path, "end"), "must be later than start")
        return None
    return MaintenanceWindow(
        tuple(section.targets), tuple(section.tags), parsed[0], parsed[1], (), section.reason
    )


CALENDAR_KEYS = ("timezone", "holidays")


def parse_calendars(
    raw: Any, timezone: str, business_hours: BusinessHoursSection | None, problems: Collector
) -> dict[str, Calendar]:
    """Every ``[calendars.NAME]`` (``timezone``, ``holidays`` and opening hours per day or range
    of days, e.g. ``mon-fri = "08:00-17:00"``), and "default" from ``[business_hours]``."""
    calendars: dict[str, Calendar] = {}
    if business_hours is not None:
        spans = ((business_hours.start.hour * 60 + business_hours.start.minute,
                  business_hours.end.hour * 60 + business_hours.end.minute),)  # fmt: skip
        calendars[DEFAULT_CALENDAR] = Calendar(
            zoneinfo.ZoneInfo(timezone),
            {WEEKDAYS.index(day): spans for day in business_hours.days},
            frozenset(business_hours.holidays),
        )
    if not isinstance(raw, dict):
        problems.add(("calendars",), "must be tables: [calendars.NAME]")
        return calendars
    for name, body in raw.items():
        path: KeyPath = ("calendars", name)
        if not isinstance(body, dict):
            problems.add(path, "must be a table: [calendars.NAME]")
            continue
        calendar = _calendar(path, body, timezone, problems)
        if calendar is not None:
            calendars[name] = calendar
    return calendars


def _calendar(
    path: KeyPath, body: dict[str, Any], timezone: str, problems: Collector
) -> Calendar | None:
    zone_name = body.get("timezone", timezone)
    try:
        zone = zoneinfo.ZoneInfo(str(zone_name))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        problems.add((*path, "timezone"), f'unknown time zone "{zone_name}"')
        return None
    holidays = body.get("holidays", [])
    if not isinstance(holidays, list) or not all(isinstance(d, date) for d in holidays):
        problems.add((*path, "holidays"), "must be a list of dates, like [2026-12-25]")
        return None
    days = {key: value for key, value in body.items() if key not in CALENDAR_KEYS}
    for key, value in days.items():
        if not isinstance(value, str):
            problems.add((*path, key), 'opening hours are a string, like "08:00-17:00"')
            return None
    try:
        hours = weekday_spans(days)
    except ValueError as exc:
        problems.add(path, str(exc))
        return None
    return Calendar(zone, hours, frozenset(holidays))


def parse_reports(
    raw: Any,
    customers: Mapping[str, CustomerSection],
    calendars: Mapping[str, Calendar],
    pager_types: Mapping[str, str],
    problems: Collector,
) -> list[ReportSection]:
    """Every ``[[reports]]``, with its references to other sections checked."""
    if not isinstance(raw, list):
        problems.add(("reports",), "must be an array of tables: write each report as [[reports]]")
        return []
    reports: list[ReportSection] = []
    first_seen: dict[str, int] = {}
    for index, body in enumerate(raw):
        path: KeyPath = ("reports", index)
        report = problems.validate(path, ReportSection, body)
        if report is None:
            continue
        if report.name in first_seen:
            problems.add(
                (*path, "name"),
                f'duplicate report name "{report.name}" (also reports.{first_seen[report.name]})',
            )
            continue
        first_seen[report.name] = index
        count = len(problems.problems)
        _check_report(path, report, customers, calendars, pager_types, problems)
        if len(problems.problems) == count:
            reports.append(report)
    return reports


def _check_report(
    path: KeyPath,
    report: ReportSection,
    customers: Mapping[str, CustomerSection],
    calendars: Mapping[str, Calendar],
    pager_types: Mapping[str, str],
    problems: Collector,
) -> None:
    if report.day is not None and report.schedule != "monthly":
        problems.add((*path, "day"), 'is for schedule = "monthly"; use weekday for "weekly"')
    if report.weekday is not None and report.schedule != "weekly":
        problems.add((*path, "weekday"), 'is for schedule = "weekly"; use day for "monthly"')
    if report.calendar is not None and report.timezone is not None:
        problems.add(
            (*path, "timezone"), "set calendar or timezone, not both (a calendar has its zone)"
        )
    if report.calendar is not None and report.calendar not in calendars:
        problems.add(
            (*path, "calendar"),
            missing_ref("calendar", report.calendar, calendars, "[calendars.NAME]"),
        )
    if report.customer is not None and report.customer not in customers:
        problems.add(
            (*path, "customer"),
            missing_ref("customer", report.customer, customers, "[customers.NAME]"),
        )
    emails = [name for name, kind in pager_types.items() if kind == "email"]
    if report.pager not in pager_types:
        problems.add(
            (*path, "pager"),
            missing_ref("email pager", report.pager, emails, '[pagers.NAME] with type = "email"'),
        )
    elif pager_types[report.pager] != "email":
        problems.add(
            (*path, "pager"),
            f'pager "{report.pager}" is of type {pager_types[report.pager]}; reports are sent '
            "through the SMTP settings of a pager of type email"
            + (f" ({', '.join(sorted(emails))})" if emails else ""),
        )
    if len(set(report.formats)) != len(report.formats):
        problems.add((*path, "formats"), "name each format once")
