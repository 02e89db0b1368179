"""What the store hands out: incidents, outbox actions and transitions as frozen values."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from monitor.actions import Action, from_json
from monitor.state import Status
from ticketing.base import Priority

INCIDENT_COLUMNS = (
    "id",
    "target",
    "dedup_key",
    "status",
    "priority",
    "customer",
    "backend",
    "opened_at",
    "first_failure_at",
    "resolved_at",
    "failed_checks",
    "last_reason",
    "flapping",
    "affected",
    "ticket_id",
    "ticket_url",
    "worked_at",
    "escalated_at",
    "last_update_at",
    "escalation_level",
    "tier",
    "response_target",
    "resolution_target",
    "sla_clock",
    "ticket_state",
    "pending_since",
    "reopened_at",
    "reopens",
    "reopen_worked_at",
    "closed_at",
    "ticket_priority",
    "kind",
)
# What watchdesk knows of the ticket's life: "open" (the outage, or after recovery when it was
# left open), "pending" (waiting on the customer since ``pending_since``), "resolved" (resolved
# at recovery: a reply still reopens it), "reopened" (a customer replied: the SLA clocks run
# again from ``reopened_at``), "settled" (resolved, no reply within auto_close_after: no longer
# followed), "closed".
FOLLOWED_TICKET_STATES = ("pending", "resolved", "reopened")
# One pause of an incident's SLA clocks: (start, end), end None while it lasts.
Pause = tuple[float, float | None]
# An incident of a target's own: "partial" while only some vantages see it down (its
# lower-priority ticket, ``monitor.store.verdicts``), "target" once confirmed (or always, on
# one vantage).
PARTIAL = "partial"
OWN_KINDS = ("target", PARTIAL)
# The target name of the impairment's incident (kind "agent"): no configured target can have
# it (no ':').
AGENT_TARGET = "watchdesk:impaired"


def agent_target(vantage: str | None = None) -> str:
    """The target of an agent's impairment incident. On a cluster's database one per vantage:
    its "one open incident per target" index must not let one vantage's alert stand for (or
    block) another's."""
    return AGENT_TARGET if vantage is None else f"{AGENT_TARGET}:{vantage}"


OUTBOX_COLUMNS = (
    "id",
    "incident_id",
    "channel",
    "operation",
    "payload",
    "state",
    "attempts",
    "next_attempt_at",
    "last_attempt_at",
    "last_error",
    "created_at",
    "done_at",
    "sent_at",
    "notice",
)
NOTICE_COLUMNS = (
    "id",
    "incident_id",
    "customer",
    "dedup_key",
    "via_incident",
    "dependents",
    "status",
    "opened_at",
    "closed_at",
    "ticket_id",
    "ticket_url",
)


@dataclass(frozen=True)
class Incident:
    id: int
    target: str
    dedup_key: str
    status: str
    priority: Priority
    customer: str | None
    backend: str
    opened_at: float
    first_failure_at: float
    resolved_at: float | None
    failed_checks: int
    last_reason: str
    flapping: bool
    affected: tuple[str, ...]
    ticket_id: str | None
    ticket_url: str | None
    worked_at: float | None
    escalated_at: float | None
    last_update_at: float | None
    # How many levels of the escalation chain have fired (repeats counted).
    escalation_level: int = 0
    # The tier of the escalation chain it has reached ("L1" before any escalation).
    tier: str = "L1"
    # The SLA in force when it opened (or when its priority last changed): response and
    # resolution targets in seconds, counted in "business" or "calendar" time. None on
    # incidents stored before watchdesk kept them.
    response_target: float | None = None
    resolution_target: float | None = None
    sla_clock: str | None = None
    ticket_state: str = "open"  # see FOLLOWED_TICKET_STATES
    pending_since: float | None = None
    reopened_at: float | None = None
    reopens: int = 0
    reopen_worked_at: float | None = None
    closed_at: float | None = None
    # The priority the helpdesk last showed on the incident's own ticket: the one it was
    # created with, until a person changes it there (None: not known yet, from an older store).
    ticket_priority: Priority | None = None
    # target: one target's outage; storm: many targets' (``StormMember``), told to each
    # customer by a notice ticket, none of its own; agent: monitoring impaired (pages only).
    kind: str = "target"
    # While the ticket waited on the customer during the outage, the SLA clocks stood still.
    pauses: tuple[Pause, ...] = ()

    @classmethod
    def from_row(cls, row: tuple[Any, ...], pauses: tuple[Pause, ...] = ()) -> Incident:
        values = dict(zip(INCIDENT_COLUMNS, row, strict=True))
        values["flapping"] = bool(values["flapping"])
        values["affected"] = tuple(json.loads(values["affected"]))
        return cls(**values, pauses=pauses)

    @property
    def reopened(self) -> bool:
        """A customer's reply opened the ticket again: a new round of the SLA clocks runs."""
        return self.ticket_state == "reopened"

    @property
    def clock_start(self) -> float:
        """Where the SLA clocks of the current round start: the reply that reopened the
        ticket, else the incident's opening."""
        if self.reopened and self.reopened_at is not None:
            return self.reopened_at
        return self.opened_at

    @property
    def responded_at(self) -> float | None:
        """When someone worked the ticket in the current round."""
        return self.reopen_worked_at if self.reopened else self.worked_at

    @property
    def paused(self) -> bool:
        return any(end is None for _, end in self.pauses)

    def as_json(self) -> dict[str, Any]:
        data = {key: getattr(self, key) for key in INCIDENT_COLUMNS}
        data["affected"] = list(self.affected)
        data["sla_pauses"] = [{"start": start, "end": end} for start, end in self.pauses]
        return data


@dataclass(frozen=True)
class OutboxAction:
    id: int
    incident_id: int
    channel: str  # "ticket" or "pager:<name>"
    operation: str
    payload: dict[str, Any]
    state: str  # pending | done | failed
    attempts: int
    next_attempt_at: float
    last_attempt_at: float | None
    last_error: str | None
    created_at: float
    done_at: float | None
    # Set while a send may have reached the service without its answer reaching us.
    sent_at: float | None = None
    # The customer whose notice ticket of this incident the action is for (None: its own).
    notice: str | None = None
    # Set on an action claimed for delivery (``claim_actions``) in a cluster: its finish,
    # retry and "may be out there" mark go through only while this claim is still its own.
    claim_token: str | None = None

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> OutboxAction:
        values = dict(zip(OUTBOX_COLUMNS, row, strict=True))
        values["payload"] = json.loads(values["payload"])
        return cls(**values)

    def action(self) -> Action:
        """The typed action this row holds (ValueError when no watchdesk can read it)."""
        return from_json(self.channel, self.operation, self.payload)


@dataclass(frozen=True)
class CustomerNotice:
    """What one customer was told about a shared component's outage (an incident whose
    target's dependents belong to several customers): a ticket of its own, or a note on the
    customer's open incident ``via_incident``. One per (incident, customer), ever."""

    id: int
    incident_id: int
    customer: str
    dedup_key: str
    via_incident: int | None
    dependents: tuple[str, ...]
    status: str  # open | closed (the shared component's recovery was sent)
    opened_at: float
    closed_at: float | None
    ticket_id: str | None
    ticket_url: str | None

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> CustomerNotice:
        values = dict(zip(NOTICE_COLUMNS, row, strict=True))
        values["dependents"] = tuple(json.loads(values["dependents"]))
        return cls(**values)

    def as_json(self) -> dict[str, Any]:
        data = {key: getattr(self, key) for key in NOTICE_COLUMNS}
        data["dependents"] = list(self.dependents)
        return data


STORM_MEMBER_COLUMNS = (
    "incident_id",
    "target",
    "customer",
    "joined_at",
    "first_failure_at",
    "reason",
    "left_at",
    "told",
)


@dataclass(frozen=True)
class StormMember:
    """A target in a storm incident: down since ``joined_at`` (``left_at``: up again), and
    what its customer was last told of it (``told``: none, down or up)."""

    incident_id: int
    target: str
    customer: str
    joined_at: float
    first_failure_at: float
    reason: str
    left_at: float | None = None
    told: str = "none"

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> StormMember:
        return cls(**dict(zip(STORM_MEMBER_COLUMNS, row, strict=True)))

    def as_json(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in STORM_MEMBER_COLUMNS}


@dataclass(frozen=True)
class StoredTransition:
    target: str
    previous: Status
    current: Status
    at: float
    first_failure_at: float | None
    consecutive_failures: int
    reason: str
