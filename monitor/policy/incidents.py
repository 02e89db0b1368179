"""The incident lifecycle: one outage, one incident, one ticket, kept current until it ends.

The manager compares what should be (a target down, not in maintenance, no parent down: an
open incident; a target back up: none) with what the store holds, and queues the ticket
actions that close the gap. It runs on every state transition and on a periodic sweep, so
outages that became visible later (a maintenance window ended, a parent came back while its
child is still down, a restart) are handled by the same rule. Everything it decides is written
to the store, incident and actions together, before the outbox tries any of it; when a state
transition causes it, the transition is in the same transaction (see ``monitor.store``).

After a restart it never guesses: the open incidents in the store are the truth, and only
results of probes run since the start (``on_result``) may open an incident.

Its decisions await the store, so they are serialised: one lock (``decisions``, shared with the
support policy) around every transition (one that decides nothing is stored after it, with
others at once), sweep and child reconcile, and a target whose transition is on its way
(``expect_transition``) is left to that transition by the others.
So a transition and a sweep never open two incidents or resolve one twice, and ``_open`` is
what the store holds.

Whether a down target opens an incident, waits, or goes into a storm is the gate's verdict
(``gate``: canaries, storms); how an incident ends is ``recovery``'s.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections import defaultdict, deque
from collections.abc import Callable
from zoneinfo import ZoneInfo

from monitor.clock import Clock
from monitor.config import Config, TargetConfig
from monitor.metrics import Metrics
from monitor.policy.canaries import Canaries
from monitor.policy.confirmation import Confirmation
from monitor.policy.escalation import SupportPolicy
from monitor.policy.gate import OpenRules
from monitor.policy.handover import Handover
from monitor.policy.own_incident import OwnIncident
from monitor.policy.recovery import RecoveryRules
from monitor.policy.reprioritising import priority_change, reconfigured
from monitor.policy.settling import settled
from monitor.policy.shared_outage import SharedOutages
from monitor.policy.storm_telling import WAVE
from monitor.policy.storms import Storms
from monitor.state import States, TargetState, Transition
from monitor.store import Incident, StateRow, Store
from monitor.store.base import Cause
from monitor.store.fence import for_target
from ticketing.base import PRIORITIES

log = logging.getLogger("watchdesk.incidents")


class IncidentManager(OpenRules, RecoveryRules, Handover, OwnIncident):
    def __init__(
        self,
        store: Store,
        clock: Clock,
        metrics: Metrics,
        config: Config,
        states: States,
        notify: Callable[[], None],
    ) -> None:
        self.store, self.clock, self.metrics = store, clock, metrics
        self.config, self.states, self.notify = config, states, notify
        self._zone = ZoneInfo(config.agent.timezone)
        self._open: dict[str, Incident] = {}
        self._failed_checks: dict[str, int] = {}
        self._changes: dict[str, deque[float]] = defaultdict(deque)
        # Targets with a probe result since this agent started: only they may open incidents.
        self._fresh: set[str] = set()
        # target -> when its latest incident was resolved: a "down" from before that is stale.
        self._last_resolved: dict[str, float] = {}
        # Other vantages' incidents held here though this vantage sees the target up.
        self._orphans: set[str] = set()
        self._policy: SupportPolicy | None = None
        self.muted: Callable[[str], bool] = lambda target: False  # set by the operator desk
        self.decisions = asyncio.Lock()
        # target -> transitions of it on their way to ``on_transition``.
        self._expected: dict[str, int] = {}
        self.shared = SharedOutages(store, config, notify)
        self._previous = config  # the config before the last reload: follow_priorities
        self.canaries = Canaries(store, config, states, metrics)
        self.storms = Storms(store, config, states, notify, self.shared)
        self.confirmation = Confirmation(store, config)
        self._targets = config.by_name
        self._position = config.position  # built now, with the config, not in a sweep
        self._waiting: set[str] = set()
        self._due: dict[str, float] = {}
        self._failing: set[str] = set()
        self._wake = asyncio.Event()
        self._timer: asyncio.Task[None] | None = None

    @property
    def policy(self) -> SupportPolicy | None:
        """Set by the agent: adds the pages (and their resolves) to what an incident queues."""
        return self._policy

    @policy.setter
    def policy(self, policy: SupportPolicy | None) -> None:
        self._policy = self.shared.policy = self.storms.policy = self.canaries.policy = policy
        if policy is not None:
            policy.stand_ins = self.storms.stand_ins
            # A priority changed in the helpdesk reaches the open incident here; a shared
            # component's incident stays urgent whatever the helpdesk says.
            policy.reprioritising.changed = self.took_priority
            policy.reprioritising.holds_urgent = self.shared.is_shared

    def set_config(self, config: Config) -> None:
        self.config, self._previous = config, self.config
        self._zone = ZoneInfo(config.agent.timezone)
        self._targets, self._position = config.by_name, config.position
        for gone in [n for n in {*self._waiting, *self._due} if n not in self._targets]:
            self._settled(gone)
        self._failing = {name for name in self._failing if name in self._targets}
        self.shared.set_config(config)
        self.storms.set_config(config)
        self.canaries.set_config(config)
        self.confirmation.set_config(config)

    def _update_open_gauge(self) -> None:
        counts = dict.fromkeys(PRIORITIES, 0)
        for incident in [*self._open.values(), *self.storms.open_incidents()]:
            counts[incident.priority] = counts.get(incident.priority, 0) + 1
        for priority, count in counts.items():
            self.metrics.incidents_open.labels(priority).set(count)

    def open_incident_of(self, target: str) -> Incident | None:
        return self._open.get(target)

    def closed_by_hand(self, target: str, at: float) -> None:
        """A person resolved the target's incident: the down it covers opens no other (a
        storm's: none of its targets still down; the impairment alert: not sent again)."""
        self._open.pop(target, None)
        self._last_resolved[target] = at
        for member in self.storms.closed_by_hand(target):
            self._last_resolved[member] = at
        if target == self.canaries.target:
            self.canaries.closed_by_hand(at)
        self._update_open_gauge()

    def took_priority(self, incident: Incident) -> None:
        """The open incident's priority changed outside a reload (a person, in the helpdesk)."""
        cached = self._open.get(incident.target)
        if cached is not None and cached.id == incident.id:
            self._open[incident.target] = dataclasses.replace(cached, priority=incident.priority)
            self._update_open_gauge()

    async def follow_priorities(self, now: float) -> None:
        """After a reload: open incidents of targets whose *configured* priority changed take
        the new one; requesters are told. The others keep theirs, which a person may have
        changed in the helpdesk: a reload does not undo that. A shared component's stays urgent
        (the sweep raises one that became shared)."""
        for target in reconfigured(self._previous, self.config):
            if self.shared.is_shared(target):
                continue
            async with self.decisions:
                incident = self._open.get(target.name)
                if incident is None or incident.priority == target.priority:
                    continue
                changes, note = priority_change(self.config, target, incident.priority)
                with for_target(target.name):
                    await self.store.update_incident(incident.id, changes, note, now)
                self._open[target.name] = dataclasses.replace(incident, priority=target.priority)
            self._update_open_gauge()
            self.notify()

    def settle(self, name: str, state: TargetState) -> TargetState | None:
        """The state a target starts from (``settling.settled``); None if ``state`` stands, or
        while a transition of it is on its way (that decides)."""
        if self._expected.get(name):
            return None
        covered = name in self._open or name in self.storms.member_of
        self.canaries.settle(name, state, covered)
        return settled(state, self._open.get(name), self._last_resolved.get(name))

    # ---- inputs ----------------------------------------------------------------------------

    def on_result(self, target: str, ok: bool, started_at: float | None = None) -> None:
        """A probe result (of a probe that started at ``started_at``): the target is fresh; a
        failure while an incident is open is counted for the notes and the report."""
        self._fresh.add(target)
        if not ok and target in self._open:
            self._failed_checks[target] = self._failed_checks.get(target, 0) + 1
        if ok and target in self._failing and target in self.canaries.names:
            self._due_now(self._waiting)  # a canary's streak broke: the waiting decide again
        (self._failing.discard if ok else self._failing.add)(target)
        if self.canaries.on_result(target, ok, started_at):
            self._due_now([target])  # it has failed enough fresh probes to open

    def expect_transition(self, name: str) -> None:
        """A transition of ``name`` changed its state and ``on_transition`` follows: until it
        has, sweeps and child reconciles leave the target to it. Called with no await between
        the state change and this call."""
        self._expected[name] = self._expected.get(name, 0) + 1

    async def on_transition(
        self, target: TargetConfig, transition: Transition, state: TargetState, row: StateRow
    ) -> None:
        """Act on a transition; the transition and its state row are stored with what it
        causes, in one transaction (raises StoreError when that transaction failed)."""
        try:
            async with self.decisions:
                with for_target(target.name):
                    unstored = await self._on_transition(target, transition, row)
            if unstored:  # it decided nothing: stored outside the lock, with others at once
                with for_target(target.name):
                    await self.store.record(row, transition)
        finally:
            if (count := self._expected.pop(target.name, 0) - 1) > 0:
                self._expected[target.name] = count

    async def _on_transition(
        self, target: TargetConfig, transition: Transition, row: StateRow
    ) -> bool:  # True: it decided nothing, and the caller stores the transition
        self._changes[target.name].append(transition.at)
        children = self.config.children.get(target.name, ())
        # Children waiting for this parent's verdict have it now (the smaller side is walked).
        if len(children) < len(self._waiting):
            self._due_now(c.name for c in children if c.name in self._waiting)
        else:
            self._due_now(n for n in self._waiting if target.name in self._targets[n].depends_on)
        if not await self._reconcile(target, (row, transition)):
            if not children:
                return True
            await self.store.record(row, transition)  # before the children act on it
        if transition.current == "up":
            # Children that were waiting behind this parent may need incidents of their own now.
            for child in children:
                try:
                    await self._reconcile(child)
                except Exception:
                    log.exception("could not reconcile %s after %s", child.name, target.name)
        return False

    async def sweep(self) -> None:
        """Re-check every target that may need a decision: maintenance ends, parents recover,
        flapping settles, the canaries' view, storms' targets gone from the config, storms'
        customers told."""
        async with self.decisions:
            now = self.clock.now()
            await self.canaries.follow(now, self._fresh, self._uncovered, None)
            await self._adopt_orphans(now)
            for target in self._to_sweep():
                with for_target(target.name):
                    await self._reconcile(target)
                    await self._share(target)
            for name in [n for n in self.storms.member_of if n not in self._targets]:
                await self._leave_storm(name, now, None)
            await self.storms.tell_due(self.clock.now())
            await self.shared.close_leftovers(self._open, self.states, self.clock.now())
            for name in list(self._open):
                if name not in self._targets:
                    log.info(
                        "incident of removed target %s stays open until it is resolved by hand",
                        name,
                    )
            await self._persist_counts()

    def _to_sweep(self) -> list[TargetConfig]:
        """The targets ``_reconcile`` may act on, in the file's order (down, with an incident,
        in a storm, held or arrived at the grouping rule, gated, canaries): any other has
        nothing to decide, so a sweep costs what is going on, not the size of the config."""
        names = self.states.down.union(
            self._open,
            self.storms.member_of,
            self._waiting,
            self._due,
            self.storms.arrived,
            self.canaries.gated,
            self.canaries.names,
        )
        known = [name for name in names if name in self._targets]
        known.sort(key=self._position.__getitem__)
        return [self._targets[name] for name in known]

    async def _persist_counts(self) -> None:
        for name, incident in list(self._open.items()):
            count = self._failed_checks.get(name, incident.failed_checks)
            if count != incident.failed_checks:
                with for_target(name):
                    await self.store.update_incident(incident.id, {"failed_checks": count})
                self._open[name] = dataclasses.replace(incident, failed_checks=count)

    # ---- the rule --------------------------------------------------------------------------

    async def reconcile(self, target: TargetConfig) -> bool:
        """Close the gap between the target's state and its incident (under the lock)."""
        async with self.decisions:
            with for_target(target.name):
                return await self._reconcile(target)

    async def _reconcile(self, target: TargetConfig, cause: Cause | None = None) -> bool:
        """The rule, with the lock held; True when ``cause`` (the transition that brought the
        state) was stored with what that did."""
        name = target.name
        state = self.states.get(name)
        if state is None or (cause is None and self._expected.get(name)):
            return False  # unknown, or its own transition is on the way and decides
        now = self.clock.now()
        stored = False
        back = await self.confirmation.follow(target, state, name in self._open)
        if name in self.canaries.names:
            stored = await self.canaries.follow(now, self._fresh, self._uncovered, cause)
            cause = None if stored else cause
            if stored or cause is not None:
                self._due_now(self._waiting)  # a canary's verdict: the waiting decide again
        if state.status != "down":
            self._settled(name)
            self.storms.depart(name)
            if state.status == "up":
                self.canaries.forget(name)
        incident = self._open.get(name)
        if incident is None and back:
            incident = await self._adopt(name)  # perhaps another vantage's: it may end here
        if incident is None and name in self.storms.member_of:
            if state.status == "up":
                await self._leave_storm(name, state.since or now, cause)
                return stored or cause is not None
            return stored
        if state.status == "down" and incident is None:
            return await self._maybe_open(target, state, now, cause) or stored
        if (
            state.status == "down"
            and incident is not None
            and self.confirmation.is_partial(incident)
        ):
            return await self._recheck_partial(target, state, incident, now, cause) or stored
        if state.status == "up" and incident is not None:
            return await self._maybe_recover(target, state, incident, now, cause) or stored
        return stored

    def _uncovered(self) -> dict[str, TargetState]:
        """Targets with no incident of their own and in no storm."""
        return {
            name: state
            for name, state in self.states.items()
            if name not in self._open and name not in self.storms.member_of
        }

    async def _maybe_open(
        self, target: TargetConfig, state: TargetState, now: float, cause: Cause | None
    ) -> bool:
        name = target.name
        self._settled(name)
        verdict, stored = self.held_back(target, state, now), False
        if verdict is None and self.confirmation.asks(target, now):
            decided = await self._ask_first(target, state, now, cause)
            if decided is not None:
                return decided
            stored, cause = cause is not None, None  # stored with the ask: confirmed
        if verdict is None:
            verdict = self.confirmation.verdict(target, now)
        if verdict is None:
            verdict = self._grouping(target, now, self.storms.arrive(name, now))
        if verdict.action == "affected":
            parent = verdict.parent or ""
            noted = await self.shared.note_affected(self._open.get(parent), target, state, now)
            if noted is not None:
                self._open[parent] = noted
            return stored
        elif verdict.action == "hold":
            self._hold(name, verdict.until or now)
            return stored
        elif verdict.action in ("storm", "join"):
            for member in verdict.members:
                self._settled(member)
            act = self.storms.open if verdict.action == "storm" else self.storms.join
            acted = await act(verdict.group or WAVE, verdict.members, now, cause)
            self._update_open_gauge()
            self._wake.set()  # its customers are told at its next telling
            return acted or stored
        elif verdict.action == "open":
            return await self._open_incident(target, state, now, cause) or stored
        return stored

    async def _leave_storm(self, name: str, at: float, cause: Cause | None) -> None:
        done = await self.storms.leave(name, at, self.clock.now(), cause)
        if done is not None:
            if self.policy is not None:
                self.policy.timeliness.resolved(done, done.resolved_at or at)
            self._last_resolved[done.target] = done.resolved_at or at
            self._update_open_gauge()
        self._wake.set()
        self.notify()
