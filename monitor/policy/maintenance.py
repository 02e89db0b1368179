"""Is a target inside a maintenance window at a given moment?"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from monitor.config import MaintenanceWindow, TargetConfig

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def covers(window: MaintenanceWindow, target: TargetConfig) -> bool:
    return target.name in window.targets or any(tag in window.tags for tag in target.tags)


def active(window: MaintenanceWindow, at: float, zone: ZoneInfo) -> bool:
    if not window.weekly:
        assert isinstance(window.start, datetime)
        assert isinstance(window.end, datetime)
        return window.start.timestamp() <= at < window.end.timestamp()
    assert isinstance(window.start, time)
    assert isinstance(window.end, time)
    local = datetime.fromtimestamp(at, zone)
    # A weekly window may cross midnight ("sat 22:00" to "02:00"): check today's and
    # yesterday's start.
    for days_back in (0, 1):
        day = local - timedelta(days=days_back)
        if WEEKDAYS[day.weekday()] not in window.days:
            continue
        start = datetime.combine(day.date(), window.start, zone)
        end = datetime.combine(day.date(), window.end, zone)
        if end <= start:
            end += timedelta(days=1)
        if start <= local < end:
            return True
    return False


def window_for(
    target: TargetConfig, windows: tuple[MaintenanceWindow, ...], at: float, zone: ZoneInfo
) -> MaintenanceWindow | None:
    for window in windows:
        if covers(window, target) and active(window, at, zone):
            return window
    return None


def spans(
    window: MaintenanceWindow, low: float, high: float, zone: ZoneInfo
) -> list[tuple[float, float]]:
    """The parts of ``[low, high)`` the window is active in, in order (a weekly window once per
    week, crossing midnight where it does): what reports leave out of uptime."""
    if not window.weekly:
        assert isinstance(window.start, datetime)
        assert isinstance(window.end, datetime)
        start, end = window.start.timestamp(), window.end.timestamp()
        return [(max(start, low), min(end, high))] if start < high and end > low else []
    assert isinstance(window.start, time)
    assert isinstance(window.end, time)
    found: list[tuple[float, float]] = []
    day = datetime.fromtimestamp(low, zone).date() - timedelta(days=1)
    last = datetime.fromtimestamp(high, zone).date()
    while day <= last:
        if WEEKDAYS[day.weekday()] in window.days:
            start_at = datetime.combine(day, window.start, zone)
            end_at = datetime.combine(day, window.end, zone)
            if end_at <= start_at:
                end_at = datetime.combine(day + timedelta(days=1), window.end, zone)
            start, end = start_at.timestamp(), end_at.timestamp()
            if start < high and end > low:
                found.append((max(start, low), min(end, high)))
        day += timedelta(days=1)
    return found


def target_spans(
    target: TargetConfig,
    windows: tuple[MaintenanceWindow, ...],
    low: float,
    high: float,
    zone: ZoneInfo,
) -> list[tuple[float, float]]:
    """Every window of ``target`` over ``[low, high)``, overlaps merged."""
    found = sorted(
        span
        for window in windows
        if covers(window, target)
        for span in spans(window, low, high, zone)
    )
    merged: list[tuple[float, float]] = []
    for start, end in found:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged
