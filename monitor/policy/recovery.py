"""How an incident ends: a recovery (``recovery_threshold`` successes), held open while the
target flaps until it has been up for ``flap_stable_after``; in a cluster that confirms from
several vantages, only once most live vantages say up (``confirmation``). Part of
``IncidentManager``.

The recovery note, the pagers' resolves and the ticket's ``on_recovery`` status are written
with the incident's resolution (and the transition that caused it) in one transaction; the
customers told of a shared component's outage hear it next (``SharedOutages.close``). Both
writes are compare-and-sets on the incident being open (and not flapping yet): a person, on
any agent of a cluster, may have resolved it meanwhile, and then their note stands.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import deque
from collections.abc import Callable

from monitor.actions import Action, AddNote, SetStatus
from monitor.clock import Clock
from monitor.config import Config, TargetConfig
from monitor.durations import format_duration
from monitor.faults import crash_point
from monitor.metrics import Metrics
from monitor.policy import texts
from monitor.policy.confirmation import Confirmation
from monitor.policy.escalation import SupportPolicy
from monitor.policy.shared_outage import SharedOutages
from monitor.state import TargetState
from monitor.store import Incident, Store
from monitor.store.base import Cause

log = logging.getLogger("watchdesk.incidents")


class RecoveryRules:
    """Mixed into ``IncidentManager``, which holds these."""

    store: Store
    clock: Clock
    metrics: Metrics
    config: Config
    notify: Callable[[], None]
    policy: SupportPolicy | None
    shared: SharedOutages
    confirmation: Confirmation
    _open: dict[str, Incident]
    _failed_checks: dict[str, int]
    _changes: dict[str, deque[float]]
    _last_resolved: dict[str, float]
    _orphans: set[str]

    def _update_open_gauge(self) -> None:
        raise NotImplementedError

    async def _maybe_recover(
        self,
        target: TargetConfig,
        state: TargetState,
        incident: Incident,
        now: float,
        cause: Cause | None,
    ) -> bool:
        if not await self.confirmation.recovered(target, incident, now):
            return False  # most live vantages still see it down: asked again at the sweep
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
            expect={"status": "open", "flapping": 0},
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
        if target.name in self._orphans:
            # Seen up here all along: it ended after the last "down" another vantage said.
            self._orphans.discard(target.name)
            recovered_at = max(recovered_at, self.confirmation.last_down_at.get(target.name, now))
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
        resolved = await self.store.update_incident(
            incident.id,
            {"status": "resolved", "resolved_at": recovered_at, "failed_checks": failed},
            actions,
            now,
            row,
            transition,
            expect={"status": "open"},
        )
        self._last_resolved[target.name] = recovered_at
        self._open.pop(target.name, None)
        self._failed_checks.pop(target.name, None)
        self._update_open_gauge()
        if not resolved:  # a person resolved it meanwhile (on any agent): their note stands
            log.info("incident %d of %s was resolved already", incident.id, target.name)
            return
        crash_point("after_recovery_committed")
        await self.shared.close(incident, recovered_at, failed, state.consecutive_successes, now)
        if self.policy is not None:
            done = await self.store.incident(incident.id)
            self.policy.timeliness.resolved(done or incident, recovered_at)
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
