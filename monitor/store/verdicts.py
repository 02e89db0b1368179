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
  row never saw the target down: it says up).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

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
