"""The value types config.toml is written in: durations ("30s", "off", one per priority) and
clock times ("08:30")."""

from __future__ import annotations

import re
from datetime import time
from typing import Annotated, Any

from pydantic import (
    BeforeValidator,
)

from monitor.durations import parse_duration
from ticketing.base import PRIORITIES


def duration(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, str):
        raise ValueError('write durations as strings with a unit, like "30s", "5m" or "250ms"')
    seconds = parse_duration(value)
    if seconds <= 0:
        raise ValueError(f'"{value}" is not positive; a duration must be longer than 0')
    return seconds


Duration = Annotated[float, BeforeValidator(duration)]


def _duration_or_zero(value: Any) -> float:
    if value in ("0", "0s", "0ms"):
        return 0.0
    return duration(value)


# A duration where "0s" means "none at all" (a helpdesk whose search shows a ticket at once).
DurationOrZero = Annotated[float, BeforeValidator(_duration_or_zero)]


def _duration_or_off(value: Any) -> float:
    if value == "off":
        return 0.0
    return duration(value)


# A duration, or "off" (0.0): something that may not happen at all.
DurationOrOff = Annotated[float, BeforeValidator(_duration_or_off)]


def _duration_per_priority(value: Any) -> float | dict[str, float]:
    if not isinstance(value, dict):
        return duration(value)
    parsed: dict[str, float] = {}
    for priority, text in value.items():
        if priority not in PRIORITIES:
            raise ValueError(f'unknown priority "{priority}"; one of: {", ".join(PRIORITIES)}')
        try:
            parsed[priority] = duration(text)
        except ValueError as exc:
            raise ValueError(f"{priority}: {exc}") from None
    return parsed


# One duration for every priority, or a table like { urgent = "1h", high = "4h" }.
DurationPerPriority = Annotated[float | dict[str, float], BeforeValidator(_duration_per_priority)]


def clock_time(value: Any) -> time:
    if not isinstance(value, str) or not re.fullmatch(r"\d{1,2}:\d{2}", value):
        raise ValueError('write times of day as "HH:MM", like "08:00"')
    hours, minutes = (int(part) for part in value.split(":"))
    if hours == 24 and minutes == 0:
        return time(23, 59, 59, 999999)
    if hours > 23 or minutes > 59:
        raise ValueError(f'"{value}" is not a time of day')
    return time(hours, minutes)


ClockTime = Annotated[time, BeforeValidator(clock_time)]
