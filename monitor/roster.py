"""The targets this agent probes, and how one comes and goes: every configured target for an
agent alone; in a cluster, those of the slots it holds (``Ownership.here``).

A target that **arrives** (the config names it, or its slot became this agent's) is probed
from the state the store holds for it, never from a guess: in a cluster the previous owner
wrote that state (its writes are fenced, so nothing it does later overwrites it), and the
agent numbers its own writes after the highest stored one. Its open incident is read too.
A target that **leaves** is taken out of the scheduler, its metrics and the agent's memory;
when it is handed over its state is flushed first, when its slot was lost nothing more of it
is written (another agent holds its lease) and what was not yet written is counted as fenced.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from monitor.clock import Clock
from monitor.cluster.ownership import Ownership
from monitor.config import Config, TargetConfig
from monitor.metrics import Metrics
from monitor.policy.incidents import IncidentManager
from monitor.probing import identity_of
from monitor.scheduler import Scheduler
from monitor.state import TargetState
from monitor.statebook import StateBook
from monitor.store import Store

log = logging.getLogger("watchdesk")

# How long a hand-over waits for the probes of the targets it gives away.
HANDOVER_WAIT = 2.0


@dataclass
class Changes:
    """What one ``Roster.apply`` did to the targets probed here."""

    added: int = 0
    changed: int = 0
    removed: int = 0
    unchanged: int = 0
    arrived: list[str] = field(default_factory=list)  # added or changed: brought in afresh

    def __str__(self) -> str:
        return (
            f"{self.added} added, {self.changed} changed, {self.removed} removed, "
            f"{self.unchanged} unchanged"
        )


class Roster:
    def __init__(
        self,
        store: Store,
        book: StateBook,
        metrics: Metrics,
        scheduler: Scheduler,
        incidents: IncidentManager,
        clock: Clock,
        ownership: Ownership,
    ) -> None:
        self.store = store
        self.book = book
        self.metrics = metrics
        self.scheduler = scheduler
        self.incidents = incidents
        self.clock = clock
        self.ownership = ownership
        self.targets: dict[str, TargetConfig] = {}  # every configured target, by name
        # In a cluster: how long a slot can have gone unprobed before this agent takes it
        # (lease_ttl + 2 x lease_renew); the runs missed meanwhile are caught up at once.
        self.catch_up_window: float | None = None
        self.changes = Changes()  # what the last ``apply`` did
        # Called with how many targets left with changes never written (fenced writes).
        self.on_unsaved: Callable[[int], None] = lambda count: None

    def probed(self) -> list[TargetConfig]:
        """The targets this agent probes, in config order."""
        return [t for t in self.targets.values() if self.ownership.here(t.name)]

    def schedule(self) -> None:
        self.scheduler.set_targets(self.probed())

    def _bring_in(
        self, target: TargetConfig, stored: tuple[str, TargetState] | None, write: bool = True
    ) -> None:
        """Into memory and metrics; ``write``: the state goes to the store with the next flush
        (not for one just read from there)."""
        identity = identity_of(target)
        if self.book.identities.get(target.name) != identity:
            keep = stored is not None and stored[0] == identity
            self.book.states[target.name] = stored[1] if keep and stored else TargetState()
            self.book.identities[target.name] = identity
            if write or not keep:
                self.book.touch(target.name)
        self.metrics.add_target(target)
        state = self.book.states[target.name]
        self.metrics.set_up(target.name, state.status)
        self.metrics.set_consecutive_failures(target.name, state.consecutive_failures)

    async def apply(self, config: Config, stored: dict[str, tuple[str, TargetState]]) -> None:
        """Follow a config: everything in memory first, with no await between (a probe
        finishing meanwhile sees either the old targets or the new ones); then the store.

        In proportion to what changed: a target equal to the one it replaces keeps the very
        object (so the scheduler's ``is`` check keeps its entry), its state, its series and
        their counters, untouched. ``changes`` says what this call did; the targets brought
        in (``changes.arrived``) are the ones ``settle`` needs to look at after a reload."""
        previous = self.targets
        wanted: dict[str, TargetConfig] = {}
        changes = Changes()
        removed = [name for name in previous if name not in config.by_name]
        for name in removed:
            self.metrics.remove_target(name)
            self.book.forget(name)
        for target in config.targets:
            name = target.name
            old = previous.get(name)
            if not self.ownership.here(name):
                wanted[name] = target
                if name in self.book.states:  # its slot moved with the new config
                    self.metrics.remove_target(name)
                    self.book.forget(name)
                continue
            if old is not None and name in self.book.states and (old is target or old == target):
                wanted[name] = old
                changes.unchanged += 1
                continue
            wanted[name] = target
            changes.changed += old is not None and name in self.book.states
            self._bring_in(target, stored.get(name))
            changes.arrived.append(name)
        changes.added = len(changes.arrived) - changes.changed
        changes.removed = len(removed)
        self.targets = wanted
        self.changes = changes
        self.schedule()
        now = self.clock.now()
        if removed:
            await self.store.forget(removed, now)
        await self.store.mark_seen(wanted, now)

    async def settle(self, names: Sequence[str] | None = None) -> None:
        """Start from what the store's incidents say, never from a guess: see
        ``IncidentManager.settle``. Written through at once."""
        for name in list(self.book.states) if names is None else names:
            state = self.book.states.get(name)
            if state is None:
                continue
            settled = self.incidents.settle(name, state)
            if settled is None:
                continue
            log.info(
                "%s starts %s (stored state was %s; the store's incidents say otherwise)",
                name,
                settled.status,
                state.status,
            )
            self.book.states[name] = settled
            self.metrics.set_up(name, settled.status)
            await self.book.write_now(self.book.row(name))

    async def arrive(self, names: Sequence[str]) -> None:
        """Targets whose slot became this agent's: from their stored state and incidents."""
        coming = [n for n in names if n in self.targets and n not in self.book.states]
        if not coming:
            return
        stored = await self.store.load_states(coming)
        await self.book.load()  # number writes after the previous owner's
        for name in coming:
            self._bring_in(self.targets[name], stored.get(name), write=False)
        await self.incidents.adopt(coming)
        await self.settle(coming)
        self.schedule()
        if self.catch_up_window is not None and self.scheduler.started:
            missed = self.scheduler.catch_up(coming, time.time() - self.catch_up_window)
            log.info("%d of %d targets taken over missed a run: probed now", missed, len(coming))

    async def leave(self, names: Sequence[str], flush: bool) -> None:
        """Targets no longer probed here: handed over (``flush``: their state is written
        first, the leases being still this agent's) or lost (nothing more is written)."""
        going = [n for n in names if n in self.book.states]
        if not going:
            return
        self.schedule()
        if flush:
            await self.scheduler.finish(going, HANDOVER_WAIT)
            await self.book.flush()
        unsaved = 0
        for name in going:
            unsaved += self.book.forget(name)
            self.metrics.remove_target(name)
        self.incidents.forget(going)
        if unsaved:
            self.on_unsaved(unsaved)
