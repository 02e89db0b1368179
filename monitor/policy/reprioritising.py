"""An open incident's priority changes: what any change writes (``priority_change``: the new
priority, its SLA targets, the requester's note), which targets a reload changes
(``reconfigured``), and a person's change in the helpdesk, which the incident takes.

The ticket watch reads each open incident's ticket every ``poll_interval``; the priority the
helpdesk shows is compared with the one it showed before (``Incident.ticket_priority``: the
one the ticket was created with, then each change seen), not with the incident's. watchdesk
never writes a priority to the helpdesk, so the incident's own priority may differ from the
ticket's for reasons of its own (a reload changed the target's priority, a shared component
was raised to urgent); only a change *in the helpdesk* is a person's decision.

When there is one and it differs from the incident's priority, in one store transaction:
the new priority with the SLA targets in force for it, the ticket's priority seen, the public
priority-change note ("changed in the helpdesk"), and the pages of an issue that opens at the
new priority if the incident has paged nobody yet (a high issue made urgent pages the
operations manager now). Escalation delays, status updates and page hours follow the new
priority from then on. It is written under ``decisions`` after reading the incident again,
and only if neither its priority nor the ticket's priority seen moved since they were read
(compare-and-set): a second poll, a restart or a concurrent reload never sends a second note.

A shared component's incident stays urgent (``shared_outage``: the policy raises major problems
affecting multiple clients): a lower priority set in the helpdesk is recorded as seen, logged,
and not taken. A helpdesk value that maps to none of ours (``TicketInfo.priority`` None) is no
change. A reload acts only on targets whose configured priority changed
(``IncidentManager.follow_priorities``), so it does not undo a person's change either.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from monitor.actions import Action, AddNote
from monitor.config import Config, TargetConfig
from monitor.policy import texts
from monitor.policy.timeliness import sla_fields
from monitor.store import Incident, Store
from ticketing.base import Priority, TicketInfo

log = logging.getLogger("watchdesk.policy")

REASON = "changed in the helpdesk"
# (target, incident, new priority, now) -> the pages the incident gets at the new priority.
RaisePages = Callable[[TargetConfig, Incident, Priority, float], Awaitable[list[Action]]]


def priority_change(
    config: Config,
    target: TargetConfig,
    previous: str,
    priority: Priority | None = None,
    reason: str = "",
) -> tuple[dict[str, Any], list[Action]]:
    """What an open incident becomes once its priority changed (to its target's configured
    one, unless ``priority`` says otherwise: a person changed it in the helpdesk): the new
    priority with the SLA targets in force for it now, and the note that tells the requester
    (with ``reason``, if any)."""
    new = priority or target.priority
    changes = {"priority": new, **sla_fields(config, target.customer, new)}
    body = texts.priority_note(config, target, previous, priority=new, reason=reason)
    return changes, [AddNote(body, public=True)]


def reconfigured(previous: Config, config: Config) -> list[TargetConfig]:
    """The targets of ``config`` whose configured priority differs from ``previous`` (one the
    previous config did not have counts): the only ones a reload changes the incident of."""
    before = {target.name: target.priority for target in previous.targets}
    return [target for target in config.targets if before.get(target.name) != target.priority]


class Reprioritising:
    def __init__(
        self,
        store: Store,
        config: Callable[[], Config],
        decisions: asyncio.Lock,
        notify: Callable[[], None],
        raise_pages: RaisePages,
    ) -> None:
        self.store = store
        self._config = config
        self.decisions = decisions
        self.notify = notify
        self._raise_pages = raise_pages
        # Set by the incident manager: its copy of the open incident takes the new priority
        # (and the open-incidents gauge is recounted); and whether a target is a shared
        # component, whose incident stays urgent.
        self.changed: Callable[[Incident], None] = lambda incident: None
        self.holds_urgent: Callable[[TargetConfig], bool] = lambda target: False

    @staticmethod
    def _as_read(incident: Incident) -> dict[str, object]:
        """What a change expects to find in the store (a compare-and-set across agents too)."""
        return {
            "status": "open",
            "priority": incident.priority,
            "ticket_priority": incident.ticket_priority,
        }

    async def follow(
        self, incident: Incident, target: TargetConfig, info: TicketInfo, now: float
    ) -> Incident:
        """Take the priority a person set in the helpdesk; the incident as stored after."""
        seen = info.priority
        if seen is None or seen == incident.ticket_priority:
            return incident
        async with self.decisions:
            current = await self.store.incident(incident.id)
            if (  # compare-and-set: as read before the helpdesk was asked, or not now
                current is None
                or current.status != "open"
                or current.priority != incident.priority
                or current.ticket_priority != incident.ticket_priority
            ):
                return current or incident  # moved since it was read: the next poll decides
            held = self.holds_urgent(target) and seen != "urgent"
            if current.ticket_priority is None or seen == current.priority or held:
                # Nothing to take: the first reading of an incident from an older store (who
                # set it is unknown), a change to what the incident has, or a shared component.
                await self.store.update_incident(
                    incident.id, {"ticket_priority": seen}, expect=self._as_read(incident)
                )
                if held:
                    log.info(
                        "incident %d: the helpdesk shows %s, but %s is a shared component: "
                        "it stays urgent",
                        incident.id,
                        seen,
                        target.name,
                    )
                return dataclasses.replace(current, ticket_priority=seen)
            changes, actions = priority_change(
                self._config(), target, current.priority, priority=seen, reason=REASON
            )
            actions += await self._raise_pages(target, current, seen, now)
            if not await self.store.update_incident(
                incident.id,
                {**changes, "ticket_priority": seen},
                actions,
                now,
                expect=self._as_read(incident),
            ):
                return current  # another agent took it first (a coordinator deposed meanwhile)
            updated = await self.store.incident(incident.id) or current
            self.changed(updated)
        log.warning(
            "incident %d of %s: priority changed in the helpdesk from %s to %s",
            incident.id,
            target.name,
            current.priority,
            seen,
            extra={
                "fields": {
                    "event": "priority_changed",
                    "incident": incident.id,
                    "target": target.name,
                    "from": current.priority,
                    "to": seen,
                }
            },
        )
        self.notify()
        return updated
