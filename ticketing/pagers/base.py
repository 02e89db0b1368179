"""The pager interface and the page that crosses it.

A pager turns these calls into one service's API (PagerDuty, Opsgenie, SMTP, ...). Like the
ticket backends it makes one attempt per call and raises a ``ticketing.errors`` error when
that attempt did not succeed; the agent's outbox retries and keeps every page durable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from ticketing.base import Priority

# "database": the agents of a cluster cannot reach their shared database.
PageReason = Literal["open", "escalation", "test", "database"]


@dataclass(frozen=True)
class Page:
    dedup_key: str  # stable per incident: PagerDuty dedup_key, Opsgenie alias
    summary: str  # one line, e.g. "[URGENT] web is down"
    details: str  # plain text, a few short lines that a phone shows well
    priority: Priority
    reason: PageReason
    target: str
    customer: str | None = None
    ticket_url: str | None = None
    source: str = "watchdesk"


class Pager(Protocol):
    name: str
    # Whether ``resolve`` does something on this service: PagerDuty and Opsgenie resolve the
    # alert; email, webhook, apprise and log send a short "[RESOLVED]" message.
    supports_resolve: bool

    async def page(self, page: Page) -> None:
        """Alert a person. Sending the same dedup_key twice must not alert twice where the
        service dedups (PagerDuty, Opsgenie); elsewhere the outbox sends each page once."""
        ...

    async def resolve(self, dedup_key: str, summary: str) -> None:
        """The incident is over: resolve/close the alert where the service has alerts."""
        ...

    async def acknowledged(self, dedup_key: str) -> bool | None:
        """Has someone acknowledged the alert? None when this service cannot tell us."""
        ...

    async def aclose(self) -> None: ...
