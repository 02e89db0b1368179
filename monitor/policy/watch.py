"""Reading an incident's ticket back from the helpdesk: whether someone works it, whether it
waits on the customer, whether the customer wrote back.

Each ticket is asked at most every ``poll_interval`` (and once more when a deadline comes, so
that a decision is never taken on a stale answer): pending detection, like working detection,
has the poll interval as its granularity. A helpdesk that cannot be read is no sign of anything
(nobody on it, nothing paused): the decision waits for an answer.

While an open incident's ticket waits on the customer (the helpdesk's own "pending / waiting on
customer" status, set by a person), its SLA clocks (response, resolution, escalation) stand
still: the pause is stored, so a restart keeps it, and ends when the ticket stops waiting.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

from monitor.config import Config
from monitor.delivery.integrations import IntegrationsSlot
from monitor.store import Incident, Store
from ticketing.base import TicketInfo, TicketRef
from ticketing.errors import DeliveryError

log = logging.getLogger("watchdesk.policy")


class TicketWatch:
    def __init__(
        self,
        store: Store,
        integrations: IntegrationsSlot,
        config: Callable[[], Config],
        decisions: asyncio.Lock,
    ) -> None:
        self.store = store
        self.integrations = integrations
        self._config = config
        self.decisions = decisions
        self._last: dict[int, float] = {}

    def due(self, incident: Incident, now: float, force: bool = False) -> bool:
        """Whether the incident's ticket (and the pagers' acknowledgements) should be asked now
        (``force``: a deadline came)."""
        last = self._last.get(incident.id)
        interval = self._config().escalation.poll_interval
        return force or last is None or now - last >= interval

    async def read(
        self, incident: Incident, now: float, replies_since: float | None = None
    ) -> TicketInfo | None:
        """The ticket as the helpdesk shows it; None when it has none or cannot be read."""
        if incident.ticket_id is None:
            return None
        self._last[incident.id] = now
        try:
            return await self.integrations.current.backend.get(
                TicketRef(incident.ticket_id, incident.ticket_url), replies_since
            )
        except DeliveryError as error:
            log.info(
                "cannot read ticket %s of incident %d: %s", incident.ticket_id, incident.id, error
            )
            return None

    def forget(self, keep: Iterable[int]) -> None:
        """Drop what is known of incidents no longer followed."""
        kept = set(keep)
        self._last = {key: value for key, value in self._last.items() if key in kept}

    async def follow_pause(self, incident: Incident, info: TicketInfo, now: float) -> Incident:
        """Stop an open incident's clocks while its ticket waits on the customer, let them run
        again when it no longer does; the incident as stored after (``decisions`` is taken
        here: an incident that a recovery resolved meanwhile keeps its clocks as they are)."""
        if info.waiting_on_customer == incident.paused:
            return incident
        async with self.decisions:
            current = await self.store.incident(incident.id)
            if current is None or current.status != "open":
                return current or incident
            if info.waiting_on_customer:
                changed = await self.store.pause_clocks(incident.id, now)
            else:
                changed = await self.store.resume_clocks(incident.id, now)
            current = await self.store.incident(incident.id) or current
        if changed:
            log.info(
                "ticket %s of incident %d %s",
                incident.ticket_id,
                incident.id,
                "waits on the customer: its SLA clocks stop"
                if info.waiting_on_customer
                else "no longer waits on the customer: its SLA clocks run again",
                extra={
                    "fields": {
                        "event": "sla_paused" if info.waiting_on_customer else "sla_resumed",
                        "incident": incident.id,
                    }
                },
            )
        return current

    async def worked_by(self, incident: Incident, info: TicketInfo | None) -> str | None:
        """Who or what shows the ticket is being worked: assigned, a status that left open
        (waiting on the customer is not work on it: it pauses the clocks instead), or a pager's
        acknowledgement. None when nothing does (or the helpdesk could not tell)."""
        if info is not None:
            if info.assignee:
                return f"assigned to {info.assignee}"
            if info.status != "open" and not info.waiting_on_customer:
                return f"ticket status {info.raw_status or info.status}"
        for name in self._config().escalation.page_on_open:
            pager = self.integrations.current.pagers.get(name)
            if pager is None:
                continue
            try:
                acknowledged = await pager.acknowledged(incident.dedup_key)
            except DeliveryError as error:
                log.info("cannot ask %s about incident %d: %s", name, incident.id, error)
                continue
            if acknowledged:
                return f"acknowledged in {name}"
        return None
