"""One claimed action, sent: a ticket create, note or status change, a page or its resolve.

Exactly once where the service lets us, at least once where it does not:

- A create marks itself "may be out there" in the store (``sent_at``) before the request
  leaves. While the mark is set, every attempt asks the helpdesk for a ticket carrying the
  incident's dedup key first, and creates again only when that lookup answers "none" after
  the helpdesk's search lag; errors in between (503, 429, timeouts, a crash) leave the mark.
- PagerDuty and Opsgenie de-duplicate triggers by our dedup key, so a trigger sent again after
  a lost answer pages nobody twice. Email, webhook and apprise have nothing to ask and nothing
  that de-duplicates: after a lost answer (or a crash between sending and recording) the page
  is sent again: at least once. Status changes are idempotent.
- A note, where the helpdesk lists a ticket's notes (``ticketing.base.NoteFinder``: the local
  store, Freshdesk, Zendesk, Jira, ServiceNow, GitHub), is marked like a create, and once
  marked it is looked for among the ticket's notes by our own account before it goes again.
  Elsewhere (the webhook) a lost answer to a note means the note may appear twice, never that
  it is missing.

Right before each request leaves, ``check_send`` asks whether this agent still may send for
its claim (see ``monitor.delivery.outbox``): a paused agent that wakes up there sends nothing.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from monitor.actions import (
    AddNote,
    CreateTicket,
    ResolvePage,
    SendPage,
    SetStatus,
    status_delivered,
)
from monitor.clock import Clock
from monitor.cluster.ownership import Ownership
from monitor.delivery.integrations import IntegrationsSlot
from monitor.faults import crash_point
from monitor.metrics import Metrics
from monitor.store import CustomerNotice, Incident, OutboxAction, Store
from ticketing.base import NoteFinder, TicketBackend, TicketRef
from ticketing.errors import DeliveryError, OutcomeUnknown, PermanentError
from ticketing.pagers.base import Pager

log = logging.getLogger("watchdesk.outbox")

UNKNOWN = "outcome unknown"
CHANNEL_REMOVED = "channel removed"
METRIC_OPERATION = {"create": "create", "note": "note", "status": "update", "find": "get"}


@dataclass(frozen=True)
class Outcome:
    """What a delivery achieved: changes to record on the incident, or why it was skipped."""

    changes: dict[str, Any] | None = None
    skipped: str | None = None


class NotYet(Exception):
    """The action must wait for something of ours (its ticket's create, a search lag); says
    nothing about the health of the channel."""

    def __init__(self, reason: str, delay: float) -> None:
        super().__init__(reason)
        self.reason = reason
        self.delay = delay


class MayNotSend(Exception):
    """This agent may no longer send for its claim (its leases or the claim ran out)."""


class Delivery:
    def __init__(
        self,
        store: Store,
        integrations: IntegrationsSlot,
        clock: Clock,
        metrics: Metrics,
        ownership: Ownership,
        claim_ttl: float | None,
    ) -> None:
        self.store = store
        self.integrations = integrations
        self.clock = clock
        self.metrics = metrics
        self.ownership = ownership
        # In a cluster: how long a claim lives, and how long before its end no send starts.
        self.claim_ttl = claim_ttl
        self.claim_margin = 0.0 if claim_ttl is None else max(0.2, claim_ttl / 5)
        self.claimed_at: dict[int, float] = {}  # action id -> monotonic time of its claim

    @property
    def backend(self) -> TicketBackend:
        return self.integrations.current.backend

    @property
    def pagers(self) -> Mapping[str, Pager]:
        return self.integrations.current.pagers

    @property
    def reconcile_after(self) -> float:
        """How long the helpdesk's search may lag behind a create (Freshdesk: minutes); until
        then "not found" is no proof that a lost create did not happen."""
        return self.integrations.current.search_lag

    def check_send(self, action: OutboxAction) -> None:
        """Raise ``MayNotSend`` unless this agent may still send for its claim of ``action``."""
        if not self.ownership.live():
            raise MayNotSend("this agent's leases are not renewed")
        claimed = self.claimed_at.get(action.id)
        ttl = self.claim_ttl
        if (
            ttl is not None
            and claimed is not None
            and time.monotonic() > claimed + ttl - self.claim_margin
        ):
            raise MayNotSend("its claim ran out")

    async def deliver(
        self,
        action: OutboxAction,
        typed: CreateTicket | AddNote | SetStatus | SendPage | ResolvePage,
    ) -> Outcome:
        if isinstance(typed, SendPage | ResolvePage):
            return await self._deliver_page(action, typed)
        return await self._deliver_ticket(action, typed)

    # ---- ticket channel --------------------------------------------------------------------

    async def _deliver_ticket(
        self, action: OutboxAction, typed: CreateTicket | AddNote | SetStatus
    ) -> Outcome:
        ticket = await self._ticket_of(action, typed.notice)
        if isinstance(typed, CreateTicket):
            return await self._create(action, typed, ticket.dedup_key)
        if ticket.ticket_id is None:
            # The create before it was refused: wait behind it rather than fail.
            raise NotYet("the ticket has not been created yet", 5.0)
        ref = TicketRef(ticket.ticket_id, ticket.ticket_url)
        self.check_send(action)
        if isinstance(typed, AddNote):
            return await self._note(action, typed, ref)
        await self.backend.set_status(ref, typed.status)
        crash_point("after_status_sent")
        return Outcome(status_delivered(typed, self.clock.now()))

    async def _note(self, action: OutboxAction, typed: AddNote, ref: TicketRef) -> Outcome:
        backend = self.backend
        if isinstance(backend, NoteFinder):
            if action.sent_at is not None and await backend.has_note(ref, typed.body, typed.public):
                log.info("found the note of incident %d after a lost answer", action.incident_id)
                return Outcome()
            if not await self.store.set_sent(action.id, self.clock.now(), action.claim_token):
                raise MayNotSend("its claim was taken over")
            self.check_send(action)
        await backend.add_note(ref, typed.body, typed.public)
        crash_point("after_note_sent")
        return Outcome()

    async def _ticket_of(
        self, action: OutboxAction, notice: str | None
    ) -> Incident | CustomerNotice:
        """What the action's ticket is known by: the incident's own, or a customer's notice."""
        if notice is None:
            incident = await self.store.incident(action.incident_id)
            if incident is None:
                raise PermanentError(f"incident {action.incident_id} is not in the store")
            return incident
        found = await self.store.notice(action.incident_id, notice)
        if found is None:
            raise PermanentError(f"no notice to {notice} of incident {action.incident_id}")
        return found

    async def _create(self, action: OutboxAction, typed: CreateTicket, dedup_key: str) -> Outcome:
        if action.sent_at is not None:
            # A create may be out there: only a lookup's answer decides, whatever came between.
            found = await self.backend.find(dedup_key)
            self.metrics.ticket_operations.labels(self.backend.name, "get", "success").inc()
            if found is not None:
                log.info("found the ticket of incident %d after a lost answer", action.incident_id)
                return Outcome({"ticket_id": found.id, "ticket_url": found.url})
            wait = action.sent_at + self.reconcile_after - self.clock.now()
            if wait > 0:
                raise NotYet(
                    f"{UNKNOWN}: {self.backend.name}: waiting for its search to confirm that no "
                    f"ticket {dedup_key} exists before creating one",
                    max(1.0, wait),
                )
        self.check_send(action)
        if not await self.store.set_sent(action.id, self.clock.now(), action.claim_token):
            raise MayNotSend("its claim was taken over")
        crash_point("before_create_sent")
        self.check_send(action)
        try:
            ref = await self.backend.create(typed.draft)
        except OutcomeUnknown:
            raise
        except DeliveryError:
            # Answered with a refusal: this create did not happen, and the lookup before it
            # (if any) said no earlier one did either.
            await self.store.set_sent(action.id, None, action.claim_token)
            raise
        crash_point("after_create_sent")
        return Outcome({"ticket_id": ref.id, "ticket_url": ref.url})

    # ---- pager channel ---------------------------------------------------------------------

    async def _deliver_page(self, action: OutboxAction, typed: SendPage | ResolvePage) -> Outcome:
        name = typed.pager
        pager = self.pagers.get(name)
        if pager is None:
            # Kept, never dropped: a reload that configures the pager again delivers it.
            raise NotYet(f"{CHANNEL_REMOVED}: pager {name} is no longer configured", 60.0)
        incident = await self.store.incident(action.incident_id)
        if incident is None:
            raise PermanentError(f"incident {action.incident_id} is not in the store")
        if isinstance(typed, SendPage):
            if typed.not_before and incident.status != "open":
                return Outcome(skipped="the incident ended before business hours began")
            crash_point("before_page_sent")
            self.check_send(action)
            await pager.page(dataclasses.replace(typed.page, ticket_url=incident.ticket_url))
            crash_point("after_page_sent")
            return Outcome()
        paged = any(
            a.channel == action.channel
            and a.operation == "page"
            and a.state == "done"
            and not a.last_error
            for a in await self.store.actions_of(action.incident_id)
        )
        if not paged:
            return Outcome(skipped="never paged for this incident")
        if not pager.supports_resolve:
            return Outcome(skipped=f"{pager.name} has nothing to resolve")
        self.check_send(action)
        await pager.resolve(incident.dedup_key, typed.summary)
        crash_point("after_resolve_sent")
        return Outcome()
