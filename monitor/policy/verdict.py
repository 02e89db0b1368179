"""What the rules say about a target that is down and has no incident of its own: open one,
wait, join a storm, or nothing (and why, in words a person reads: ``watchdesk explain``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# open: its own incident now; hold: decide again by ``until``; storm: open a storm incident
# for ``members``; join: they join the open storm ``group``; affected: named on the parent's
# ticket; none: nothing opens, for ``why``.
Action = Literal["open", "hold", "storm", "join", "affected", "none"]


@dataclass(frozen=True)
class Verdict:
    action: Action
    why: str
    until: float | None = None
    group: str | None = None
    members: tuple[str, ...] = ()
    parent: str | None = None
