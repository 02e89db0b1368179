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
