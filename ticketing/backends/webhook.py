"""Tickets as JSON POSTs of each lifecycle event to a URL of yours, optionally HMAC-signed.

This is watchdesk's own format (there is no outside API to follow). Every call is ONE POST of
``application/json`` to ``url``, with ``headers`` added::

    {"event": "create" | "note" | "status" | "find" | "get",
     "dedup_key": "watchdesk-web-17" | null,    # create and find; null on the others
     "ticket": {...},                           # see below
     "sent_at": "2026-05-01T10:00:00Z"}

- ``create``: ``ticket`` = ``{subject, description, priority, requester_email, target,
  customer, tags}``. The receiver may answer ``{"id": "...", "url": "..."}``; without an id the
  ticket's id is the dedup key. A create may arrive twice for one incident (a lost answer is
  retried): treat ``dedup_key`` as the idempotency key.
- ``note``: ``ticket`` = ``{id, url}``, plus ``"note": {"body", "public"}``.
- ``status``: ``ticket`` = ``{id, url}``, plus ``"status": "pending" | "resolved"`` (the
  agent never sends ``open`` or ``closed`` here: see below).
- ``find`` (reconciliation after a create whose answer was lost): ``ticket`` is null. Answer
  ``{"id": ..., "url": ...}`` for the ticket of that dedup key; 404 (or 405/501, or a 2xx
  without an id) means none.
- ``get``: ``ticket`` = ``{id, url}``. Answer ``{"status": "open"|"pending"|"resolved"|"closed",
  "assignee": "..."}`` if you track tickets; anything else reads as "open, nobody assigned",
  which means escalation goes by pager acknowledgements alone. ``"pending"`` counts as waiting
  on the customer (the SLA clocks stop while it holds).

A receiver cannot tell watchdesk that the customer replied (``reports_replies`` is False): with
this backend watchdesk neither reopens a ticket on a reply nor closes a pending one after
``auto_close_after``; the receiver's own helpdesk does what it does.

Later events name the ticket by ``ticket.id``: the id the receiver answered to create, or the
dedup key when it answered none. ``send_queries = false`` stops ``find`` and ``get`` events for a
receiver that only records (a chat relay): find then finds nothing and get says "open".

Signing: with a secret, ``X-Watchdesk-Signature: sha256=<hex HMAC-SHA256 of the raw body, keyed
with the secret>`` and ``X-Watchdesk-Timestamp: <unix seconds>`` (the same moment as ``sent_at``,
which sits inside the signed body: check it to refuse replays). ``X-Watchdesk-Event`` repeats
the event. Statuses are handled as everywhere else: 2xx is done, 429/5xx retried (honouring
``Retry-After``), other 4xx refused for good, a timeout or a dropped connection "outcome unknown".
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any, ClassVar, Final, Literal

from pydantic import HttpUrl

from ticketing.base import NewStatus, TicketDraft, TicketInfo, TicketRef, TicketStatus
from ticketing.http import DEFAULT_TIMEOUT, JsonHttp
from ticketing.settings import IntegrationSettings

Event = Literal["create", "note", "status", "find", "get"]
SIGNATURE_HEADER: Final = "X-Watchdesk-Signature"
TIMESTAMP_HEADER: Final = "X-Watchdesk-Timestamp"
EVENT_HEADER: Final = "X-Watchdesk-Event"
# Answers to find/get that mean "this receiver keeps no tickets".
UNSUPPORTED: Final = frozenset({404, 405, 501})
STATUSES: Final[frozenset[str]] = frozenset({"open", "pending", "resolved", "closed"})


class WebhookBackendSettings(IntegrationSettings):
    SECRETS: ClassVar[tuple[str, ...]] = ("secret",)

    url: HttpUrl
    secret_env: str | None = None
    secret_file: str | None = None
    headers: dict[str, str] = {}
    send_queries: bool = True


# --- pure payload building -----------------------------------------------------------------


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def ref_json(ref: TicketRef) -> dict[str, Any]:
    return {"id": ref.id, "url": ref.url}


def create_event(draft: TicketDraft, sent_at: datetime) -> dict[str, Any]:
    return {
        "event": "create",
        "dedup_key": draft.dedup_key,
        "ticket": {
            "subject": draft.subject,
            "description": draft.description,
            "priority": draft.priority,
            "requester_email": draft.requester_email,
            "target": draft.target,
            "customer": draft.customer,
            "tags": list(draft.tags),
        },
        "sent_at": iso(sent_at),
    }


def find_event(dedup_key: str, sent_at: datetime) -> dict[str, Any]:
    return {"event": "find", "dedup_key": dedup_key, "ticket": None, "sent_at": iso(sent_at)}


def note_event(ref: TicketRef, body: str, public: bool, sent_at: datetime) -> dict[str, Any]:
    return {
        "event": "note",
        "dedup_key": None,
        "ticket": ref_json(ref),
        "note": {"body": body, "public": public},
        "sent_at": iso(sent_at),
    }


def status_event(ref: TicketRef, status: NewStatus, sent_at: datetime) -> dict[str, Any]:
    return {
        "event": "status",
        "dedup_key": None,
        "ticket": ref_json(ref),
        "status": status,
        "sent_at": iso(sent_at),
    }


def get_event(ref: TicketRef, sent_at: datetime) -> dict[str, Any]:
    return {"event": "get", "dedup_key": None, "ticket": ref_json(ref), "sent_at": iso(sent_at)}


def encode(event: dict[str, Any]) -> bytes:
    """The exact bytes sent (and signed)."""
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def signature(secret: str, body: bytes) -> str:
    """``sha256=`` and the hex HMAC-SHA256 of the raw body."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def signed_headers(
    event: dict[str, Any], body: bytes, secret: str | None, sent_at: datetime
) -> dict[str, str]:
    headers = {"Content-Type": "application/json", EVENT_HEADER: str(event["event"])}
    if secret:
        headers[SIGNATURE_HEADER] = signature(secret, body)
        headers[TIMESTAMP_HEADER] = str(int(sent_at.timestamp()))
    return headers


def ref_from_answer(answer: Any, fallback_id: str | None) -> TicketRef | None:
    """The receiver's ``{"id", "url"}``; without an id, ``fallback_id`` (None: no ticket)."""
    answer = answer if isinstance(answer, dict) else {}
    raw_id = answer.get("id")
    url = answer.get("url")
    url = str(url) if isinstance(url, str) and url else None
    if isinstance(raw_id, (str, int)) and not isinstance(raw_id, bool) and str(raw_id):
        return TicketRef(id=str(raw_id), url=url)
    if fallback_id is None:
        return None
    return TicketRef(id=fallback_id, url=url)


def info_from_answer(answer: Any) -> TicketInfo:
    """The receiver's ``{"status", "assignee"}``; anything else reads as open, unassigned."""
    answer = answer if isinstance(answer, dict) else {}
    raw = answer.get("status")
    status: TicketStatus = "open"
    if isinstance(raw, str) and raw in STATUSES:
        status = raw  # type: ignore[assignment]
    assignee = answer.get("assignee")
    return TicketInfo(
        status=status,
        assignee=str(assignee) if isinstance(assignee, (str, int)) and str(assignee) else None,
        raw_status=raw if isinstance(raw, str) else None,
        waiting_on_customer=status == "pending",
    )


# --- the backend ---------------------------------------------------------------------------


class WebhookBackend:
    name = "webhook"
    reports_replies = False

    def __init__(
        self,
        settings: WebhookBackendSettings,
        secret: str | None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.settings = settings
        self.url = str(settings.url)
        self._secret = secret
        self._http = JsonHttp(
            self.name,
            self.url,
            headers={"User-Agent": "watchdesk", **settings.headers},
            timeout=timeout,
        )

    async def _post(
        self, event: dict[str, Any], sent_at: datetime, accept: frozenset[int] = frozenset()
    ) -> tuple[int, Any]:
        body = encode(event)
        return await self._http.request(
            "POST",
            self.url,
            data=body,
            headers=signed_headers(event, body, self._secret, sent_at),
            accept=accept,
        )

    async def create(self, draft: TicketDraft) -> TicketRef:
        now = datetime.now(UTC)
        _, answer = await self._post(create_event(draft, now), now)
        return ref_from_answer(answer, fallback_id=draft.dedup_key) or TicketRef(draft.dedup_key)

    async def find(self, dedup_key: str) -> TicketRef | None:
        if not self.settings.send_queries:
            return None
        now = datetime.now(UTC)
        status, answer = await self._post(find_event(dedup_key, now), now, accept=UNSUPPORTED)
        if status in UNSUPPORTED:
            return None
        return ref_from_answer(answer, fallback_id=None)

    async def add_note(self, ref: TicketRef, body: str, public: bool) -> None:
        now = datetime.now(UTC)
        await self._post(note_event(ref, body, public, now), now)

    async def set_status(self, ref: TicketRef, status: NewStatus) -> None:
        now = datetime.now(UTC)
        await self._post(status_event(ref, status, now), now)

    async def get(self, ref: TicketRef, replies_since: float | None = None) -> TicketInfo:
        if not self.settings.send_queries:
            return TicketInfo(status="open")
        now = datetime.now(UTC)
        status, answer = await self._post(get_event(ref, now), now, accept=UNSUPPORTED)
        if status in UNSUPPORTED:
            return TicketInfo(status="open")
        return info_from_answer(answer)

    async def aclose(self) -> None:
        await self._http.aclose()
