"""Confirmation from several vantages: in a cluster, a target's incident opens only when
``min_vantages`` healthy vantages say it is down (``[confirmation]``; the rules are
``monitor.store.verdicts``, counted by the store under the target's advisory lock). Part of
what ``IncidentManager`` asks before it opens an incident of a target's own, and before it
resolves one.

Why: one place probing cannot tell a site that is down from its own link that hiccups, and a
false urgent ticket is one a customer sees. The commercial checkers ask a second location
before they alert; watchdesk asks the other vantages of its cluster through their verdicts.

This vantage says its verdict when it changes (``follow``) and again each time it asks for
the quorum (``open``), which keeps its "down" within ``window`` while it waits; a target
waiting for confirmation is held and asked again every ``recheck`` (a third of the window, at
least its interval). Without a cluster, or with ``min_vantages = 1``, nothing here acts:
the first verdict opens, as on one agent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from monitor.config import Config, TargetConfig
from monitor.policy.verdict import Verdict
from monitor.state import TargetState, Transition
from monitor.store import Incident, StateRow
from monitor.store.base import BuildActions
from monitor.store.verdicts import Rules, Tally

log = logging.getLogger("watchdesk.incidents")

Plan = Callable[[Tally], tuple[dict[str, Any], BuildActions]]


class VerdictStore(Protocol):
    """What the cluster's store offers (``monitor.store.postgres.verdicts``)."""

    async def say(self, target: str, said: tuple[bool, float, float, str]) -> None: ...

    async def said_down(self) -> list[str]: ...

    async def tally(
        self, target: str, rules: Rules, allowed: Sequence[str], now: float
    ) -> Tally: ...

    async def confirm_open(
        self,
        target: str,
        said: tuple[bool, float, float, str],
        rules: Rules,
        allowed: Sequence[str],
        plan: Plan,
        state: StateRow | None = None,
        transition: Transition | None = None,
    ) -> tuple[Incident | None, Tally]: ...


def seen_from(tally: Tally) -> str:
    """The lines a ticket and a page carry: which vantages saw it down, each with its error."""
    lines = [f"- {v.vantage}: {v.reason}" for v in tally.down]
    return f"Seen down from {len(lines)} vantages:\n" + "\n".join(lines)


class Confirmation:
    def __init__(self, store: object, config: Config) -> None:
        # Only the cluster's store keeps verdicts; on SQLite there is one vantage.
        self.store: VerdictStore | None = store if hasattr(store, "confirm_open") else None  # type: ignore[assignment]
        self.set_config(config)
        # target -> the verdict this vantage last said (True: down).
        self._said: dict[str, bool] = {}
        # target -> the last tally asked for it, and when to ask again.
        self.last: dict[str, Tally] = {}
        self._ask_at: dict[str, float] = {}

    def set_config(self, config: Config) -> None:
        self.config = config
        self.section = config.confirmation
        self.vantage = config.cluster.vantage if config.cluster is not None else None

    def rules(self, target: TargetConfig) -> Rules | None:
        """What ``target`` needs; None: one vantage is enough (nothing here acts)."""
        needed = target.min_vantages or self.section.min_vantages
        if self.store is None or self.config.cluster is None or needed <= 1:
            return None
        section = self.section
        return Rules(needed, section.window, section.degraded, section.degraded_delay)

    def recheck(self, target: TargetConfig) -> float:
        """How often a held down is said again: three times per ``window`` keeps it counted,
        and no more often than the target is probed (a long partial outage costs a write per
        third of a window, not one per probe). The vantage that completes the quorum opens at
        once: this is not the time to confirmation."""
        return max(target.interval, self.section.window / 3)

    def verdict(self, target: TargetConfig, now: float) -> Verdict | None:
        """Hold while the last ask was not confirmed and the next is not due (``watchdesk
        explain`` reads the same words); None: ask (or nothing to ask)."""
        tally, ask_at = self.last.get(target.name), self._ask_at.get(target.name)
        if tally is None or ask_at is None or now >= ask_at or tally.confirmed():
            return None
        return Verdict("hold", f"waiting for confirmation: {tally.why()}", until=ask_at)

    async def load(self) -> None:
        """What this vantage said down before (a restart): those it says up when they
        recover; any other target it has never said down, and its "up" is no row at all (a
        healthy target writes nothing)."""
        if self.store is not None and self.config.cluster is not None:
            self._said = dict.fromkeys(await self.store.said_down(), True)

    async def follow(self, target: TargetConfig, state: TargetState, covered: bool) -> bool:
        """Say this vantage's verdict when it changed (a down with no incident is said by
        ``open``, with the quorum); True when it just said up after a down (the incident,
        perhaps another vantage's, may resolve now)."""
        if self.store is None or self.rules(target) is None or state.status == "unknown":
            return False
        down = state.status == "down"
        if self._said.get(target.name, False) == down or (down and not covered):
            return False
        if not down:
            self.last.pop(target.name, None)
            self._ask_at.pop(target.name, None)
        said = (down, state.since or 0.0, state.last_checked_at or 0.0, state.last_reason)
        await self.store.say(target.name, said)
        self._said[target.name] = down
        return not down

    async def open(
        self,
        target: TargetConfig,
        state: TargetState,
        now: float,
        plan: Plan,
        cause: tuple[StateRow, Transition] | None,
    ) -> tuple[Incident | None, Tally]:
        """Say down and open the incident if the quorum is met, in one transaction."""
        rules = self.rules(target)
        assert self.store is not None
        assert rules is not None
        row, transition = cause if cause is not None else (None, None)
        said = (True, state.since or now, now, state.last_reason)
        incident, tally = await self.store.confirm_open(
            target.name, said, rules, target.vantages, plan, row, transition
        )
        self._said[target.name] = True
        if incident is None and not tally.confirmed():
            first = target.name not in self.last
            self.last[target.name] = tally
            self._ask_at[target.name] = now + self.recheck(target)
            if first:
                log.warning(
                    "%s is down from %s, waiting for confirmation: %s",
                    target.name,
                    self.vantage,
                    tally.why(),
                    extra={"fields": {"event": "unconfirmed", "target": target.name}},
                )
        else:
            self.last.pop(target.name, None)
            self._ask_at.pop(target.name, None)
        return incident, tally

    async def recovered(self, target: TargetConfig, now: float) -> bool:
        """A majority of the live healthy vantages say up (always, when nothing here acts)."""
        rules = self.rules(target)
        if rules is None or self.store is None:
            return True
        tally = await self.store.tally(target.name, rules, target.vantages, now)
        return tally.recovered()

    async def verdicts(self, target: TargetConfig, now: float) -> list[dict[str, Any]] | None:
        """Every vantage's verdict on ``target`` (explain); None: nothing here acts."""
        rules = self.rules(target)
        if rules is None or self.store is None:
            return None
        tally = await self.store.tally(target.name, rules, target.vantages, now)
        return [v.as_json() for v in tally.verdicts]
