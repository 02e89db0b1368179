"""The quorum of vantages: what the verdicts of several vantages on one target decide.

A pure function of the rows the store read (under the target's advisory lock, in the
transaction that would open the incident), so that the store, the policy and ``watchdesk
explain`` judge with the same words:

- a vantage **counts** while it is live (an agent of it heartbeats) and not impaired (its
  canaries' alert is not open); the others' verdicts are shown, never counted;
- **open** when at least ``needed`` counting vantages said down within ``window``;
- fewer counting vantages than ``needed`` (**degraded**): "all_live" opens when every counting
  one says down and the earliest of them has been down for ``degraded_delay``; "hold" opens
  nothing (and says so);
- **resolve** when more than half of the counting vantages say up (a vantage with no verdict
  row never saw the target down: it says up);
- **partial** (``partial_after`` set: ``partial = "ticket"``): not confirmed, yet at least one
  counting vantage has said down for ``partial_after`` (from the earliest ``since`` of the
  fresh downs): a lower-priority ticket opens, and it resolves only when no counting vantage
  says down any more (``all_up``), not on a majority: most vantages said up all along.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from monitor.actions import Action
from monitor.store.base import BuildActions
from monitor.store.records import Incident

Degraded = Literal["all_live", "hold"]


@dataclass(frozen=True)
class VantageVerdict:
    """One vantage's word on a target, and whether it counts."""

    vantage: str
    down: bool
    since: float | None
    said_at: float | None
    reason: str
    live: bool
    impaired: bool

    @property
    def counts(self) -> bool:
        return self.live and not self.impaired

    def as_json(self) -> dict[str, Any]:
        return {
            "vantage": self.vantage,
            "verdict": "down" if self.down else "up",
            "since": self.since,
            "said_at": self.said_at,
            "reason": self.reason,
            "live": self.live,
            "impaired": self.impaired,
            "counts": self.counts,
        }


@dataclass(frozen=True)
class Rules:
    """What a target needs (``[confirmation]`` with the target's own ``min_vantages``)."""

    needed: int
    window: float
    degraded: Degraded
    degraded_delay: float
    # partial = "ticket": how long a down from fewer vantages than needed lasts before its
    # lower-priority ticket opens; None: partial = "ignore".
    partial_after: float | None = None


@dataclass(frozen=True)
class Tally:
    """The verdicts on one target, judged at ``now`` by ``rules``."""

    verdicts: tuple[VantageVerdict, ...]
    rules: Rules
    now: float

    @property
    def counting(self) -> list[VantageVerdict]:
        return [v for v in self.verdicts if v.counts]

    @property
    def down(self) -> list[VantageVerdict]:
        """The counting vantages whose "down" is recent enough."""
        fresh = self.now - self.rules.window
        return [v for v in self.counting if v.down and (v.said_at or 0.0) >= fresh]

    @property
    def up(self) -> list[VantageVerdict]:
        return [v for v in self.counting if not v.down]

    def confirmed(self) -> bool:
        down, counting = self.down, self.counting
        if len(counting) >= self.rules.needed:
            return len(down) >= self.rules.needed
        if self.rules.degraded == "hold" or not counting or len(down) < len(counting):
            return False
        earliest = min(v.since or self.now for v in down)
        return self.now - earliest >= self.rules.degraded_delay

    def recovered(self) -> bool:
        """A majority of the counting vantages say up (none counting: nobody objects)."""
        counting = self.counting
        return not counting or 2 * len(self.up) > len(counting)

    def all_up(self) -> bool:
        """No counting vantage says down (recently): the end of a partial outage."""
        return not self.down

    def partial_since(self) -> float | None:
        """When the down from some vantages (fewer than needed) began, as far as the fresh
        downs tell: the earliest ``since`` among them; None: not partial (none down, or
        confirmed)."""
        down = self.down
        if not down or self.confirmed():
            return None
        return min(self.now if v.since is None else v.since for v in down)

    def partial_due(self) -> bool:
        """Down from some vantages only for ``partial_after``: its partial ticket opens."""
        since, after = self.partial_since(), self.rules.partial_after
        return since is not None and after is not None and self.now - since >= after

    def why(self) -> str:
        """Why the target opens (or not) on these verdicts, in words a person reads."""
        down, counting, needed = self.down, self.counting, self.rules.needed
        seen = ", ".join(v.vantage for v in down) or "none"
        ignored = [v.vantage for v in self.verdicts if not v.counts]
        aside = f"; not counted (dead or impaired): {', '.join(ignored)}" if ignored else ""
        if len(counting) >= needed:
            return f"down from {len(down)} of the {needed} vantages it needs ({seen}){aside}"
        if self.rules.degraded == "hold":
            return (
                f"only {len(counting)} live healthy vantages of the {needed} it needs: "
                f"degraded = hold opens nothing until enough are back (down from {seen}){aside}"
            )
        return (
            f"only {len(counting)} live healthy vantages of the {needed} it needs: every one of "
            f"them must say down for {self.rules.degraded_delay:g}s (down from {seen}){aside}"
        )


@dataclass(frozen=True)
class Decision:
    """What one ask of the quorum did (``PostgresVerdicts.decide``): ``how`` "opened" (the
    incident, confirmed), "partial" (its lower-priority ticket), "raised" (the partial
    incident, now confirmed, at the target's priority), or None (nothing); ``partial``: the
    id of the target's open partial incident after this decision, if it has one."""

    tally: Tally
    incident: Incident | None = None
    how: Literal["opened", "partial", "raised"] | None = None
    partial: int | None = None


# tally -> the incident's fields and ``build``: what opens (confirmed, or the partial ticket).
Plan = Callable[[Tally], tuple[dict[str, Any], BuildActions]]
# (the partial incident, the tally that confirms it, whether it has paged anyone) -> its
# changes and actions as it is raised; pure, runs inside the transaction.
Raise = Callable[[Incident, Tally, bool], tuple[dict[str, Any], list[Action]]]


@dataclass(frozen=True)
class PartialPlans:
    """How a partial outage's incident opens (``partial = "ticket"``) and is raised once the
    quorum is met."""

    open: Plan
    raised: Raise
