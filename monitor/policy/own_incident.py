"""How a target's own incident opens once the gate has said "open": with the state (and
transition) that opened it, in one transaction; in a cluster that asks several vantages, only
if the quorum is met in that same transaction (``confirmation``), else the target is held and
asked again. Part of ``IncidentManager``."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

from monitor.clock import Clock
from monitor.config import Config, TargetConfig
from monitor.faults import crash_point
from monitor.metrics import Metrics
from monitor.policy import opening
from monitor.policy.confirmation import Confirmation, seen_from
from monitor.policy.escalation import SupportPolicy
from monitor.policy.shared_outage import SharedOutages
from monitor.state import TargetState, Transition
from monitor.store import Incident, StateRow, Store
from monitor.store.base import BuildActions

log = logging.getLogger("watchdesk.incidents")

# The transition being acted on, with the state row it produced: stored with what it causes.
Cause = tuple[StateRow, Transition]


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

    def _update_open_gauge(self) -> None:
        raise NotImplementedError

    def _hold(self, name: str, until: float) -> None:
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
            if known.target == name and known.kind == "target":
                self._open[name] = known
                self._failed_checks.setdefault(name, known.failed_checks)
                return known
        return None

    async def _open_incident(
        self, target: TargetConfig, state: TargetState, now: float, cause: Cause | None
    ) -> bool:
        failed = max(state.consecutive_failures, target.failure_threshold)

        def plan(seen: str = "") -> tuple[dict[str, Any], BuildActions]:
            return opening.plan(
                self.config, target, state, failed, now, self._zone, self.policy, seen
            )

        if self.confirmation.rules(target) is not None:
            incident, tally = await self.confirmation.open(
                target, state, now, lambda t: plan(seen_from(t)), cause
            )
            if incident is None and not tally.confirmed():
                self._hold(target.name, now + self.confirmation.recheck(target))
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
