"""What an incident opens with: its row and, once the store has given it an id, its dedup key
and first actions (the ticket's create, the pages of ``page_on_open``)."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from monitor.actions import Action, CreateTicket
from monitor.config import Config, TargetConfig
from monitor.policy import texts
from monitor.policy.timeliness import sla_fields
from monitor.state import TargetState
from monitor.store import BuildActions
from ticketing.base import TicketDraft

if TYPE_CHECKING:
    from monitor.policy.escalation import SupportPolicy


def dedup_key(incident_id: int, target: str, opened_at: float) -> str:
    """Stable per incident, unique across store resets, and valid as a tag or label anywhere."""
    digest = hashlib.sha256(f"{incident_id}|{target}|{opened_at}".encode()).hexdigest()[:10]
    return f"watchdesk-{incident_id}-{digest}"


def requester(config: Config, customer: str | None) -> str | None:
    """Who a ticket is from: the customer's email, else the backend's ``requester_email``."""
    entry = config.customers.get(customer) if customer else None
    default = getattr(config.backend_settings, "requester_email", None)
    return entry.email if entry is not None and entry.email else default


def plan(
    config: Config,
    target: TargetConfig,
    state: TargetState,
    failed: int,
    now: float,
    zone: ZoneInfo,
    policy: SupportPolicy | None,
    seen: str = "",
    subject: str | None = None,
) -> tuple[dict[str, Any], BuildActions]:
    """The incident's fields and ``build(incident_id)``, which the store runs inside the
    transaction (possibly in another thread): it only builds values. ``seen``: which vantages
    saw it down (confirmation from several), added to the ticket and the page; ``subject``: the
    ticket's, when not the usual one (a partial outage's)."""
    first_failure = state.first_failure_at or now
    fields: dict[str, Any] = {
        "target": target.name,
        "status": "open",
        "priority": target.priority,
        "customer": target.customer,
        "backend": config.ticketing.backend,
        "opened_at": now,
        "first_failure_at": first_failure,
        "failed_checks": failed,
        "last_reason": state.last_reason,
        "last_update_at": now,
        "tier": config.escalation.first_tier,
        # What the ticket is created with: a later change of it in the helpdesk is a person's.
        "ticket_priority": target.priority,
        **sla_fields(config, target.customer, target.priority),
    }
    description = texts.ticket_description(config, target, state, first_failure, failed, zone)
    details = texts.page_details(target, state, first_failure, zone)
    if seen:
        description, details = f"{description}\n\n{seen}", f"{details}\n{seen}"

    def build(incident_id: int) -> tuple[str, list[Action]]:
        key = dedup_key(incident_id, target.name, now)
        draft = TicketDraft(
            dedup_key=key,
            subject=subject or f"[{target.priority.upper()}] {target.name} is down",
            description=description,
            priority=target.priority,
            requester_email=requester(config, target.customer),
            target=target.name,
            customer=target.customer,
            tags=("watchdesk", key),
        )
        actions: list[Action] = [CreateTicket(draft)]
        if policy is not None:
            actions += policy.open_actions(target, details, key, now)
        return key, actions

    return fields, build
