"""The ticket and page actions an incident queues, as typed values with a versioned JSON form.

The policy decides them, the store keeps them in its outbox, the delivery sends them. What is
stored is ``{"v": VERSION, ...}``; ``from_json`` reads every version ever written (the first
had no "v") and maps fields by name, so a renamed field in ``TicketDraft`` or ``Page`` never
breaks rows already queued: add a step to ``_upgrade`` instead.

A ticket action with ``notice`` set is for a customer's notice ticket of the incident (a shared
component is down, see ``monitor.policy.shared_outage``), not the incident's own ticket. Version
2 added it: a watchdesk that knows only version 1 refuses such a row rather than putting one
customer's note on another customer's ticket. The statuses "open" and "closed" (the ticket
follow-up) kept the form: a watchdesk that knows only "pending" and "resolved" refuses them as
an unknown status, the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ticketing.base import PRIORITIES, NewStatus, Priority, TicketDraft
from ticketing.pagers.base import Page, PageReason

VERSION = 2
NEW_STATUSES: tuple[NewStatus, ...] = ("open", "pending", "resolved", "closed")


@dataclass(frozen=True)
class CreateTicket:
    draft: TicketDraft
    notice: str | None = None
    channel: str = field(default="ticket", init=False)
    operation: str = field(default="create", init=False)


@dataclass(frozen=True)
class AddNote:
    body: str
    public: bool
    notice: str | None = None
    channel: str = field(default="ticket", init=False)
    operation: str = field(default="note", init=False)


@dataclass(frozen=True)
class SetStatus:
    # pending or resolved at recovery; open again after a customer's reply; closed after
    # auto_close_after without one.
    status: NewStatus
    notice: str | None = None
    channel: str = field(default="ticket", init=False)
    operation: str = field(default="status", init=False)


@dataclass(frozen=True)
class SendPage:
    pager: str
    page: Page
    # A page held for business hours: not sent before this time (None: at once).
    not_before: float | None = None
    operation: str = field(default="page", init=False)

    @property
    def channel(self) -> str:
        return f"pager:{self.pager}"


@dataclass(frozen=True)
class ResolvePage:
    pager: str
    summary: str
    operation: str = field(default="resolve", init=False)

    @property
    def channel(self) -> str:
        return f"pager:{self.pager}"


Action = CreateTicket | AddNote | SetStatus | SendPage | ResolvePage


def status_delivered(action: SetStatus, at: float) -> dict[str, Any] | None:
    """What the delivery of a status change tells its incident: its own ticket set pending or
    resolved waits for the customer from now on (``monitor.policy.followup``); a customer's
    notice ticket is not followed."""
    if action.notice is None and action.status in ("pending", "resolved"):
        return {"ticket_state": action.status, "pending_since": at}
    return None


def to_json(action: Action) -> dict[str, Any]:
    """The stored form (without channel and operation, which have columns of their own)."""
    data = _to_json(action)
    if isinstance(action, CreateTicket | AddNote | SetStatus) and action.notice is not None:
        data["notice"] = action.notice
    return data


def _to_json(action: Action) -> dict[str, Any]:
    if isinstance(action, CreateTicket):
        draft = action.draft
        return {
            "v": VERSION,
            "draft": {
                "dedup_key": draft.dedup_key,
                "subject": draft.subject,
                "description": draft.description,
                "priority": draft.priority,
                "requester_email": draft.requester_email,
                "target": draft.target,
                "customer": draft.customer,
                "tags": list(draft.tags),
            },
        }
    if isinstance(action, AddNote):
        return {"v": VERSION, "body": action.body, "public": action.public}
    if isinstance(action, SetStatus):
        return {"v": VERSION, "status": action.status}
    if isinstance(action, SendPage):
        page = action.page
        data: dict[str, Any] = {
            "v": VERSION,
            "page": {
                "dedup_key": page.dedup_key,
                "summary": page.summary,
                "details": page.details,
                "priority": page.priority,
                "reason": page.reason,
                "target": page.target,
                "customer": page.customer,
            },
        }
        if action.not_before is not None:
            data["not_before"] = action.not_before
        return data
    return {"v": VERSION, "summary": action.summary}


def from_json(channel: str, operation: str, data: dict[str, Any]) -> Action:
    """The action a stored row holds, whatever version wrote it; ValueError if it is none."""
    data = _upgrade(dict(data))
    pager = channel.split(":", 1)[1] if channel.startswith("pager:") else None
    notice = None if data.get("notice") is None else str(data["notice"])
    if channel == "ticket" and operation == "create":
        draft = data["draft"]
        return CreateTicket(
            TicketDraft(
                dedup_key=str(draft["dedup_key"]),
                subject=str(draft["subject"]),
                description=str(draft["description"]),
                priority=_priority(draft.get("priority")),
                requester_email=draft.get("requester_email"),
                target=str(draft["target"]),
                customer=draft.get("customer"),
                tags=tuple(str(tag) for tag in draft.get("tags", ())),
            ),
            notice,
        )
    if channel == "ticket" and operation == "note":
        return AddNote(str(data["body"]), bool(data["public"]), notice)
    if channel == "ticket" and operation == "status":
        status = data["status"]
        for known in NEW_STATUSES:
            if status == known:
                return SetStatus(known, notice)
        raise ValueError(f"unknown ticket status {status!r}")
    if pager is not None and operation == "page":
        page = data["page"]
        reason: PageReason = page.get("reason", "open")
        return SendPage(
            pager,
            Page(
                dedup_key=str(page["dedup_key"]),
                summary=str(page["summary"]),
                details=str(page.get("details", "")),
                priority=_priority(page.get("priority")),
                reason=reason,
                target=str(page["target"]),
                customer=page.get("customer"),
            ),
            data.get("not_before"),
        )
    if pager is not None and operation == "resolve":
        return ResolvePage(pager, str(data["summary"]))
    raise ValueError(f"no action {channel} {operation}")


def _upgrade(data: dict[str, Any]) -> dict[str, Any]:
    """Bring an older stored form up to VERSION, one step at a time."""
    version = int(data.pop("v", 0))
    if version > VERSION:
        raise ValueError(f"action written by a newer watchdesk (version {version})")
    # Version 0 (watchdesk 0.1, no "v") has the same fields as version 1; version 2 added the
    # optional "notice", absent (the incident's own ticket) in every older row.
    return data


def _priority(value: Any) -> Priority:
    for priority in PRIORITIES:
        if value == priority:
            return priority
    return "urgent"
