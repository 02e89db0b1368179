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
  ``assigned_to``.
"""

from __future__ import annotations

from typing import Any, ClassVar, Final, Literal

from pydantic import HttpUrl

from ticketing.base import Priority, TicketDraft, TicketInfo, TicketRef, TicketStatus
from ticketing.errors import OutcomeUnknown, RetryableError
from ticketing.http import DEFAULT_TIMEOUT, JsonHttp, basic_auth
from ticketing.settings import IntegrationSettings

TABLE: Final = "/api/now/table/incident"
# (urgency, impact): the out-of-box priority lookup gives 1 Critical, 2 High, 3 Moderate, 4 Low.
URGENCY_IMPACT: Final[dict[Priority, tuple[str, str]]] = {
    "urgent": ("1", "1"),
    "high": ("1", "2"),
    "medium": ("2", "2"),
    "low": ("3", "2"),
}
STATE_ON_HOLD: Final = "3"
STATE_RESOLVED: Final = "6"
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
GET_FIELDS: Final = "sys_id,number,state,assigned_to"


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


def status_payload(
    status: Literal["pending", "resolved"], settings: ServiceNowSettings
) -> dict[str, Any]:
    if status == "pending":
        return {"state": STATE_ON_HOLD, "hold_reason": HOLD_AWAITING_CALLER}
    return {"state": STATE_RESOLVED, "close_code": settings.close_code, "close_notes": CLOSE_NOTES}


def _reference_value(value: Any) -> str | None:
    """A reference field: "" (empty), a sys_id, or {"link", "value"} without
    ``sysparm_exclude_reference_link``."""
    if isinstance(value, dict):
        value = value.get("value")
    return str(value) if value else None


def ticket_info(record: dict[str, Any]) -> TicketInfo:
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
    )


# --- the backend ---------------------------------------------------------------------------


class ServiceNowBackend:
    name = "servicenow"

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

    async def set_status(self, ref: TicketRef, status: Literal["pending", "resolved"]) -> None:
        await self._http.request(
            "PATCH", f"{TABLE}/{ref.id}", json_body=status_payload(status, self.settings)
        )

    async def get(self, ref: TicketRef) -> TicketInfo:
        _, body = await self._http.request(
            "GET",
            f"{TABLE}/{ref.id}",
            params={"sysparm_fields": GET_FIELDS, "sysparm_exclude_reference_link": "true"},
        )
        record = body.get("result") if isinstance(body, dict) else None
        if not isinstance(record, dict):
            raise RetryableError(f"{self.name}: incident {ref.id}: answer is not a record")
        return ticket_info(record)

    async def aclose(self) -> None:
        await self._http.aclose()
