"""ServiceNow Table API, incident table (https://developer.servicenow.com/).

Endpoints and values used, as documented in the Table API reference
(https://docs.servicenow.com/bundle/utah-api-reference/page/integrate/inbound-rest/concept/c_TableAPI.html):

- Authentication: HTTP basic (user name and password of an integration user with the itil
  role, or one allowed to write the incident table).
- ``POST /api/now/table/incident`` creates a record; ``GET /api/now/table/incident`` with
  ``sysparm_query`` (an encoded query), ``sysparm_limit`` and ``sysparm_fields`` lists records;
  ``GET`` / ``PATCH /api/now/table/incident/{sys_id}`` reads / updates one. Every answer is
  wrapped in ``{"result": ...}``; errors are ``{"error": {"message", "detail"}, "status":
  "failure"}``; fields the table does not know are ignored, not refused.
- Incident fields (task table): ``short_description``, ``description``, ``urgency`` and
  ``impact`` (1 High, 2 Medium, 3 Low; the priority is computed from them: 1/1 -> 1 Critical,
  1/2 -> 2 High, 2/2 -> 3 Moderate, 3/2 -> 4 Low), ``caller_id``, ``assignment_group``,
  ``correlation_id`` / ``correlation_display`` (the id of the record in an external system),
  ``comments`` (journal: Additional comments, customer-visible) and ``work_notes`` (journal:
  internal), ``state`` (1 New, 2 In Progress, 3 On Hold, 6 Resolved, 7 Closed, 8 Canceled),
  ``hold_reason`` (1 Awaiting Caller), ``close_code`` + ``close_notes`` (required to resolve:
  the out-of-box data policy answers 403 "Data Policy Exception" without them),
  ``assigned_to``. A reference field can be dot-walked in ``sysparm_fields``
  (``caller_id.user_name``: the caller's user name, under that dotted key).
- Journal entries live in ``sys_journal_field`` (``element_id`` = the record's sys_id,
  ``element`` = ``comments`` or ``work_notes``, ``value``, ``sys_created_on``,
  ``sys_created_by`` = the user name). A customer's reply is an additional comment written by
  the incident's caller (by anyone but our integration user when the incident has no caller).
  Dates are UTC ``YYYY-MM-DD HH:MM:SS`` and compare in encoded queries
  (``sys_created_on>2026-11-24 10:00:00``). To look for a note whose answer was lost: the
  incident's entries of the note's element written by our integration user
  (``sys_created_by``), newest first, page after page with ``sysparm_limit`` and
  ``sysparm_offset``, comparing ``value``.

Our priority read back = the (urgency, impact) pair it was created with (URGENCY_IMPACT);
any other pair (say 2/1, also "High" in the lookup) is none of ours: never guessed.

Waiting on the customer = On Hold with hold reason Awaiting Caller (the other hold reasons wait
on a change, a problem or a vendor: someone is on it). Open again = In Progress; closed = state
7 with the close code (a resolved incident is closed by ServiceNow's own auto-close later).
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
from ticketing.timestamps import epoch, latest, servicenow_utc

TABLE: Final = "/api/now/table/incident"
JOURNAL: Final = "/api/now/table/sys_journal_field"
JOURNAL_PAGE: Final = 100
# (urgency, impact): the out-of-box priority lookup gives 1 Critical, 2 High, 3 Moderate, 4 Low.
URGENCY_IMPACT: Final[dict[Priority, tuple[str, str]]] = {
    "urgent": ("1", "1"),
    "high": ("1", "2"),
    "medium": ("2", "2"),
    "low": ("3", "2"),
}
STATE_IN_PROGRESS: Final = "2"
STATE_ON_HOLD: Final = "3"
STATE_RESOLVED: Final = "6"
STATE_CLOSED: Final = "7"
HOLD_AWAITING_CALLER: Final = "1"
STATES: Final[dict[str, TicketStatus]] = {
    "1": "open",  # New
    "2": "open",  # In Progress
    "3": "pending",  # On Hold
    "6": "resolved",
    "7": "closed",
    "8": "closed",  # Canceled
}
STATE_LABELS: Final[dict[str, str]] = {
    "1": "New",
    "2": "In Progress",
    "3": "On Hold",
    "6": "Resolved",
    "7": "Closed",
    "8": "Canceled",
}
CLOSE_NOTES: Final = "Resolved by watchdesk: the monitored service answers again."
CLOSED_NOTES: Final = "Closed by watchdesk: no reply from the caller while it waited on them."
CALLER_NAME: Final = "caller_id.user_name"
GET_FIELDS: Final = f"sys_id,number,state,hold_reason,assigned_to,urgency,impact,{CALLER_NAME}"


class ServiceNowSettings(IntegrationSettings):
    SECRETS: ClassVar[tuple[str, ...]] = ("password",)
    REQUIRED_SECRETS: ClassVar[tuple[str, ...]] = ("password",)

    url: HttpUrl
    username: str
    password_env: str | None = None
    password_file: str | None = None
    caller_id: str | None = None
    assignment_group: str | None = None
    # The resolution code sent with state 6. "Solution provided" is the choice on current
    # releases; instances still on the old list use e.g. "Solved (Permanently)".
    close_code: str = "Solution provided"


# --- pure payload building -----------------------------------------------------------------


def create_payload(draft: TicketDraft, settings: ServiceNowSettings) -> dict[str, Any]:
    urgency, impact = URGENCY_IMPACT[draft.priority]
    payload: dict[str, Any] = {
        "short_description": draft.subject,
        "description": draft.description,
        "urgency": urgency,
        "impact": impact,
        "correlation_id": draft.dedup_key,
        "correlation_display": "watchdesk",
    }
    if settings.caller_id is not None:
        payload["caller_id"] = settings.caller_id
    if settings.assignment_group is not None:
        payload["assignment_group"] = settings.assignment_group
    return payload


def find_params(dedup_key: str) -> dict[str, str]:
    # "^" separates conditions in an encoded query; "^^" is a literal caret.
    value = dedup_key.replace("^", "^^")
    return {
        "sysparm_query": f"correlation_id={value}^ORDERBYsys_created_on",
        "sysparm_limit": "1",
        "sysparm_fields": "sys_id,number",
    }


def note_payload(body: str, public: bool) -> dict[str, Any]:
    return {"comments": body} if public else {"work_notes": body}


def status_payload(status: NewStatus, settings: ServiceNowSettings) -> dict[str, Any]:
    if status == "open":
        return {"state": STATE_IN_PROGRESS, "hold_reason": ""}
    if status == "pending":
        return {"state": STATE_ON_HOLD, "hold_reason": HOLD_AWAITING_CALLER}
    if status == "closed":
        return {
            "state": STATE_CLOSED,
            "close_code": settings.close_code,
            "close_notes": CLOSED_NOTES,
        }
    return {"state": STATE_RESOLVED, "close_code": settings.close_code, "close_notes": CLOSE_NOTES}


def journal_params(sys_id: str, since: float) -> dict[str, str]:
    """The additional comments (customer-visible journal) of an incident after ``since``,
    newest first."""
    return {
        "sysparm_query": f"element_id={sys_id}^element=comments"
        f"^sys_created_on>{servicenow_utc(since)}^ORDERBYDESCsys_created_on",
        "sysparm_fields": "sys_created_on,sys_created_by",
        "sysparm_limit": "50",
    }


def note_params(sys_id: str, public: bool, ours: str, offset: int) -> dict[str, str]:
    """One page of our own journal entries of the element a note of ``public`` goes to."""
    (element,) = note_payload("", public)
    return {
        "sysparm_query": f"element_id={sys_id}^element={element}^sys_created_by={ours}"
        "^ORDERBYDESCsys_created_on",
        "sysparm_fields": "value",
        "sysparm_limit": str(JOURNAL_PAGE),
        "sysparm_offset": str(offset),
    }


def customer_reply_at(
    entries: list[Any], caller: str | None, ours: str, replies_since: float
) -> float | None:
    """The latest comment of the caller (or of anyone but us, without a caller)."""
    return latest(
        [
            epoch(e.get("sys_created_on"))
            for e in entries
            if isinstance(e, dict)
            and (e.get("sys_created_by") == caller if caller else e.get("sys_created_by") != ours)
        ],
        replies_since,
    )


def _reference_value(value: Any) -> str | None:
    """A reference field: "" (empty), a sys_id, or {"link", "value"} without
    ``sysparm_exclude_reference_link``."""
    if isinstance(value, dict):
        value = value.get("value")
    return str(value) if value else None


def ticket_info(record: dict[str, Any], replied: float | None = None) -> TicketInfo:
    raw = str(record.get("state", "")) or None
    extra: dict[str, str] = {}
    if record.get("number"):
        extra["number"] = str(record["number"])
    if raw in STATE_LABELS:
        extra["state_label"] = STATE_LABELS[raw]
    return TicketInfo(
        status=STATES.get(raw or "", "open"),
        assignee=_reference_value(record.get("assigned_to")),
        raw_status=raw,
        extra=extra,
        waiting_on_customer=raw == STATE_ON_HOLD
        and str(record.get("hold_reason", "")) == HOLD_AWAITING_CALLER,
        last_customer_reply_at=replied,
        # A person sets urgency and impact; a pair we never create with is none of ours.
        priority=priority_of(
            URGENCY_IMPACT, (str(record.get("urgency")), str(record.get("impact")))
        ),
    )


# --- the backend ---------------------------------------------------------------------------


class ServiceNowBackend:
    name = "servicenow"
    reports_replies = True

    def __init__(
        self, settings: ServiceNowSettings, secret: str, timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        self.settings = settings
        self.base_url = str(settings.url).rstrip("/")
        self._http = JsonHttp(
            self.name,
            self.base_url,
            headers=basic_auth(settings.username, secret),
            timeout=timeout,
        )

    def ticket_url(self, sys_id: str) -> str:
        return f"{self.base_url}/nav_to.do?uri=incident.do?sys_id={sys_id}"

    def _ref(self, record: Any) -> TicketRef:
        if not isinstance(record, dict) or not record.get("sys_id"):
            raise OutcomeUnknown(f"{self.name}: answer without a sys_id")
        sys_id = str(record["sys_id"])
        return TicketRef(id=sys_id, url=self.ticket_url(sys_id))

    async def create(self, draft: TicketDraft) -> TicketRef:
        _, body = await self._http.request(
            "POST", TABLE, json_body=create_payload(draft, self.settings)
        )
        return self._ref(body.get("result") if isinstance(body, dict) else None)

    async def find(self, dedup_key: str) -> TicketRef | None:
        _, body = await self._http.request("GET", TABLE, params=find_params(dedup_key))
        records = body.get("result") if isinstance(body, dict) else None
        if not isinstance(records, list) or not records:
            return None
        return self._ref(records[0])

    async def add_note(self, ref: TicketRef, body: str, public: bool) -> None:
        await self._http.request("PATCH", f"{TABLE}/{ref.id}", json_body=note_payload(body, public))

    async def has_note(self, ref: TicketRef, body: str, public: bool) -> bool:
        offset = 0
        while True:
            _, listed = await self._http.request(
                "GET", JOURNAL, params=note_params(ref.id, public, self.settings.username, offset)
            )
            entries = listed.get("result") if isinstance(listed, dict) else None
            if not isinstance(entries, list):
                raise RetryableError(f"{self.name}: incident {ref.id}: answer is not a list")
            if any(
                isinstance(e, dict) and same_text(str(e.get("value", "")), body) for e in entries
            ):
                return True
            if len(entries) < JOURNAL_PAGE:
                return False
            offset += JOURNAL_PAGE

    async def set_status(self, ref: TicketRef, status: NewStatus) -> None:
        await self._http.request(
            "PATCH", f"{TABLE}/{ref.id}", json_body=status_payload(status, self.settings)
        )

    async def get(self, ref: TicketRef, replies_since: float | None = None) -> TicketInfo:
        _, body = await self._http.request(
            "GET",
            f"{TABLE}/{ref.id}",
            params={"sysparm_fields": GET_FIELDS, "sysparm_exclude_reference_link": "true"},
        )
        record = body.get("result") if isinstance(body, dict) else None
        if not isinstance(record, dict):
            raise RetryableError(f"{self.name}: incident {ref.id}: answer is not a record")
        if replies_since is None:
            return ticket_info(record)
        _, listed = await self._http.request(
            "GET", JOURNAL, params=journal_params(ref.id, replies_since)
        )
        entries = listed.get("result") if isinstance(listed, dict) else None
        caller = str(record.get(CALLER_NAME) or "") or None
        replied = customer_reply_at(
            entries if isinstance(entries, list) else [],
            caller,
            self.settings.username,
            replies_since,
        )
        return ticket_info(record, replied)

    async def aclose(self) -> None:
        await self._http.aclose()
