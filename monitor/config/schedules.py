"""The sections about time: maintenance windows and business calendars."""

from __future__ import annotations

import zoneinfo
from datetime import date, datetime
from typing import Any

from monitor.calendar import WEEKDAYS, Calendar, weekday_spans
from monitor.config.diagnostics import Collector
from monitor.config.model import (
    DEFAULT_CALENDAR,
    BusinessHoursSection,
    MaintenanceSection,
    MaintenanceWindow,
)
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
