"""Business hours in the agent's time zone: is it now, and when do they next begin?"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from monitor.config import BusinessHoursSection

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _is_business_day(moment: datetime, hours: BusinessHoursSection) -> bool:
    return WEEKDAYS[moment.weekday()] in hours.days and moment.date() not in hours.holidays


def within(at: float, hours: BusinessHoursSection, zone: ZoneInfo) -> bool:
    local = datetime.fromtimestamp(at, zone)
    if not _is_business_day(local, hours):
        return False
    return hours.start <= local.time() < hours.end


def next_start(at: float, hours: BusinessHoursSection, zone: ZoneInfo) -> float | None:
    """The next moment business hours begin (``at`` itself if they are on now).

    None when no day ever qualifies (no business days configured).
    """
    if within(at, hours, zone):
        return at
    local = datetime.fromtimestamp(at, zone)
    for days_ahead in range(0, 370):
        day = (local + timedelta(days=days_ahead)).date()
        start = datetime.combine(day, hours.start, zone)
        if start.timestamp() <= at:
            continue
        if _is_business_day(start, hours):
            return start.timestamp()
    return None
