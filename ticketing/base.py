"""The ticket backend interface and the values that cross it.

A backend turns these calls into its helpdesk's API. It knows nothing of probes, schedules or
the outbox: it makes one attempt per call and raises a ``ticketing.errors`` error when that
attempt did not succeed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol, TypeVar, runtime_checkable

Priority = Literal["urgent", "high", "medium", "low"]
# The one list of priorities, most urgent first.
PRIORITIES: tuple[Priority, ...] = ("urgent", "high", "medium", "low")
# Normalised ticket statuses, whatever the helpdesk calls them.
TicketStatus = Literal["open", "pending", "resolved", "closed"]
# What the agent may set: open again (a customer replied), waiting on the customer (after
# recovery), resolved, or closed for good (no reply for ``auto_close_after``).
NewStatus = Literal["open", "pending", "resolved", "closed"]
_Value = TypeVar("_Value")


def priority_of(mapping: Mapping[Priority, _Value], value: object) -> Priority | None:
    """Our priority for a helpdesk's own value, by reversing the mapping a backend creates
    tickets with; None for a value it does not map, or one it maps from several priorities (a
    person's choice is never guessed)."""
    if isinstance(value, bool):  # JSON true is no priority, though Python holds it equal to 1
        return None
    found = [priority for priority, mapped in mapping.items() if mapped == value]
    return found[0] if len(found) == 1 else None


@dataclass(frozen=True)
class TicketDraft:
    """Everything needed to open the ticket of one incident."""

    dedup_key: str  # stable per incident, e.g. "watchdesk-web-17"; carried as a tag/label
    subject: str  # e.g. "[URGENT] web is down"
    description: str  # plain text, several lines
    priority: Priority
    requester_email: str | None
    target: str
    customer: str | None = None
    tags: tuple[str, ...] = ()  # always includes "watchdesk" and the dedup key


@dataclass(frozen=True)
class TicketRef:
    """How to find the ticket again: the helpdesk's own id, and a link for people."""

    id: str
    url: str | None = None


@dataclass(frozen=True)
class TicketInfo:
    """What the agent reads back: whether someone is working the ticket, whether it waits on
    the customer, and whether the customer wrote back."""

    status: TicketStatus
    assignee: str | None = None
    raw_status: str | None = None
    extra: dict[str, str] = field(default_factory=dict)
    # The helpdesk's own "pending / waiting on the customer" status. Narrower than status
    # "pending", which also holds Zendesk's hold or Jira's In Progress (someone is on it):
    # only this stops the SLA clocks.
    waiting_on_customer: bool = False
    # The latest reply of the requester after the ``replies_since`` that ``get`` was given
    # (epoch seconds); None when there is none, or the backend was not asked.
    last_customer_reply_at: float | None = None
    # The ticket's priority as the helpdesk shows it now (a person may have changed it there);
    # None when the backend cannot tell, or the helpdesk's value maps to none of ours.
    priority: Priority | None = None


class TicketBackend(Protocol):
    """One helpdesk. Every method is one attempt; failures raise ``ticketing.errors``."""

    name: str
    # Whether ``get`` can tell a customer's reply; False (a webhook receiver): watchdesk
    # neither reopens on a reply nor auto-closes, since it cannot see what the customer did.
    reports_replies: bool

    async def create(self, draft: TicketDraft) -> TicketRef:
        """Open the ticket. Must carry ``draft.dedup_key`` so that ``find`` can see it."""
        ...

    async def find(self, dedup_key: str) -> TicketRef | None:
        """The ticket carrying this dedup key, if any: reconciliation after a lost answer."""
        ...

    async def add_note(self, ref: TicketRef, body: str, public: bool) -> None:
        """A note on the ticket; public: the customer sees it, else internal where possible."""
        ...

    async def set_status(self, ref: TicketRef, status: NewStatus) -> None:
        """Move the ticket to open (again), waiting-on-customer (pending), resolved or closed."""
        ...

    async def get(self, ref: TicketRef, replies_since: float | None = None) -> TicketInfo:
        """Current status and assignee; with ``replies_since``, also the requester's latest
        reply after that moment (one more request where the helpdesk needs it)."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


@runtime_checkable
class NoteFinder(Protocol):
    """A helpdesk that lists a ticket's notes, so a note whose answer was lost (a timeout, a
    crash between sending and recording) is looked for before it is sent again: exactly once
    where the helpdesk lets us, at least once elsewhere."""

    async def has_note(self, ref: TicketRef, body: str, public: bool) -> bool:
        """Whether the ticket already carries a note of this text, as we would have sent it."""
        ...


def same_text(a: str, b: str) -> bool:
    """Two note texts compared as a helpdesk may have reflowed them: whitespace collapsed."""
    return " ".join(a.split()) == " ".join(b.split())
