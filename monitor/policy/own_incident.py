"""How a target's own incident opens once the gate has said "open": with the state (and
transition) that opened it, in one transaction; in a cluster that asks several vantages, only
if the quorum is met in that same transaction (``confirmation``), else the target is held and
asked again. Part of ``IncidentManager``.

In such a cluster the quorum is asked first, before any grouping (``_ask_first``), and a
partial outage's lower-priority incident (``partial``) opens, is asked about again while the
target stays down here, and is raised, through the same ask."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any
from zoneinfo import ZoneInfo

from monitor.clock import Clock
from monitor.config import Config, TargetConfig
from monitor.faults import crash_point
from monitor.metrics import Metrics
from monitor.policy import opening, partial
from monitor.policy.confirmation import Confirmation, seen_from
from monitor.policy.escalation import SupportPolicy
from monitor.policy.shared_outage import SharedOutages
from monitor.state import States, TargetState
from monitor.store import Incident, Store
from monitor.store.base import BuildActions, Cause
from monitor.store.records import OWN_KINDS
from monitor.store.verdicts import Decision, PartialPlans

log = logging.getLogger("watchdesk.incidents")


class OwnIncident:
    """Mixed into ``IncidentManager``, which holds these."""

    store: Store
    clock: Clock
    metrics: Metrics
    config: Config
    notify: Callable[[], None]
    policy: SupportPolicy | None
    shared: SharedOutages
    confirmation: Confirmation
    _zone: ZoneInfo
    _open: dict[str, Incident]
    _failed_checks: dict[str, int]
    _fresh: set[str]
    _orphans: set[str]
    _targets: Mapping[str, TargetConfig]
    states: States

    def _update_open_gauge(self) -> None:
        raise NotImplementedError

    def _hold(self, name: str, until: float) -> None:
        raise NotImplementedError

    def _settled(self, name: str) -> None:
        raise NotImplementedError

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

    async def _adopt(self, name: str) -> Incident | None:
        """The open incident of ``name`` the store holds (another vantage opened it)."""
        for known in await self.store.incidents(open_only=True):
            if known.target == name and known.kind in OWN_KINDS:
                self._take_in(known)
                return known
        return None

    def _take_in(self, known: Incident) -> None:
        """Hold another vantage's open incident here, as if this agent had opened it."""
        self._open[known.target] = known
        self._failed_checks.setdefault(known.target, known.failed_checks)

    async def _adopt_orphans(self, now: float) -> None:
        """Another vantage's open incident on a target this vantage sees up and does not hold:
        nothing here would end it (this vantage never saw the target down, so no recovery of
        its own comes), while the vantages that saw it down may be gone for good, their "down"
        aging out of the window. Held from now on, it is asked at each sweep like any other:
        it ends when most live vantages say up (a partial one: when none says down any more)."""
        if not self.confirmation.orphans_due(now):
            return
        for known in await self.store.incidents(open_only=True):
            name, target = known.target, self._targets.get(known.target)
            state = self.states.get(name)
            if (
                known.kind in OWN_KINDS
                and name not in self._open
                and target is not None
                and self.confirmation.rules(target) is not None
                and state is not None
                and state.status == "up"
            ):
                self._take_in(known)
                self._orphans.add(name)
                log.info(
                    "%s: incident %d, opened from another vantage, is seen up here: it ends "
                    "when the vantages' verdicts say so",
                    name,
                    known.id,
                )

    def _partial_plans(
        self, target: TargetConfig, state: TargetState, now: float
    ) -> PartialPlans | None:
        """How a partial outage of ``target`` opens and is raised; None: partial = "ignore"."""
        rules = self.confirmation.rules(target)
        if rules is None or rules.partial_after is None:
            return None
        failed = max(state.consecutive_failures, target.failure_threshold)
        return partial.plans(self.config, target, state, failed, now, self._zone, self.policy)

    async def _ask_first(
        self, target: TargetConfig, state: TargetState, now: float, cause: Cause | None
    ) -> bool | None:
        """Before any grouping: say down and ask the quorum (``cause`` stored with it). None:
        confirmed, the grouping decides next; else the target was held, or its partial
        incident opened or was raised (True when ``cause`` was stored)."""
        plans = self._partial_plans(target, state, now)
        decision = await self.confirmation.ask(target, state, now, None, plans, cause)
        if decision.how is not None:
            await self._took(target, decision, now)
        elif decision.tally.confirmed():
            return None
        else:
            self._hold(target.name, self.confirmation.ask_at(target.name, now))
        return cause is not None

    async def _recheck_partial(
        self,
        target: TargetConfig,
        state: TargetState,
        incident: Incident,
        now: float,
        cause: Cause | None,
    ) -> bool:
        """A partial incident open, the target down here: keep saying down (so it stays
        counted) and asking, every ``recheck``; the ask that meets the quorum raises it."""
        name = target.name
        if name not in self._fresh:
            return False  # only this agent's own probes since its start say down
        if not self.confirmation.asks(target, now):
            self._hold(name, self.confirmation.ask_at(name, now))
            return False
        plans = self._partial_plans(target, state, now)
        decision = await self.confirmation.ask(target, state, now, None, plans, cause)
        if decision.how is not None:
            await self._took(target, decision, now)
        elif decision.partial is None:  # raised by another vantage, or ended: as stored
            self._settled(name)
            self.confirmation.settled(name)
            current = await self.store.incident(incident.id)
            if current is not None and current.status == "open":
                self._open[name] = current
            else:
                self._open.pop(name, None)
            self._update_open_gauge()
        else:
            self._hold(name, self.confirmation.ask_at(name, now))
        return cause is not None

    async def _took(self, target: TargetConfig, decision: Decision, now: float) -> None:
        """A partial incident opened here, or was raised here (the quorum met)."""
        incident, name = decision.incident, target.name
        assert incident is not None
        self._open[name] = incident
        self._failed_checks.setdefault(name, incident.failed_checks)
        fields = {"incident": incident.id, "target": name, "dedup_key": incident.dedup_key}
        if decision.how == "partial":
            self.metrics.incidents_opened.labels(name, incident.priority).inc()
            self._hold(name, self.confirmation.ask_at(name, now))
            log.warning(
                "partial incident %d opened for %s (%s): down from %s only",
                incident.id,
                name,
                incident.priority,
                ", ".join(v.vantage for v in decision.tally.down),
                extra={"fields": {"event": "partial_opened", **fields}},
            )
        else:
            self._settled(name)
            log.warning(
                "incident %d of %s raised to %s: %s",
                incident.id,
                name,
                incident.priority,
                decision.tally.why(),
                extra={"fields": {"event": "partial_raised", **fields}},
            )
        self._update_open_gauge()
        self.notify()
        if decision.how == "raised":
            await self._share(target)

    async def _open_incident(
        self, target: TargetConfig, state: TargetState, now: float, cause: Cause | None
    ) -> bool:
        failed = max(state.consecutive_failures, target.failure_threshold)

        def plan(seen: str = "") -> tuple[dict[str, Any], BuildActions]:
            return opening.plan(
                self.config, target, state, failed, now, self._zone, self.policy, seen
            )

        if self.confirmation.rules(target) is not None:
            plans = self._partial_plans(target, state, now)
            decision = await self.confirmation.ask(
                target, state, now, lambda t: plan(seen_from(t)), plans, cause
            )
            incident = decision.incident
            if decision.how in ("partial", "raised"):
                await self._took(target, decision, now)
                return cause is not None
            if incident is None and not decision.tally.confirmed():
                self._hold(target.name, self.confirmation.ask_at(target.name, now))
                return cause is not None
        else:
            incident_fields, build = plan()
            row, transition = cause if cause is not None else (None, None)
            incident = await self.store.open_incident(incident_fields, build, row, transition)
        crash_point("after_incident_row")
        if incident is None:
            # The store holds an open incident _open did not know: it is the one of this outage.
            await self._adopt(target.name)
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
