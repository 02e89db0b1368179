"""The timestamps helpdesks write, read as epoch seconds.

Freshdesk, Zendesk and GitHub write ``2026-11-24T10:00:00Z``, Jira
``2026-11-24T10:00:00.000+0000``, ServiceNow's Table API ``2026-11-24 10:00:00`` (UTC, without
an offset, unless display values are asked for, which we never do).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def epoch(value: Any) -> float | None:
    """``value`` as epoch seconds; None when it is missing or no timestamp (a helpdesk's odd
    value must not break a poll)."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def iso_utc(at: float) -> str:
    """Epoch seconds as ``2026-11-24T10:00:00Z`` (for ``since`` filters)."""
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def servicenow_utc(at: float) -> str:
    """Epoch seconds as ServiceNow's ``2026-11-24 10:00:00`` (UTC), for encoded queries."""
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S")


def latest(moments: list[float | None], after: float) -> float | None:
    """The latest of ``moments`` strictly after ``after``, if any."""
    found = [m for m in moments if m is not None and m > after]
    return max(found) if found else None
