"""The consecutive-failure state machine, pure: no I/O, no clock reads (time comes in as ``at``).

Like Nagios' soft and hard states: a target turns ``down`` on the probe that makes
``failure_threshold`` consecutive failures and ``up`` again after ``recovery_threshold``
consecutive successes. Until its first verdict a target is ``unknown``; its first success is a
verdict (``up``), while failures must reach the threshold before they are one (``down``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

Status = Literal["unknown", "up", "down"]


@dataclass(frozen=True, slots=True)
class TargetState:
    status: Status = "unknown"
    consecutive_failures: int = 0
    consecutive_successes: int = 0
    # Start of the current failing streak: where downtime is counted from.
    first_failure_at: float | None = None
    # When ``status`` last changed (None while unknown).
    since: float | None = None
    last_checked_at: float | None = None
    last_ok: bool | None = None
    last_reason: str = ""
    last_duration: float = 0.0


@dataclass(frozen=True, slots=True)
class Transition:
    previous: Status
    current: Status
    at: float
    # For a transition to down: when the failing streak began (the outage's real start).
    first_failure_at: float | None
    consecutive_failures: int
    reason: str


def advance(
    state: TargetState,
    ok: bool,
    reason: str,
    at: float,
    failure_threshold: int,
    recovery_threshold: int,
    duration: float = 0.0,
) -> tuple[TargetState, Transition | None]:
    """Fold one probe result into the state; return the new state and the transition, if any."""
    if ok:
        successes = state.consecutive_successes + 1
        next_state = replace(
            state,
            consecutive_failures=0,
            consecutive_successes=successes,
            first_failure_at=None if state.status != "down" else state.first_failure_at,
            last_checked_at=at,
            last_ok=True,
            last_reason=reason,
            last_duration=duration,
        )
        turns_up = state.status == "unknown" or (
            state.status == "down" and successes >= recovery_threshold
        )
        if not turns_up:
            return next_state, None
        transition = Transition(
            state.status, "up", at, state.first_failure_at, state.consecutive_failures, reason
        )
        return replace(next_state, status="up", since=at, first_failure_at=None), transition

    failures = state.consecutive_failures + 1
    streak_start = state.first_failure_at if state.consecutive_failures else at
    if state.status == "down" and state.first_failure_at is not None:
        streak_start = state.first_failure_at
    next_state = replace(
        state,
        consecutive_failures=failures,
        consecutive_successes=0,
        first_failure_at=streak_start,
        last_checked_at=at,
        last_ok=False,
        last_reason=reason,
        last_duration=duration,
    )
    if state.status == "down" or failures < failure_threshold:
        return next_state, None
    transition = Transition(state.status, "down", at, streak_start, failures, reason)
    return replace(next_state, status="down", since=at), transition


class States(dict[str, TargetState]):
    """name -> the target's live state, knowing which targets are down without a walk.

    The periodic sweep must visit the targets whose incident may need a decision (down ones
    among them), and at 50,000 targets a walk over every state per sweep is the cliff; so
    ``down`` is kept as states are stored. Assign (``states[name] = state``) and ``del``
    only: ``update``/``setdefault`` would bypass the index.
    """

    def __init__(self) -> None:
        super().__init__()
        self.down: set[str] = set()

    def __setitem__(self, name: str, state: TargetState) -> None:
        super().__setitem__(name, state)
        if state.status == "down":
            self.down.add(name)
        else:
            self.down.discard(name)

    def __delitem__(self, name: str) -> None:
        super().__delitem__(name)
        self.down.discard(name)
