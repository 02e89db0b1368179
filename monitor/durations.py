"""Durations written as strings in the config: "250ms", "30s", "5m", "1h", "7d", or "1h30m"."""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

from checks.base import format_duration

__all__ = ["format_duration", "format_local", "parse_duration"]

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")


def parse_duration(text: str) -> float:
    """Return the duration in seconds; raise ValueError with a message a person can act on."""
    cleaned = text.strip().lower().replace(" ", "")
    if not cleaned:
        raise ValueError('empty duration; write it like "30s", "5m", "1h" or "250ms"')
    position = 0
    total = 0.0
    for match in _PART.finditer(cleaned):
        if match.start() != position:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        position = match.end()
    if position != len(cleaned):
        raise ValueError(
            f'"{text}" is not a duration; write it like "30s", "5m", "1h", "7d" or "250ms"'
        )
    return total


def format_local(timestamp: float, zone: ZoneInfo) -> str:
    """A moment as people read it in the agent's time zone: "2026-11-24 10:00:00 EST"."""
    return datetime.fromtimestamp(timestamp, zone).strftime("%Y-%m-%d %H:%M:%S %Z")
