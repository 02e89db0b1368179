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
support policy) around every transition, sweep and child reconcile, and a target whose
transition is on its way (``expect_transition``) is left to that transition by the others.
So a transition and a sweep never open two incidents or resolve one twice, and ``_open`` is
what the store holds.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections import defaultdict, deque
from collections.abc import Callable, Mapping
from zoneinfo import ZoneInfo

from monitor.actions import Action, AddNote, SetStatus
from monitor.clock import Clock
from monitor.config import Config, TargetConfig
from monitor.durations import format_duration, format_local
from monitor.faults import crash_point
from monitor.metrics import Metrics
from monitor.policy import opening, texts
from monitor.policy.escalation import SupportPolicy
from monitor.policy.maintenance import window_for
from monitor.policy.reprioritising import priority_change, reconfigured
from monitor.policy.settling import settled
from monitor.policy.shared_outage import SharedOutages
from monitor.state import TargetState, Transition
from monitor.store import Incident, StateRow, Store
from ticketing.base import PRIORITIES

log = logging.getLogger("watchdesk.incidents")


# The transition being acted on, with the state row it produced: stored with what it causes.
Cause = tuple[StateRow, Transition]


class IncidentManager:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        metrics: Metrics,
        config: Config,
        states: Mapping[str, TargetState],
        notify: Callable[[], None],
    ) -> None:
        self.store = store
        self.clock = clock
        self.metrics = metrics
        self.config = config
        self.states = states
        self.notify = notify
        self._zone = ZoneInfo(config.agent.timezone)
        self._open: dict[str, Incident] = {}
        self._failed_checks: dict[str, int] = {}
        self._changes: dict[str, deque[float]] = defaultdict(deque)
        # Targets with a probe result since this agent started: only they may open incidents.
        self._fresh: set[str] = set()
        # target -> when its latest incident was resolved: a "down" from before that is stale.
        self._last_resolved: dict[str, float] = {}
        # Set by the agent: adds the pages (and their resolves) to what an incident queues.
        self.policy: SupportPolicy | None = None
        self.muted: Callable[[str], bool] = lambda target: False  # set by the operator desk
        self.decisions = asyncio.Lock()
        # target -> transitions of it on their way to ``on_transition``.
        self._expected: dict[str, int] = {}
        self.shared = SharedOutages(store, config, notify)
        self._previous = config  # the config before the last reload: follow_priorities

    def attach(self, policy: SupportPolicy) -> None:
        """The support policy pages with the incidents, and tells of a priority changed in the
        helpdesk (a shared component's incident stays urgent whatever the helpdesk says)."""
        self.policy = self.shared.policy = policy
        policy.reprioritising.changed = self.took_priority
        policy.reprioritising.holds_urgent = self.shared.is_shared

    def set_config(self, config: Config) -> None:
        self.config, self._previous = config, self.config
        self._zone = ZoneInfo(config.agent.timezone)
        self.shared.set_config(config)

    async def reload_open(self) -> None:
        self._open = {i.target: i for i in await self.store.incidents(open_only=True)}
        self._last_resolved = await self.store.last_resolved()
        self._failed_checks = {name: i.failed_checks for name, i in self._open.items()}
        self._update_open_gauge()

    def _update_open_gauge(self) -> None:
        counts = dict.fromkeys(PRIORITIES, 0)
        for incident in self._open.values():
            counts[incident.priority] = counts.get(incident.priority, 0) + 1
        for priority, count in counts.items():
            self.metrics.incidents_open.labels(priority).set(count)

    def open_incident_of(self, target: str) -> Incident | None:
        return self._open.get(target)

    def closed_by_hand(self, target: str, at: float) -> None:
        """A person resolved the target's incident: the down it covers opens no other."""
        self._open.pop(target, None)
        self._last_resolved[target] = at
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
                await self.store.update_incident(incident.id, changes, note, now)
                self._open[target.name] = dataclasses.replace(incident, priority=target.priority)
            self._update_open_gauge()
            self.notify()

    def settle(self, name: str, state: TargetState) -> TargetState | None:
        """The state a target starts from (``settling.settled``); None if ``state`` stands, or
        while a transition of it is on its way (that decides)."""
        if self._expected.get(name):
            return None
        return settled(state, self._open.get(name), self._last_resolved.get(name))

    # ---- inputs ----------------------------------------------------------------------------

    def on_result(self, target: str, ok: bool) -> None:
        """A probe result: the target is fresh; a failure while an incident is open is counted
        for the notes and the report."""
        self._fresh.add(target)
        if not ok and target in self._open:
            self._failed_checks[target] = self._failed_checks.get(target, 0) + 1

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
                await self._on_transition(target, transition, row)
        finally:
            count = self._expected.pop(target.name, 0) - 1
            if count > 0:
                self._expected[target.name] = count

    async def _on_transition(
        self, target: TargetConfig, transition: Transition, row: StateRow
    ) -> None:
        self._changes[target.name].append(transition.at)
        if not await self._reconcile(target, (row, transition)):
            await self.store.record(row, transition)
        if transition.current == "up":
            # Children that were waiting behind this parent may need incidents of their own now.
            for child in self.config.targets:
                if target.name in child.depends_on:
                    try:
                        await self._reconcile(child)
                    except Exception:
                        log.exception("could not reconcile %s after %s", child.name, target.name)

    async def sweep(self) -> None:
        """Re-check every target: maintenance ends, parents recover, flapping settles."""
        async with self.decisions:
            for target in self.config.targets:
                await self._reconcile(target)
                await self._share(target)
            await self.shared.close_leftovers(self._open, self.states, self.clock.now())
            for name in list(self._open):
                if name not in {t.name for t in self.config.targets}:
                    log.info(
                        "incident of removed target %s stays open until it is resolved by hand",
                        name,
                    )
            await self._persist_counts()

    async def _persist_counts(self) -> None:
        for name, incident in list(self._open.items()):
            count = self._failed_checks.get(name, incident.failed_checks)
            if count != incident.failed_checks:
                await self.store.update_incident(incident.id, {"failed_checks": count})
                self._open[name] = dataclasses.replace(incident, failed_checks=count)

    # ---- the rule --------------------------------------------------------------------------

    async def reconcile(self, target: TargetConfig) -> bool:
        """Close the gap between the target's state and its incident (under the lock)."""
        async with self.decisions:
            return await self._reconcile(target)

    async def _reconcile(self, target: TargetConfig, cause: Cause | None = None) -> bool:
        """The rule, with the lock held; True when ``cause`` (the transition that brought the
        state) was stored with what that did."""
        state = self.states.get(target.name)
        if state is None or (cause is None and self._expected.get(target.name)):
            return False  # unknown, or its own transition is on the way and decides
        incident = self._open.get(target.name)
        now = self.clock.now()
        if state.status == "down" and incident is None:
            return await self._maybe_open(target, state, now, cause)
        if state.status == "up" and incident is not None:
            return await self._maybe_recover(target, state, incident, now, cause)
        return False

    async def _maybe_open(
        self, target: TargetConfig, state: TargetState, now: float, cause: Cause | None
    ) -> bool:
        if target.name not in self._fresh:
            return False  # restored from the store: fresh probes decide
        resolved = self._last_resolved.get(target.name)
        if resolved is not None and (state.since or 0.0) <= resolved:
            return False  # a down that an incident already resolved covers
        if window_for(target, self.config.maintenance, now, self._zone) or self.muted(target.name):
            return False
        parent = self.shared.parent_down(target, self.states)
        if parent is not None:
            noted = await self.shared.note_affected(self._open.get(parent), target, state, now)
            if noted is not None:
                self._open[parent] = noted
            return False
        return await self._open_incident(target, state, now, cause)

    async def _share(self, target: TargetConfig) -> None:
        """A shared component's incident is raised and told to the customers behind it (see
        ``shared_outage``; a failure is logged and left to the next sweep)."""
        if (incident := self._open.get(target.name)) is not None:
            now = self.clock.now()
            self._open[target.name] = current = await self.shared.reconcile(
                target, incident, self._open, now
            )
            if current.priority != incident.priority:
                self._update_open_gauge()

    async def _open_incident(
        self, target: TargetConfig, state: TargetState, now: float, cause: Cause | None
    ) -> bool:
        failed = max(state.consecutive_failures, target.failure_threshold)
        incident_fields, build = opening.plan(
            self.config, target, state, failed, now, self._zone, self.policy
        )
        row, transition = cause if cause is not None else (None, None)
        incident = await self.store.open_incident(incident_fields, build, row, transition)
        crash_point("after_incident_row")
        if incident is None:
            # The store holds an open incident _open did not know: it is the one of this outage.
            for known in await self.store.incidents(open_only=True):
                if known.target == target.name:
                    self._open[target.name] = known
                    self._failed_checks.setdefault(target.name, known.failed_checks)
            return cause is not None
        self._open[target.name] = incident
        self._failed_checks[target.name] = failed
        self.metrics.incidents_opened.labels(target.name, target.priority).inc()
        self._update_open_gauge()
        log.warning(
            "incident %d opened for %s (%s): %s",
            incident.id,
            target.name,
            target.priority,
            state.last_reason,
            extra={
                "fields": {
                    "event": "incident_opened",
                    "incident": incident.id,
                    "target": target.name,
                    "dedup_key": incident.dedup_key,
                }
            },
        )
        self.notify()
        await self._share(target)
        return cause is not None

    async def _maybe_recover(
        self,
        target: TargetConfig,
        state: TargetState,
        incident: Incident,
        now: float,
        cause: Cause | None,
    ) -> bool:
        escalation = self.config.escalation
        changes = self._changes[target.name]
        while changes and changes[0] < now - escalation.flap_window:
            changes.popleft()
        if incident.flapping or len(changes) >= escalation.flap_threshold:
            stable_for = now - (state.since or now)
            if stable_for < escalation.flap_stable_after:
                if not incident.flapping:
                    await self._mark_flapping(target, incident, len(changes), now, cause)
                    return cause is not None
                return False
        await self._recover(target, state, incident, now, cause)
        return cause is not None

    async def _mark_flapping(
        self,
        target: TargetConfig,
        incident: Incident,
        changes: int,
        now: float,
        cause: Cause | None,
    ) -> None:
        escalation = self.config.escalation
        body = texts.flapping_note(
            self.config, incident, changes, escalation.flap_window, escalation.flap_stable_after
        )
        row, transition = cause if cause is not None else (None, None)
        await self.store.update_incident(
            incident.id,
            {"flapping": 1},
            [AddNote(body, public=True)],
            now,
            row,
            transition,
        )
        self._open[target.name] = dataclasses.replace(incident, flapping=True)
        log.warning("%s is flapping; incident %d stays open", target.name, incident.id)
        self.notify()

    async def _recover(
        self,
        target: TargetConfig,
        state: TargetState,
        incident: Incident,
        now: float,
        cause: Cause | None,
    ) -> None:
        # Never before it opened, whatever a state says (an incident cannot end before it began).
        recovered_at = max(state.since or now, incident.opened_at)
        failed = self._failed_checks.get(target.name, incident.failed_checks)
        down_for = max(0.0, recovered_at - incident.first_failure_at)
        body = texts.recovery_note(
            self.config,
            target.customer,
            target.name,
            recovered_at,
            incident.first_failure_at,
            failed,
            state.consecutive_successes,
            resolution=texts.resolution_of(await self.store.incident(incident.id) or incident),
        )
        actions: list[Action] = [AddNote(body, public=True)]
        if self.policy is not None:
            summary = f"{target.name} recovered after {format_duration(down_for)}"
            actions += await self.policy.recover_actions(incident, summary)
        on_recovery = self.config.ticketing.on_recovery
        if on_recovery in ("pending", "resolve"):
            actions.append(SetStatus("pending" if on_recovery == "pending" else "resolved"))
        row, transition = cause if cause is not None else (None, None)
        await self.store.update_incident(
            incident.id,
            {"status": "resolved", "resolved_at": recovered_at, "failed_checks": failed},
            actions,
            now,
            row,
            transition,
        )
        crash_point("after_recovery_committed")
        await self.shared.close(incident, recovered_at, failed, state.consecutive_successes, now)
        if self.policy is not None:
            done = await self.store.incident(incident.id)
            self.policy.timeliness.resolved(done or incident, recovered_at)
        self._last_resolved[target.name] = recovered_at
        del self._open[target.name]
        self._failed_checks.pop(target.name, None)
        self._update_open_gauge()
        log.info(
            "incident %d of %s resolved after %s",
            incident.id,
            target.name,
            format_duration(down_for),
            extra={
                "fields": {
                    "event": "incident_resolved",
                    "incident": incident.id,
                    "target": target.name,
                }
            },
        )
        self.notify()

    def _local(self, timestamp: float) -> str:
        return format_local(timestamp, self._zone)
