"""Storms: many targets down at once are one incident, not a ticket each (Alertmanager's
``group_by`` and ``group_wait``, adapted to tickets).

- **A storm**: more than ``storm.threshold`` targets go down within ``storm.window``; or
  targets with the same ``group`` tag go down together. One incident (kind ``storm``, named
  "the outage of many services" or "the outage of group G") holds them all: one ticket per
  affected customer listing their targets (a customer notice, as for a shared component),
  one page with the count and the list, one escalation chain. Targets that join or leave it
  later are notes on the same tickets; it resolves when its last target is up (each ticket
  gets the recovery note, the pagers one resolve).
- **group_wait**: a target that goes down while others are failing too (or that has a group
  tag) waits ``storm.group_wait`` for company before it opens an incident of its own, so the
  first failures of a storm do not open tickets the storm then duplicates. A lone failure
  waits for nothing: only a target that has reason to expect company does, so an outage opens
  its ticket within ``failure_threshold x interval + group_wait`` at most.
- **Batching**: customers are told ``group_wait`` after the first target of the storm went
  down (the ticket lists everything that joined by then), and after that at most once per
  ``group_wait`` (one note per customer for everything that joined or recovered since).
- ``depends_on`` wins where declared: a target behind a down parent is named on the parent's
  ticket (and waits for a failing parent's verdict first), and a target others depend on opens
  its own incident (its dependents are covered by it); canaries are never grouped either.

Every change is one store transaction with what caused it (``monitor.store.storms``), and a
customer is told of a target at most once per change (``told`` on the member row, written with
the note), so a crash or a restart repeats nothing and misses nothing.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import Counter, deque
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from monitor.config import Config, TargetConfig
from monitor.durations import format_duration
from monitor.faults import crash_point
from monitor.policy import storm_texts
from monitor.policy.opening import dedup_key
from monitor.policy.shared_outage import SharedOutages
from monitor.policy.storm_telling import (
    NO_CUSTOMER,
    WAVE,
    Storm,
    StormTelling,
    storm_key,
    storm_target,
)
from monitor.policy.timeliness import sla_fields
from monitor.policy.verdict import Verdict
from monitor.state import TargetState, Transition
from monitor.store import Incident, StateRow, Store, StormMember
from ticketing.base import PRIORITIES, Priority

if TYPE_CHECKING:
    from monitor.policy.escalation import SupportPolicy

log = logging.getLogger("watchdesk.incidents")


class Storms(StormTelling):
    def __init__(
        self,
        store: Store,
        config: Config,
        states: Mapping[str, TargetState],
        notify: Callable[[], None],
        shared: SharedOutages,
    ) -> None:
        self.store = store
        self.states = states
        self.notify = notify
        self.shared = shared
        self.storms: dict[str, Storm] = {}  # key -> the open storm
        self.member_of: dict[str, str] = {}  # target still down in a storm -> its key
        # When each target that may be grouped reached the grouping rule in this down period.
        self._arrived: dict[str, float] = {}
        self._arrivals: deque[tuple[float, str]] = deque()
        self.policy: SupportPolicy | None = None
        self.set_config(config)

    def set_config(self, config: Config) -> None:
        self.config = config
        self._targets = {t.name: t for t in config.targets}
        never = set(config.children) | set(config.agent.canaries)
        self._groupable = {t.name for t in config.targets if t.name not in never}
        self._groups = Counter(self._targets[n].group for n in self._groupable)
        self._possible = len(self._groupable) > config.storm.threshold

    async def load(self, incidents: Sequence[Incident], now: float) -> None:
        """The open storms and their members, as the store has them."""
        self.storms, self.member_of = {}, {}
        members = await self.store.storm_members()
        wait = self.config.storm.group_wait
        for incident in incidents:
            mine = {m.target: m for m in members if m.incident_id == incident.id}
            storm = Storm(incident, mine, max((m.joined_at for m in mine.values()), default=now))
            storm.tell_at = incident.opened_at + wait if self._untold(storm) else None
            self.storms[storm.key] = storm
            for member in storm.active():
                self.member_of[member.target] = storm.key

    def open_incidents(self) -> list[Incident]:
        return [storm.incident for storm in self.storms.values()]

    def storm_of(self, name: str) -> Storm | None:
        key = self.member_of.get(name)
        return self.storms.get(key) if key is not None else None

    # ---- the rule --------------------------------------------------------------------------

    def arrive(self, name: str, at: float) -> float:
        """``name`` reached the grouping rule now (once per down period); when it did."""
        if name not in self._arrived:
            self._arrived[name] = at
            self._arrivals.append((at, name))
        return self._arrived[name]

    def depart(self, name: str) -> None:
        """``name`` is no longer down: its next down is a new arrival."""
        self._arrived.pop(name, None)

    @property
    def arrived(self) -> Collection[str]:
        """The targets that reached the grouping rule in their current down period."""
        return self._arrived.keys()

    def arrival(self, name: str) -> float | None:
        return self._arrived.get(name)

    def recent(self, now: float, also: str | None = None) -> list[str]:
        """Targets that arrived within ``storm.window`` and are still down."""
        while self._arrivals and self._arrivals[0][0] < now - self.config.storm.window:
            self._arrivals.popleft()
        found = {
            name
            for at, name in self._arrivals
            if self._arrived.get(name) == at
            and (self.states.get(name) or TargetState()).status == "down"
        }
        if also is not None:
            found.add(also)
        return sorted(found)

    def verdict(
        self,
        target: TargetConfig,
        now: float,
        arrived: float,
        waiting: Callable[[], list[str]],
        failing: Callable[[], bool],
    ) -> Verdict:
        """What a down target with no incident does, as far as grouping goes. ``waiting()``:
        the other targets waiting for their verdict, down, that could go with it (asked only
        when needed: a storm's thousandth target joins without a look at the rest)."""
        storm = self.config.storm
        name = target.name
        if name not in self._groupable:
            why = (
                "it is a canary"
                if name in self.config.agent.canaries
                else "other targets depend on it (depends_on): its own incident covers them"
            )
            return Verdict("open", f"{why}, so it is never grouped: it opens its own incident")
        group = target.group
        if group is not None and (found := self.storms.get(group)) is not None:
            return Verdict(
                "join",
                f"group {group} has an open incident ({found.incident.id}): it joins it",
                group=group,
                members=(name,),
            )
        wave = self.storms.get(WAVE)
        window = format_duration(storm.window)
        if wave is not None and now - wave.last_join <= storm.window:
            return Verdict(
                "join",
                f"the storm incident {wave.incident.id} is open and targets are still going "
                f"down (within storm.window, {window}): it joins it",
                group=WAVE,
                members=(name, *waiting()),
            )
        recent = self.recent(now, also=name)
        if len(recent) > storm.threshold:
            together = (name, *[n for n in waiting() if n in recent])
            return Verdict(
                "join" if wave is not None else "storm",
                f"{len(recent)} targets went down within storm.window ({window}), more than "
                f"storm.threshold ({storm.threshold}): one incident for all of them",
                group=WAVE,
                members=together,
            )
        if group is not None:
            mates = [n for n in waiting() if self._targets[n].group == group]
            if mates:
                return Verdict(
                    "storm",
                    f"{len(mates) + 1} targets of group {group} are down together: one "
                    "incident for the group",
                    group=group,
                    members=(name, *mates),
                )
        until = arrived + storm.group_wait
        if now < until and (self._groups[group] > 1 if group else self._possible and failing()):
            company = f"other targets of group {group}" if group else "other failing targets"
            return Verdict(
                "hold",
                f"waiting storm.group_wait ({format_duration(storm.group_wait)}) for {company} "
                "to go down with it, so a storm opens one incident, not one each",
                until=until,
            )
        return Verdict("open", "it went down on its own: it opens its own incident")

    # ---- membership ------------------------------------------------------------------------

    def _member(self, name: str, now: float) -> StormMember:
        state = self.states.get(name) or TargetState()
        target = self._targets.get(name)
        customer = target.customer if target is not None and target.customer else NO_CUSTOMER
        return StormMember(
            incident_id=0,
            target=name,
            customer=customer,
            joined_at=now,
            first_failure_at=state.first_failure_at or state.since or now,
            reason=state.last_reason,
        )

    def _priority(self, members: Sequence[StormMember]) -> Priority:
        """Urgent when it affects several customers (the policy's "major problems affecting
        multiple clients"), else the highest priority of its targets."""
        if len({m.customer for m in members}) > 1:
            return "urgent"
        ranks = [
            PRIORITIES.index(self._targets[m.target].priority)
            for m in members
            if m.target in self._targets
        ]
        return PRIORITIES[min(ranks, default=0)]

    async def open(
        self, key: str, names: Sequence[str], now: float, cause: tuple[StateRow, Transition] | None
    ) -> bool:
        """Open the storm ``key`` with its first members; True when ``cause`` was stored."""
        members = [self._member(name, now) for name in names]
        target = storm_target(key)
        priority = self._priority(members)
        fields: dict[str, Any] = {
            "target": target,
            "kind": "storm",
            "status": "open",
            "priority": priority,
            "customer": None,
            "backend": self.config.ticketing.backend,
            "opened_at": now,
            "first_failure_at": min(m.first_failure_at for m in members),
            "failed_checks": len(members),
            "last_reason": f"{len(members)} targets down together",
            "last_update_at": now,
            # Judged as an incident of no one customer: the SLA in force when it opened.
            **sla_fields(self.config, None, priority),
        }
        row, transition = cause if cause is not None else (None, None)
        incident = await self.store.open_storm(
            fields,
            lambda incident_id: (dedup_key(incident_id, target, now), []),
            members,
            row,
            transition,
        )
        crash_point("after_incident_row")
        if incident is None:  # open in the store, not here: take it up and join it
            found = [i for i in await self.store.incidents(open_only=True) if i.target == target]
            await self.load([*self.open_incidents(), *found], now)
            await self.join(key, names, now, None)
            return cause is not None
        arrivals = [self._arrived.get(m.target, now) for m in members]
        storm = Storm(
            incident,
            {m.target: dataclasses.replace(m, incident_id=incident.id) for m in members},
            last_join=now,
            tell_at=max(now, min(arrivals) + self.config.storm.group_wait),
        )
        self.storms[key] = storm
        for member in members:
            self.member_of[member.target] = key
        log.warning(
            "storm incident %d opened: %d targets down together (%s)",
            incident.id,
            len(members),
            storm_texts.names_summary([m.target for m in members], 10),
            extra={"fields": {"event": "storm_opened", "incident": incident.id, "group": key}},
        )
        return cause is not None

    async def join(
        self, key: str, names: Sequence[str], now: float, cause: tuple[StateRow, Transition] | None
    ) -> bool:
        storm = self.storms[key]
        members = [self._member(name, now) for name in names]
        row, transition = cause if cause is not None else (None, None)
        await self.store.join_storm(storm.incident.id, members, row, transition)
        for member in members:
            told = storm.members[member.target].told if member.target in storm.members else "none"
            storm.members[member.target] = dataclasses.replace(
                member, incident_id=storm.incident.id, told=told
            )
            self.member_of[member.target] = key
        storm.last_join = now
        self._schedule(storm, now)
        log.info("%s joined storm incident %d", ", ".join(names), storm.incident.id)
        return cause is not None

    async def leave(
        self, name: str, at: float, now: float, cause: tuple[StateRow, Transition] | None
    ) -> Incident | None:
        """``name`` is up again (or no longer configured); the storm's incident as resolved,
        when it was its last member."""
        key = self.member_of.pop(name)
        storm = self.storms[key]
        storm.members[name] = dataclasses.replace(storm.members[name], left_at=at)
        row, transition = cause if cause is not None else (None, None)
        incident = storm.incident
        if storm.active():
            await self.store.leave_storm(incident.id, [name], at, {}, [], now, row, transition)
            self._schedule(storm, now)
            return None
        recovered_at = max(at, incident.opened_at)
        summary = (
            f"{incident.target}: all {len(storm.members)} targets recovered after "
            f"{format_duration(recovered_at - incident.first_failure_at)}"
        )
        actions = await self.policy.recover_actions(incident, summary) if self.policy else []
        changes = {"status": "resolved", "resolved_at": recovered_at}
        await self.store.leave_storm(
            incident.id, [name], at, changes, actions, now, row, transition
        )
        crash_point("after_recovery_committed")
        del self.storms[key]
        # As stored: the tier it reached, whether someone worked it (for its SLA and metrics).
        done = await self.store.incident(incident.id) or dataclasses.replace(
            incident, status="resolved", resolved_at=recovered_at
        )
        await self.shared.close(done, recovered_at, incident.failed_checks, 0, now)
        log.info(
            "storm incident %d resolved: its %d targets are up", incident.id, len(storm.members)
        )
        return done

    def closed_by_hand(self, target: str) -> list[str]:
        """A person resolved the storm: its targets still down open nothing until they have
        recovered. Their names."""
        key = storm_key(target)
        storm = self.storms.pop(key, None) if key is not None else None
        if storm is None:
            return []
        names = [m.target for m in storm.active()]
        for name in names:
            self.member_of.pop(name, None)
        return names
