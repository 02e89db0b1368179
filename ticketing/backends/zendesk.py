"""Zendesk Support API (https://developer.zendesk.com/api-reference/ticketing/tickets/tickets/).

Endpoints and values used, as documented there:

- Authentication: HTTP basic with ``{email}/token`` as user name and the API token as password
  (https://developer.zendesk.com/api-reference/introduction/security-and-auth/).
- Create Ticket: ``POST /api/v2/tickets.json`` with ``{"ticket": {...}}``; the first
  ``comment`` (``body``, ``public``) is the description; ``priority`` is one of urgent, high,
  normal, low; ``requester`` ``{email, name}`` creates the end user when unknown;
  ``external_id`` is a free string that List Tickets can filter on; ``tags``; ``group_id``.
- List Tickets: ``GET /api/v2/tickets.json?external_id=...`` ("external ids don't have to be
  unique for each ticket": we take the lowest id).
- Update Ticket: ``PUT /api/v2/tickets/{id}.json`` with a ``comment`` (``public`` false makes
  an internal note) and/or a ``status`` (new, open, pending, hold, solved, closed). A closed
  ticket refuses every update (422).
- Show Ticket: ``GET /api/v2/tickets/{id}.json``; ``assignee_id`` is the agent working it,
  ``requester_id`` the customer.
- List Comments: ``GET /api/v2/tickets/{id}/comments.json`` with ``sort_order=desc`` (newest
  first) and ``per_page`` (at most 100); each comment has ``author_id``, ``public`` and
  ``created_at`` (https://developer.zendesk.com/api-reference/ticketing/tickets/ticket_comments/).
  A customer's reply is a public comment whose author is the ticket's requester; Zendesk itself
  moves a pending or solved ticket back to open when the requester replies.
  To look for a note whose answer was lost, the same list newest first, page after page
  (``page``; ``next_page`` is null on the last), matching ``public`` and ``body`` (or
  ``plain_body``) of comments whose ``author_id`` is ours: Show Self, ``GET
  /api/v2/users/me.json`` (https://developer.zendesk.com/api-reference/ticketing/users/users/#show-self),
  asked once. A note goes in a PUT, which aiohttp would send again by itself when the
  connection drops before the answer: notes use a session that never does.
- Errors: 401 ``{"error": "Couldn't authenticate you"}``; 422 ``{"error": "RecordInvalid",
  "description": "Record validation errors", "details": {field: [...]}}``; 429 with
  ``Retry-After`` (https://developer.zendesk.com/api-reference/introduction/rate-limits/).
"""

from __future__ import annotations

from typing import Any, ClassVar, Final

from pydantic import HttpUrl

from ticketing.base import (
    NewStatus,
    Priority,
    TicketDraft,
    TicketInfo,
    TicketRef,
    TicketStatus,
    priority_of,
    same_text,
)
from ticketing.errors import OutcomeUnknown, RetryableError
from ticketing.http import DEFAULT_TIMEOUT, JsonHttp, basic_auth
from ticketing.settings import IntegrationSettings
from ticketing.timestamps import epoch, latest

PRIORITIES: Final[dict[Priority, str]] = {
    "urgent": "urgent",
    "high": "high",
    "medium": "normal",
    "low": "low",
}
STATUSES: Final[dict[str, TicketStatus]] = {
    "new": "open",
    "open": "open",
    "pending": "pending",
    "hold": "pending",  # waiting on a third party: someone is on it
    "solved": "resolved",
    "closed": "closed",
}
SET_STATUSES: Final[dict[NewStatus, str]] = {
    "open": "open",
    "pending": "pending",
    "resolved": "solved",
    "closed": "closed",
}
COMMENT_PAGE: Final = 100


class ZendeskSettings(IntegrationSettings):
    SECRETS: ClassVar[tuple[str, ...]] = ("api_token",)
    REQUIRED_SECRETS: ClassVar[tuple[str, ...]] = ("api_token",)

    url: HttpUrl
    email: str
    api_token_env: str | None = None
    api_token_file: str | None = None
    requester_email: str
    group_id: int | None = None


# --- pure payload building -----------------------------------------------------------------


def ticket_tags(draft: TicketDraft) -> list[str]:
    """``watchdesk``, the dedup key, then the draft's own tags, without repeats."""
    tags: list[str] = []
    for tag in ("watchdesk", draft.dedup_key, *draft.tags):
        tag = tag.strip()
        if tag and tag not in tags:
            tags.append(tag)
    return tags


def create_payload(draft: TicketDraft, settings: ZendeskSettings) -> dict[str, Any]:
    email = draft.requester_email or settings.requester_email
    ticket: dict[str, Any] = {
        "subject": draft.subject,
        "comment": {"body": draft.description, "public": True},
        "priority": PRIORITIES[draft.priority],
        "requester": {"email": email, "name": draft.customer or email.split("@", 1)[0]},
        "tags": ticket_tags(draft),
        "external_id": draft.dedup_key,
    }
    if settings.group_id is not None:
        ticket["group_id"] = settings.group_id
    return {"ticket": ticket}


def comment_payload(body: str, public: bool) -> dict[str, Any]:
    return {"ticket": {"comment": {"body": body, "public": public}}}


def is_note(comment: Any, author_id: object, body: str, public: bool) -> bool:
    """Whether a listed comment is this note of ours, as Zendesk keeps it."""
    return (
        isinstance(comment, dict)
        and comment.get("author_id") == author_id
        and bool(comment.get("public", True)) == public
        and any(
            isinstance(comment.get(key), str) and same_text(comment[key], body)
            for key in ("body", "plain_body")
        )
    )


def status_payload(status: NewStatus) -> dict[str, Any]:
    return {"ticket": {"status": SET_STATUSES[status]}}


def customer_reply_at(
    ticket: dict[str, Any], comments: list[Any], replies_since: float
) -> float | None:
    """The latest public comment of the ticket's requester after ``replies_since``."""
    requester = ticket.get("requester_id")
    return latest(
        [
            epoch(c.get("created_at"))
            for c in comments
            if isinstance(c, dict)
            and requester is not None
            and c.get("author_id") == requester
            and c.get("public", True)
        ],
        replies_since,
    )


def ticket_info(ticket: dict[str, Any], replied: float | None = None) -> TicketInfo:
    raw = ticket.get("status")
    assignee = ticket.get("assignee_id")
    extra: dict[str, str] = {}
    if ticket.get("group_id") is not None:
        extra["group_id"] = str(ticket["group_id"])
    return TicketInfo(
        status=STATUSES.get(raw, "open") if isinstance(raw, str) else "open",
        assignee=str(assignee) if assignee is not None else None,
        raw_status=str(raw) if raw is not None else None,
        extra=extra,
        waiting_on_customer=raw == "pending",
        last_customer_reply_at=replied,
        priority=priority_of(PRIORITIES, ticket.get("priority")),
    )


# --- the backend ---------------------------------------------------------------------------


class ZendeskBackend:
    name = "zendesk"
    reports_replies = True

    def __init__(
        self, settings: ZendeskSettings, secret: str, timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        self.settings = settings
        self.base_url = str(settings.url).rstrip("/")
        self._http = JsonHttp(
            self.name,
            self.base_url,
            headers=basic_auth(f"{settings.email}/token", secret),
            timeout=timeout,
        )
        self._notes = JsonHttp(
            self.name,
            self.base_url,
            headers=basic_auth(f"{settings.email}/token", secret),
            timeout=timeout,
            replay_dropped=False,
        )
        self._me: object = None  # our user id, from Show Self

    def ticket_url(self, ticket_id: str) -> str:
        return f"{self.base_url}/agent/tickets/{ticket_id}"

    def _ref(self, ticket: Any) -> TicketRef:
        if not isinstance(ticket, dict) or ticket.get("id") is None:
            raise OutcomeUnknown(f"{self.name}: answer without a ticket id")
        ticket_id = str(ticket["id"])
        return TicketRef(id=ticket_id, url=self.ticket_url(ticket_id))

    async def create(self, draft: TicketDraft) -> TicketRef:
        _, body = await self._http.request(
            "POST", "/api/v2/tickets.json", json_body=create_payload(draft, self.settings)
        )
        return self._ref(body.get("ticket") if isinstance(body, dict) else None)

    async def find(self, dedup_key: str) -> TicketRef | None:
        _, body = await self._http.request(
            "GET", "/api/v2/tickets.json", params={"external_id": dedup_key}
        )
        tickets = body.get("tickets") if isinstance(body, dict) else None
        candidates = [
            t
            for t in tickets or []
            if isinstance(t, dict) and "id" in t and t.get("external_id", dedup_key) == dedup_key
        ]
        if not candidates:
            return None
        return self._ref(min(candidates, key=lambda t: int(t["id"])))

    async def add_note(self, ref: TicketRef, body: str, public: bool) -> None:
        await self._notes.request(
            "PUT", f"/api/v2/tickets/{ref.id}.json", json_body=comment_payload(body, public)
        )

    async def _author_id(self) -> object:
        if self._me is None:
            _, body = await self._http.request("GET", "/api/v2/users/me.json")
            user = body.get("user") if isinstance(body, dict) else None
            if not isinstance(user, dict) or user.get("id") is None:
                raise RetryableError(f"{self.name}: users/me: answer is not a user")
            self._me = user["id"]
        return self._me

    async def has_note(self, ref: TicketRef, body: str, public: bool) -> bool:
        author_id = await self._author_id()
        page = 1
        while True:
            _, listed = await self._http.request(
                "GET",
                f"/api/v2/tickets/{ref.id}/comments.json",
                params={"sort_order": "desc", "per_page": str(COMMENT_PAGE), "page": str(page)},
            )
            comments = listed.get("comments") if isinstance(listed, dict) else None
            if not isinstance(comments, list):
                raise RetryableError(f"{self.name}: ticket {ref.id}: answer is not a list")
            if any(is_note(c, author_id, body, public) for c in comments):
                return True
            if not listed.get("next_page"):
                return False
            page += 1

    async def set_status(self, ref: TicketRef, status: NewStatus) -> None:
        await self._http.request(
            "PUT", f"/api/v2/tickets/{ref.id}.json", json_body=status_payload(status)
        )

    async def get(self, ref: TicketRef, replies_since: float | None = None) -> TicketInfo:
        _, body = await self._http.request("GET", f"/api/v2/tickets/{ref.id}.json")
        ticket = body.get("ticket") if isinstance(body, dict) else None
        if not isinstance(ticket, dict):
            raise RetryableError(f"{self.name}: ticket {ref.id}: answer is not a ticket")
        if replies_since is None:
            return ticket_info(ticket)
        _, listed = await self._http.request(
            "GET",
            f"/api/v2/tickets/{ref.id}/comments.json",
            params={"sort_order": "desc", "per_page": str(COMMENT_PAGE)},
        )
        comments = listed.get("comments") if isinstance(listed, dict) else None
        return ticket_info(ticket, customer_reply_at(ticket, comments or [], replies_since))

    async def aclose(self) -> None:
        await self._http.aclose()
        await self._notes.aclose()
