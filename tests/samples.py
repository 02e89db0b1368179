"""Sample values the integration tests share."""

from __future__ import annotations

from ticketing.base import TicketDraft

DRAFT = TicketDraft(
    dedup_key="watchdesk-web-17",
    subject="[URGENT] web is down",
    description="web failed 3 checks since 10:00 UTC\nlast error: status 503",
    priority="urgent",
    requester_email="it@acme.example",
    target="web",
    customer="acme",
    tags=("watchdesk", "watchdesk-web-17", "web"),
)
