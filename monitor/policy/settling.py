"""Where a target starts after a restart (or a reload): the store's incidents are the truth,
never a guess from a stored state alone."""

from __future__ import annotations

import dataclasses

from monitor.state import TargetState
from monitor.store import Incident


def settled(
    state: TargetState, incident: Incident | None, resolved: float | None
) -> TargetState | None:
    """The state a target should start from, given its open ``incident`` and when its latest
    incident was ``resolved``; None if ``state`` stands. An open incident means down until
    fresh probes say otherwise; a stored down that a resolved incident already covers is
    stale, and fresh probes decide afresh."""
    if incident is not None and state.status != "down":
        return dataclasses.replace(
            state,
            status="down",
            since=incident.opened_at,
            first_failure_at=incident.first_failure_at,
            consecutive_successes=0,
        )
    if (
        incident is None
        and state.status == "down"
        and resolved is not None
        and (state.since or 0.0) <= resolved
    ):
        return TargetState()
    return None
