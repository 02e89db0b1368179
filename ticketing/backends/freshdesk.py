"""Freshdesk API v2 (https://developers.freshdesk.com/api/).

Endpoints and values used, as documented there:

- Authentication: HTTP basic, the API key as user name and any password ("X")
  (https://developers.freshdesk.com/api/#authentication).
- Create a ticket: ``POST /api/v2/tickets`` (https://developers.freshdesk.com/api/#create_ticket).
  ``description`` is HTML; ``priority`` 1 Low, 2 Medium, 3 High, 4 Urgent; ``status`` 2 Open,
  3 Pending, 4 Resolved, 5 Closed; ``source`` 1 Email, 2 Portal, 3 Phone, 7 Chat, 9 Feedback
  widget, 10 Outbound email, and 2 is the documented default, so we send 2. Every tag is at
  most 32 characters. Unknown body fields are refused with 400 ``invalid_field``, so the
  payload holds only documented fields.
- Filter tickets: ``GET /api/v2/search/tickets?query="tag:'x'"`` -- the whole query in double
  quotes, string values in single quotes (https://developers.freshdesk.com/api/#filter_tickets).
  The search index lags by minutes: this is only the reconciliation path.
- Notes: ``POST /api/v2/tickets/{id}/notes`` with ``private``
  (https://developers.freshdesk.com/api/#add_note_to_a_ticket); replies, which e-mail the
  requester: ``POST /api/v2/tickets/{id}/reply`` (https://developers.freshdesk.com/api/#reply_ticket).
- Conversations (notes and replies), to look for a note whose answer was lost:
  ``GET /api/v2/tickets/{id}/conversations`` with ``page`` and ``per_page`` (at most 100)
  (https://developers.freshdesk.com/api/#list_all_ticket_notes).
- Update / view: ``PUT`` / ``GET /api/v2/tickets/{id}``
  (https://developers.freshdesk.com/api/#update_ticket, #view_a_ticket); ``responder_id`` is the
  assigned agent. ``?include=stats`` adds ``stats`` (``requester_responded_at``,
  ``agent_responded_at``, ``status_updated_at``, ``pending_since``, ...): the requester's last
  reply, which Freshdesk keeps from their incoming conversations, in the same request. On a
  requester's reply Freshdesk itself moves a pending or resolved ticket back to Open.
- Errors: ``{"description": "Validation failed", "errors": [{"field", "message", "code"}]}``,
  429 with ``Retry-After`` (https://developers.freshdesk.com/api/#error, #ratelimit).
"""

from __future__ import annotations

import hashlib
import html
import re
from typing import Any, ClassVar, Final, Literal

from pydantic import Field, HttpUrl

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

PRIORITIES: Final[dict[Priority, int]] = {"low": 1, "medium": 2, "high": 3, "urgent": 4}
STATUS_OPEN: Final = 2
STATUS_PENDING: Final = 3
STATUS_RESOLVED: Final = 4
STATUS_CLOSED: Final = 5
CONVERSATIONS_PAGE: Final = 100  # the most Freshdesk lists per page
SOURCE_PORTAL: Final = 2  # the documented default source of a ticket created through the API
SET_STATUSES: Final[dict[NewStatus, int]] = {
    "open": STATUS_OPEN,
    "pending": STATUS_PENDING,
    "resolved": STATUS_RESOLVED,
    "closed": STATUS_CLOSED,
}
STATUSES: Final[dict[int, TicketStatus]] = {
    STATUS_OPEN: "open",
    STATUS_PENDING: "pending",
    STATUS_RESOLVED: "resolved",
    STATUS_CLOSED: "closed",
}
MAX_TAG_LENGTH: Final = 32
_SAFE_TAG = re.compile(r"^[A-Za-z0-9_.:-]+$")


class FreshdeskSettings(IntegrationSettings):
    SECRETS: ClassVar[tuple[str, ...]] = ("api_key",)
    REQUIRED_SECRETS: ClassVar[tuple[str, ...]] = ("api_key",)

    url: HttpUrl = Field(description="https://<domain>.freshdesk.com")
    api_key_env: str | None = None
    api_key_file: str | None = None
    requester_email: str = Field(pattern=r"^[^@\s]+@[^@\s]+$")
    group_id: int | None = None
    ticket_type: str | None = None
    customer_updates: Literal["reply", "note"] = "note"


# --- pure payload building -----------------------------------------------------------------


def text_to_html(text: str) -> str:
    """Plain text as Freshdesk HTML: escaped, each line break a ``<br>``."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return "<br>".join(html.escape(line, quote=False) for line in lines)


def dedup_tag(dedup_key: str) -> str:
    """The tag that carries a dedup key: the key itself when Freshdesk accepts it as a tag
    (at most 32 characters, no quotes or spaces), else a stable digest of it."""
    if len(dedup_key) <= MAX_TAG_LENGTH and _SAFE_TAG.match(dedup_key):
        return dedup_key
    return "watchdesk-" + hashlib.sha256(dedup_key.encode()).hexdigest()[:22]


def ticket_tags(draft: TicketDraft) -> list[str]:
    """``watchdesk``, the dedup tag, then the draft's own tags; no repeats, each <= 32 chars."""
    tags: list[str] = []
    for tag in ("watchdesk", dedup_tag(draft.dedup_key), *draft.tags):
        if tag == draft.dedup_key:
            tag = dedup_tag(tag)
        tag = tag.strip()[:MAX_TAG_LENGTH]
        if tag and tag not in tags:
            tags.append(tag)
    return tags


def create_payload(draft: TicketDraft, settings: FreshdeskSettings) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "subject": draft.subject,
        "description": text_to_html(draft.description),
        "email": draft.requester_email or settings.requester_email,
        "priority": PRIORITIES[draft.priority],
        "status": STATUS_OPEN,
        "source": SOURCE_PORTAL,
        "tags": ticket_tags(draft),
    }
    if settings.group_id is not None:
        payload["group_id"] = settings.group_id
    if settings.ticket_type is not None:
        payload["type"] = settings.ticket_type
    return payload


def search_query(dedup_key: str) -> str:
    """The ``query`` parameter of Filter Tickets: double-quoted, the tag single-quoted."""
    return f"\"tag:'{dedup_tag(dedup_key)}'\""


def note_payload(body: str, private: bool) -> dict[str, Any]:
    return {"body": text_to_html(body), "private": private}


def reply_payload(body: str) -> dict[str, Any]:
    return {"body": text_to_html(body)}


def html_to_text(body: str) -> str:
    """A conversation's HTML body as the text it was made from (tags gone, entities decoded)."""
    return html.unescape(re.sub(r"<[^>]+>", " ", body))


def status_payload(status: NewStatus) -> dict[str, Any]:
    return {"status": SET_STATUSES[status]}


def ticket_info(ticket: dict[str, Any], replies_since: float | None = None) -> TicketInfo:
    """The ticket as viewed (with ``include=stats`` when ``replies_since`` is given)."""
    raw = ticket.get("status")
    status = STATUSES.get(raw, "open") if isinstance(raw, int) else "open"
    responder = ticket.get("responder_id")
    extra: dict[str, str] = {}
    if ticket.get("group_id") is not None:
        extra["group_id"] = str(ticket["group_id"])
    replied = None
    stats = ticket.get("stats")
    if replies_since is not None and isinstance(stats, dict):
        replied = latest([epoch(stats.get("requester_responded_at"))], replies_since)
    return TicketInfo(
        status=status,
        assignee=str(responder) if responder is not None else None,
        raw_status=str(raw) if raw is not None else None,
        extra=extra,
        waiting_on_customer=raw == STATUS_PENDING,
        last_customer_reply_at=replied,
        priority=priority_of(PRIORITIES, ticket.get("priority")),
    )


# --- the backend ---------------------------------------------------------------------------


class FreshdeskBackend:
    name = "freshdesk"
    reports_replies = True

    def __init__(
        self, settings: FreshdeskSettings, secret: str, timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        self.settings = settings
        self.base_url = str(settings.url).rstrip("/")
        self._http = JsonHttp(
            self.name,
            self.base_url,
            headers=basic_auth(secret, "X"),
            timeout=timeout,
        )

    def ticket_url(self, ticket_id: str) -> str:
        return f"{self.base_url}/a/tickets/{ticket_id}"

    def _ref(self, ticket: Any) -> TicketRef:
        if not isinstance(ticket, dict) or ticket.get("id") is None:
            # A 2xx without a usable ticket: whatever happened, we cannot tell which ticket.
            raise OutcomeUnknown(f"{self.name}: answer without a ticket id")
        ticket_id = str(ticket["id"])
        return TicketRef(id=ticket_id, url=self.ticket_url(ticket_id))

    async def create(self, draft: TicketDraft) -> TicketRef:
        _, body = await self._http.request(
            "POST", "/api/v2/tickets", json_body=create_payload(draft, self.settings)
        )
        return self._ref(body)

    async def find(self, dedup_key: str) -> TicketRef | None:
        _, body = await self._http.request(
            "GET", "/api/v2/search/tickets", params={"query": search_query(dedup_key)}
        )
        results = body.get("results") if isinstance(body, dict) else None
        candidates = [t for t in results or [] if isinstance(t, dict) and "id" in t]
        if not candidates:
            return None
        return self._ref(min(candidates, key=lambda t: int(t["id"])))  # the first one opened

    async def add_note(self, ref: TicketRef, body: str, public: bool) -> None:
        if public and self.settings.customer_updates == "reply":
            await self._http.request(
                "POST", f"/api/v2/tickets/{ref.id}/reply", json_body=reply_payload(body)
            )
        else:
            await self._http.request(
                "POST",
                f"/api/v2/tickets/{ref.id}/notes",
                json_body=note_payload(body, private=not public),
            )

    async def has_note(self, ref: TicketRef, body: str, public: bool) -> bool:
        page = 1
        while True:
            _, listed = await self._http.request(
                "GET",
                f"/api/v2/tickets/{ref.id}/conversations",
                params={"page": str(page), "per_page": str(CONVERSATIONS_PAGE)},
            )
            if not isinstance(listed, list):
                raise RetryableError(f"{self.name}: ticket {ref.id}: answer is not a list")
            for entry in listed:
                if (
                    isinstance(entry, dict)
                    and not entry.get("incoming")
                    and bool(entry.get("private")) == (not public)
                    and same_text(html_to_text(str(entry.get("body", ""))), body)
                ):
                    return True
            if len(listed) < CONVERSATIONS_PAGE:
                return False
            page += 1

    async def set_status(self, ref: TicketRef, status: NewStatus) -> None:
        await self._http.request(
            "PUT", f"/api/v2/tickets/{ref.id}", json_body=status_payload(status)
        )

    async def get(self, ref: TicketRef, replies_since: float | None = None) -> TicketInfo:
        params = {"include": "stats"} if replies_since is not None else None
        _, body = await self._http.request("GET", f"/api/v2/tickets/{ref.id}", params=params)
        if not isinstance(body, dict):
            raise RetryableError(f"{self.name}: ticket {ref.id}: answer is not a ticket")
        return ticket_info(body, replies_since)

    async def aclose(self) -> None:
        await self._http.aclose()
