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

The quorum is asked before any grouping (``ask``): a target counts for a storm only once its
own down is confirmed, so one vantage seeing many targets fail (its own link) opens no storm
either. A partial outage (``partial = "ticket"``, ``monitor.policy.partial``) is decided in the
same ask: its lower-priority incident opens, and is raised once the quorum is met; while it is
open, the vantages that see the target down keep asking (their "down" stays counted).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol

from monitor.config import Config, TargetConfig
from monitor.policy.verdict import Verdict
from monitor.state import TargetState, Transition
from monitor.store import Incident, StateRow
from monitor.store.records import PARTIAL
from monitor.store.verdicts import Decision, PartialPlans, Plan, Rules, Tally

log = logging.getLogger("watchdesk.incidents")


class VerdictStore(Protocol):
    """What the cluster's store offers (``monitor.store.postgres.verdicts``)."""

    async def say(self, target: str, said: tuple[bool, float, float, str]) -> None: ...

    async def said_down(self) -> list[str]: ...

    async def tally(
        self, target: str, rules: Rules, allowed: Sequence[str], now: float
    ) -> Tally: ...

    async def partials(self) -> set[int]: ...

    async def decide(
        self,
        target: str,
        said: tuple[bool, float, float, str],
        rules: Rules,
        allowed: Sequence[str],
        plan: Plan | None,
        partial: PartialPlans | None,
        state: StateRow | None = None,
        transition: Transition | None = None,
    ) -> Decision: ...


def seen_from(tally: Tally) -> str:
    """The lines a ticket and a page carry: which vantages saw it down, each with its error."""
    lines = [f"- {v.vantage}: {v.reason}" for v in tally.down]
    return f"Seen down from {len(lines)} vantages:\n" + "\n".join(lines)


class Confirmation:
    def __init__(self, store: object, config: Config) -> None:
        # Only the cluster's store keeps verdicts; on SQLite there is one vantage.
        self.store: VerdictStore | None = store if hasattr(store, "decide") else None  # type: ignore[assignment]
        self.set_config(config)
        # target -> the verdict this vantage last said (True: down).
        self._said: dict[str, bool] = {}
        # target -> the last tally asked for it, and when to ask again.
        self.last: dict[str, Tally] = {}
        self._ask_at: dict[str, float] = {}
        # The ids of the open partial incidents (as this agent last heard from the store).
        self.partial_ids: set[int] = set()
        # target -> the latest "down" any vantage said, as of the last ``recovered`` ask.
        self.last_down_at: dict[str, float] = {}
        self._orphans_at = 0.0

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
        after = section.partial_after if section.partial == "ticket" else None
        return Rules(needed, section.window, section.degraded, section.degraded_delay, after)

    def recheck(self, target: TargetConfig) -> float:
        """How often a held down is said again: three times per ``window`` keeps it counted,
        and no more often than the target is probed (a long partial outage costs a write per
        third of a window, not one per probe). The vantage that completes the quorum opens at
        once: this is not the time to confirmation."""
        return max(target.interval, self.section.window / 3)

    def verdict(self, target: TargetConfig, now: float) -> Verdict | None:
        """Hold while the quorum is not known to be met (``watchdesk explain`` reads the same
        words); None: confirmed, or nothing here acts. Whether to ask now is ``asks``."""
        if self.rules(target) is None:
            return None
        tally, ask_at = self.last.get(target.name), self._ask_at.get(target.name, now)
        if tally is None:
            return Verdict("hold", "waiting for confirmation: the vantages not asked yet", now)
        if tally.confirmed():
            return None
        return Verdict("hold", f"waiting for confirmation: {tally.why()}", until=max(now, ask_at))

    def asks(self, target: TargetConfig, now: float) -> bool:
        """Whether to ask the quorum now: never asked in this down period, or asked without
        confirmation and due again."""
        if self.store is None or self.rules(target) is None:
            return False
        tally = self.last.get(target.name)
        if tally is None:
            return True
        return not tally.confirmed() and now >= self._ask_at.get(target.name, now)

    def is_partial(self, incident: Incident) -> bool:
        return incident.kind == PARTIAL or incident.id in self.partial_ids

    async def load(self) -> None:
        """What this vantage said down before (a restart): those it says up when they
        recover; any other target it has never said down, and its "up" is no row at all (a
        healthy target writes nothing)."""
        if self.store is not None and self.config.cluster is not None:
            self._said = dict.fromkeys(await self.store.said_down(), True)
            self.partial_ids = await self.store.partials()

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
            self.settled(target.name)
        said = (down, state.since or 0.0, state.last_checked_at or 0.0, state.last_reason)
        await self.store.say(target.name, said)
        self._said[target.name] = down
        return not down

    async def ask(
        self,
        target: TargetConfig,
        state: TargetState,
        now: float,
        plan: Plan | None,
        partial: PartialPlans | None,
        cause: tuple[StateRow, Transition] | None,
    ) -> Decision:
        """Say down and ask the quorum, in one transaction: open the incident ``plan`` makes
        if it is met (no ``plan``: only ask), the partial incident if that is due, or raise
        the open partial incident."""
        rules = self.rules(target)
        assert self.store is not None
        assert rules is not None
        row, transition = cause if cause is not None else (None, None)
        said = (True, state.since or now, now, state.last_reason)
        decision = await self.store.decide(
            target.name, said, rules, target.vantages, plan, partial, row, transition
        )
        self._said[target.name] = True
        tally = decision.tally
        if decision.incident is not None and decision.how == "raised":
            self.partial_ids.discard(decision.incident.id)
        if decision.partial is not None:
            self.partial_ids.add(decision.partial)
        first = target.name not in self.last
        self.last[target.name] = tally
        self._ask_at[target.name] = self._next_ask(target, tally, now)
        if first and not tally.confirmed():
            log.warning(
                "%s is down from %s, waiting for confirmation: %s",
                target.name,
                self.vantage,
                tally.why(),
                extra={"fields": {"event": "unconfirmed", "target": target.name}},
            )
        if decision.how in ("opened", "raised"):
            self.settled(target.name)
        return decision

    def _next_ask(self, target: TargetConfig, tally: Tally, now: float) -> float:
        """Again after ``recheck``, or when a partial outage's ticket falls due, if sooner."""
        again = now + self.recheck(target)
        since, after = tally.partial_since(), tally.rules.partial_after
        if since is not None and after is not None and since + after > now:
            again = min(again, since + after)
        return again

    def orphans_due(self, now: float) -> bool:
        """Whether to look for other vantages' incidents that nothing here would end (see
        ``OwnIncident._adopt_orphans``): in a cluster, once per third of ``window``."""
        if self.store is None or self.config.cluster is None or now < self._orphans_at:
            return False
        self._orphans_at = now + self.section.window / 3
        return True

    def ask_at(self, name: str, now: float) -> float:
        return self._ask_at.get(name, now)

    def settled(self, name: str) -> None:
        """``name``'s quorum is decided for this down period: nothing held."""
        self.last.pop(name, None)
        self._ask_at.pop(name, None)

    async def recovered(self, target: TargetConfig, incident: Incident, now: float) -> bool:
        """A majority of the live healthy vantages say up (always, when nothing here acts); a
        partial incident's end: none of them says down (most said up all along)."""
        rules = self.rules(target)
        if rules is None or self.store is None:
            return True
        if self.is_partial(incident):
            self.partial_ids = await self.store.partials()  # another vantage may have raised it
        partial = incident.id in self.partial_ids
        tally = await self.store.tally(target.name, rules, target.vantages, now)
        downs = [v.said_at or 0.0 for v in tally.verdicts if v.down]
        self.last_down_at[target.name] = max(downs, default=0.0)
        return tally.all_up() if partial else tally.recovered()

    async def verdicts(self, target: TargetConfig, now: float) -> list[dict[str, Any]] | None:
        """Every vantage's verdict on ``target`` (explain); None: nothing here acts."""
        rules = self.rules(target)
        if rules is None or self.store is None:
            return None
        tally = await self.store.tally(target.name, rules, target.vantages, now)
        return [v.as_json() for v in tally.verdicts]
