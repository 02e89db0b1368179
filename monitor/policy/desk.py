"""What an operator does from watchdesk itself: acknowledge an incident, mute a target for a
while, unmute it. Every act is written to the incident's ticket as a (private) note and logged
with who did it, as PagerDuty and Alertmanager users expect.

- Acknowledge: the incident counts as worked (no escalation, the response clock stops).
- Resolve: a person says the incident is over (the target may still fail: it opens no new
  incident until it has recovered and failed again). The requester gets the recovery note with
  who resolved it and their words; pagers get their resolve.
- Mute: the target opens no incident until the mute ends (probes and metrics go on), like a
  maintenance window decided on the spot. Mutes are kept in the store across restarts.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from monitor.actions import Action, AddNote, SetStatus
from monitor.clock import Clock
from monitor.config import Config
from monitor.durations import format_duration
from monitor.policy import texts
from monitor.policy.incidents import IncidentManager
from monitor.policy.timeliness import Timeliness
from monitor.store import Incident
from monitor.store.base import Store
from monitor.store.records import OWN_KINDS

log = logging.getLogger("watchdesk.desk")


class DeskError(Exception):
    """What the operator asked for cannot be done; ``status`` is the HTTP answer."""

    def __init__(self, message: str, status: int = 404) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class Desk:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        timeliness: Timeliness,
        decisions: asyncio.Lock,
        notify: Callable[[], None],
    ) -> None:
        self.store = store
        self.clock = clock
        self.timeliness = timeliness
        self.decisions = decisions
        self.notify = notify
        self._mutes: dict[str, tuple[float, str, str]] = {}

    async def load(self) -> None:
        self._mutes = await self.store.mutes()

    def muted(self, target: str) -> bool:
        mute = self._mutes.get(target)
        return mute is not None and self.clock.now() < mute[0]

    def mutes(self) -> dict[str, dict[str, object]]:
        now = self.clock.now()
        return {
            target: {"until": until, "reason": reason, "by": by}
            for target, (until, reason, by) in self._mutes.items()
            if now < until
        }

    async def acknowledge(self, incident_id: int, by: str) -> Incident:
        now = self.clock.now()
        async with self.decisions:
            incident = await self.store.incident(incident_id)
            if incident is None or incident.status != "open":
                raise DeskError(f"no open incident {incident_id}")
            if incident.worked_at is not None:
                return incident
            note = f"Acknowledged by {by} in watchdesk: the escalation chain stops here."
            if not await self.store.update_incident(
                incident.id,
                {"worked_at": now},
                [AddNote(note, public=False)],
                now,
                expect={"status": "open", "worked_at": None},
            ):  # another agent or person got there first
                return await self.store.incident(incident_id) or incident
        self.timeliness.worked(incident, now)
        log.warning(
            "incident %d of %s acknowledged by %s",
            incident.id,
            incident.target,
            by,
            extra={"fields": {"event": "acknowledged", "incident": incident.id, "by": by}},
        )
        self.notify()
        done = await self.store.incident(incident_id)
        return done or incident

    async def resolve(
        self, incident_id: int, by: str, note: str, config: Config, incidents: IncidentManager
    ) -> Incident:
        now = self.clock.now()
        async with self.decisions:
            incident = await self.store.incident(incident_id)
            if incident is None or incident.status != "open":
                raise DeskError(f"no open incident {incident_id}")
            resolution = f"resolved by {by}" + (f": {note}" if note else ".")
            body = texts.recovery_note(
                config,
                incident.customer,
                incident.target,
                now,
                incident.first_failure_at,
                incident.failed_checks,
                0,
                resolution=resolution,
            )
            # A storm's customers hear it on their own tickets (``shared.close`` below).
            actions: list[Action] = (
                [AddNote(body, public=True)] if incident.kind in OWN_KINDS else []
            )
            if incidents.policy is not None:
                actions += await incidents.policy.recover_actions(incident, f"resolved by {by}")
            if (
                config.ticketing.on_recovery in ("pending", "resolve")
                and incident.kind in OWN_KINDS
            ):
                pending = config.ticketing.on_recovery == "pending"
                actions.append(SetStatus("pending" if pending else "resolved"))
            if not await self.store.update_incident(
                incident.id,
                {"status": "resolved", "resolved_at": now},
                actions,
                now,
                expect={"status": "open"},
            ):
                raise DeskError(f"no open incident {incident_id}")
            incidents.closed_by_hand(incident.target, now)
            await incidents.shared.close(
                incident, now, incident.failed_checks, 0, now, resolution=resolution
            )
        self.timeliness.resolved(incident, now)
        log.warning(
            "incident %d of %s resolved by %s",
            incident.id,
            incident.target,
            by,
            extra={"fields": {"event": "resolved_by_hand", "incident": incident.id, "by": by}},
        )
        self.notify()
        done = await self.store.incident(incident_id)
        return done or incident

    async def mute(self, target: str, seconds: float, reason: str, by: str) -> float:
        now = self.clock.now()
        until = now + seconds
        await self.store.set_mute(target, until, reason, by, now)
        self._mutes[target] = (until, reason, by)
        await self._note(target, f"Muted by {by} for {format_duration(seconds)}: {reason}", now)
        log.warning(
            "%s muted by %s for %s: %s",
            target,
            by,
            format_duration(seconds),
            reason,
            extra={"fields": {"event": "muted", "target": target, "by": by, "until": until}},
        )
        return until

    async def unmute(self, target: str, by: str) -> bool:
        now = self.clock.now()
        was = self._mutes.pop(target, None) is not None
        await self.store.set_mute(target, None, "", by, now)
        if was:
            await self._note(target, f"Unmuted by {by}.", now)
            log.warning(
                "%s unmuted by %s",
                target,
                by,
                extra={"fields": {"event": "unmuted", "target": target, "by": by}},
            )
        return was

    async def _note(self, target: str, body: str, now: float) -> None:
        """On the target's open incident, if it has one."""
        for incident in await self.store.incidents(open_only=True):
            if incident.target == target:
                await self.store.update_incident(
                    incident.id, {}, [AddNote(body, public=False)], now
                )
                self.notify()
