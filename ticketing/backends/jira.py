"""Jira Cloud REST API v3 (https://developer.atlassian.com/cloud/jira/platform/rest/v3/).

Endpoints and values used, as documented there:

- Authentication: HTTP basic with the account's e-mail as user name and an API token as
  password (https://developer.atlassian.com/cloud/jira/platform/basic-auth-for-rest-apis/).
- Create issue: ``POST /rest/api/3/issue`` with ``{"fields": {project: {key}, summary,
  description, issuetype: {name}, priority: {name}, labels}}``; answers 201 ``{id, key, self}``
  (https://developer.atlassian.com/cloud/jira/platform/rest/v3/api-group-issues/#api-rest-api-3-issue-post).
  In v3 ``description`` and comment bodies are Atlassian Document Format (ADF): a ``doc``
  (version 1) of ``paragraph`` nodes holding ``text`` nodes, and a text node may not be empty
  (https://developer.atlassian.com/cloud/jira/platform/apis/document/structure/). A summary is
  one line of at most 255 characters; a label holds no spaces (at most 255 characters).
- Search: ``POST /rest/api/3/search/jql`` ("enhanced search"), which replaced ``/rest/api/3/search``
  (deprecated, removed in 2025): ``{jql, fields, maxResults}``, answers ``{issues, nextPageToken?,
  isLast}``; the JQL must be bounded (``project = X AND labels = "y"`` is), and recent changes
  may take a moment to show (https://developer.atlassian.com/cloud/jira/platform/rest/v3/api-group-issue-search/#api-rest-api-3-search-jql-post).
  Only the reconciliation path uses it.
- Add comment: ``POST /rest/api/3/issue/{key}/comment`` with an ADF ``body`` and optional
  entity ``properties`` (https://developer.atlassian.com/cloud/jira/platform/rest/v3/api-group-issue-comments/#api-rest-api-3-issue-issueidorkey-comment-post).
  Jira Service Management treats a comment carrying the property ``sd.public.comment`` =
  ``{"internal": true}`` as an internal note (hidden from the customer portal); plain Jira has no
  internal comments and keeps the property as inert data. Internal notes therefore carry that
  property AND start with ``[internal]``, so people on plain Jira can tell them apart.
- Transitions: ``GET /rest/api/3/issue/{key}/transitions`` lists ``{id, name, to: {name,
  statusCategory}}`` that the issue can take now; ``POST`` the same path with
  ``{"transition": {"id": ...}}`` (204) moves it
  (https://developer.atlassian.com/cloud/jira/platform/rest/v3/api-group-issues/#api-rest-api-3-issue-issueidorkey-transitions-get).
  Transition ids and names depend on the workflow, so they are looked up by name every time.
- Get issue: ``GET /rest/api/3/issue/{key}?fields=status,assignee,priority``;
  ``status.statusCategory.key`` is ``new``, ``indeterminate`` or ``done``; ``assignee`` is
  ``{accountId, displayName}`` or null; ``priority`` is ``{id, name}`` (read back through the
  ``priorities`` map: a name it does not hold, or holds twice, is no priority of ours).
- Get comments: ``GET /rest/api/3/issue/{key}/comment?orderBy=-created&maxResults=N`` (newest
  first): ``{comments: [{author: {accountId, accountType}, created, ...}]}``
  (https://developer.atlassian.com/cloud/jira/platform/rest/v3/api-group-issue-comments/#api-rest-api-3-issue-issueidorkey-comment-get).
  A customer's reply is a comment whose author's ``accountType`` is ``customer`` (the portal
  customers of Jira Service Management; plain Jira has no customers to tell apart). To look for
  a note whose answer was lost, the same list page after page (``startAt``, ``maxResults``,
  ``total``), comparing the text (``ticketing.backends.jira_comments``) of comments whose
  ``author.accountId`` is ours: ``GET /rest/api/3/myself``, asked once
  (https://developer.atlassian.com/cloud/jira/platform/rest/v3/api-group-myself/#api-rest-api-3-myself-get).
- Errors: ``{"errorMessages": [...], "errors": {field: message}}``; 400 names the field; 429
  with ``Retry-After`` (https://developer.atlassian.com/cloud/jira/platform/rate-limiting/).

Lifecycle: pending runs ``pending_transition`` (nothing at all when it is not set: plain Jira
has no "waiting on customer" status by default); resolved and closed run ``resolve_transition``;
open (a customer replied) runs ``reopen_transition``, or when that is not set, the first
transition on offer back to a status of category ``new`` (To Do, Open, Waiting for support...).
Each is matched against the transition's name or its target status's name, case-insensitively.
An issue already in the target status is left alone (the transition is no longer offered then),
so a retried call is harmless; any other missing transition is a PermanentError that lists the
transitions on offer. The issue waits on the customer while its status is the one
``pending_transition`` names, or "Waiting for customer" (Jira Service Management's).
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, ClassVar, Final

from pydantic import HttpUrl

from ticketing.backends.jira_comments import adf, comment_payload, is_note
from ticketing.base import (
    NewStatus,
    Priority,
    TicketDraft,
    TicketInfo,
    TicketRef,
    TicketStatus,
    priority_of,
)
from ticketing.errors import OutcomeUnknown, PermanentError, RetryableError
from ticketing.http import DEFAULT_TIMEOUT, JsonHttp, basic_auth
from ticketing.settings import IntegrationSettings
from ticketing.timestamps import epoch, latest

# Jira's default priority scheme: Highest, High, Medium, Low, Lowest.
DEFAULT_PRIORITIES: Final[dict[Priority, str]] = {
    "urgent": "Highest",
    "high": "High",
    "medium": "Medium",
    "low": "Low",
}
# statusCategory.key -> our status. "indeterminate" is every in-between status (In Progress,
# Waiting for customer, ...): the ticket left its first status, so someone is on it.
STATUS_CATEGORIES: Final[dict[str, TicketStatus]] = {
    "new": "open",
    "indeterminate": "pending",
    "done": "resolved",
}
MAX_SUMMARY: Final = 255
MAX_LABEL: Final = 255
SEARCH_FIELDS: Final = ["summary", "created"]
WAITING_FOR_CUSTOMER: Final = "waiting for customer"
COMMENT_PAGE: Final = 50
_WHITESPACE = re.compile(r"\s+")


class JiraSettings(IntegrationSettings):
    SECRETS: ClassVar[tuple[str, ...]] = ("api_token",)
    REQUIRED_SECRETS: ClassVar[tuple[str, ...]] = ("api_token",)

    url: HttpUrl
    email: str
    api_token_env: str | None = None
    api_token_file: str | None = None
    project_key: str
    issue_type: str = "Task"
    resolve_transition: str = "Done"
    pending_transition: str | None = None
    # Back to open after a customer's reply; unset: the first transition to a "new" status.
    reopen_transition: str | None = None
    labels: list[str] = []
    # Our priority -> the name of a priority in the project's priority scheme.
    priorities: dict[Priority, str] = dict(DEFAULT_PRIORITIES)

    def priority_names(self) -> dict[Priority, str]:
        """Every priority's name as issues are created with: the configured one, else the
        default scheme's."""
        return {**DEFAULT_PRIORITIES, **self.priorities}


# --- pure payload building -----------------------------------------------------------------


def summary(subject: str) -> str:
    """A Jira summary: one line, at most 255 characters."""
    return _WHITESPACE.sub(" ", subject).strip()[:MAX_SUMMARY]


def label(text: str) -> str:
    """A Jira label: no whitespace (runs become ``-``), at most 255 characters."""
    return _WHITESPACE.sub("-", text.strip())[:MAX_LABEL]


def dedup_label(dedup_key: str) -> str:
    """The label carrying a dedup key: the key itself when it is a valid label (no spaces, no
    quotes, short enough), else a stable digest of it."""
    if dedup_key and len(dedup_key) <= MAX_LABEL and not re.search(r'[\s"\\]', dedup_key):
        return dedup_key
    return "watchdesk-" + hashlib.sha256(dedup_key.encode()).hexdigest()[:22]


def issue_labels(draft: TicketDraft, settings: JiraSettings) -> list[str]:
    """``watchdesk``, the dedup label, the draft's tags, the configured labels; no repeats."""
    key_label = dedup_label(draft.dedup_key)
    labels: list[str] = []
    for text in ("watchdesk", key_label, *draft.tags, *settings.labels):
        value = key_label if text == draft.dedup_key else label(text)
        if value and value not in labels:
            labels.append(value)
    return labels


def create_payload(draft: TicketDraft, settings: JiraSettings) -> dict[str, Any]:
    return {
        "fields": {
            "project": {"key": settings.project_key},
            "summary": summary(draft.subject),
            "description": adf(draft.description),
            "issuetype": {"name": settings.issue_type},
            "priority": {
                "name": settings.priorities.get(draft.priority, DEFAULT_PRIORITIES[draft.priority])
            },
            "labels": issue_labels(draft, settings),
        }
    }


def jql_string(value: str) -> str:
    """A JQL string literal: double-quoted, with ``"`` and ``\\`` escaped."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def search_payload(dedup_key: str, settings: JiraSettings) -> dict[str, Any]:
    """Enhanced search for the issue carrying the dedup label, oldest first."""
    jql = (
        f"project = {jql_string(settings.project_key)} AND "
        f"labels = {jql_string(dedup_label(dedup_key))} ORDER BY created ASC"
    )
    return {"jql": jql, "fields": list(SEARCH_FIELDS), "maxResults": 10}


def transition_payload(transition_id: str) -> dict[str, Any]:
    return {"transition": {"id": transition_id}}


def pick_transition(transitions: list[dict[str, Any]], wanted: str) -> dict[str, Any] | None:
    """The transition named ``wanted``, or leading to a status named so (case-insensitive)."""
    folded = wanted.casefold()
    for transition in transitions:
        if str(transition.get("name", "")).casefold() == folded:
            return transition
    for transition in transitions:
        target = transition.get("to")
        if isinstance(target, dict) and str(target.get("name", "")).casefold() == folded:
            return transition
    return None


def pick_reopen(transitions: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The first transition on offer to a status of category ``new`` (To Do, Open...)."""
    for transition in transitions:
        target = transition.get("to")
        category = target.get("statusCategory") if isinstance(target, dict) else None
        if isinstance(category, dict) and category.get("key") == "new":
            return transition
    return None


def customer_reply_at(comments: list[Any], replies_since: float) -> float | None:
    """The latest comment of a customer account after ``replies_since``."""
    return latest(
        [
            epoch(c.get("created"))
            for c in comments
            if isinstance(c, dict)
            and isinstance(c.get("author"), dict)
            and c["author"].get("accountType") == "customer"
        ],
        replies_since,
    )


def ticket_info(
    issue: dict[str, Any],
    pending_status: str | None = None,
    replied: float | None = None,
    priorities: dict[Priority, str] = DEFAULT_PRIORITIES,
) -> TicketInfo:
    fields = issue.get("fields")
    fields = fields if isinstance(fields, dict) else {}
    status = fields.get("status")
    status = status if isinstance(status, dict) else {}
    category = status.get("statusCategory")
    category_key = category.get("key") if isinstance(category, dict) else None
    assignee = fields.get("assignee")
    extra: dict[str, str] = {}
    name: str | None = None
    if isinstance(category_key, str):
        extra["status_category"] = category_key
    if isinstance(assignee, dict):
        if assignee.get("accountId"):
            extra["assignee_account_id"] = str(assignee["accountId"])
        name = assignee.get("displayName") or assignee.get("accountId")
    raw = status.get("name")
    priority = fields.get("priority")
    waiting = {WAITING_FOR_CUSTOMER, (pending_status or WAITING_FOR_CUSTOMER).casefold()}
    return TicketInfo(
        status=STATUS_CATEGORIES.get(str(category_key), "open"),
        assignee=str(name) if name else None,
        raw_status=str(raw) if raw is not None else None,
        extra=extra,
        waiting_on_customer=str(raw).casefold() in waiting,
        last_customer_reply_at=replied,
        priority=priority_of(priorities, priority.get("name"))
        if isinstance(priority, dict)
        else None,
    )


# --- the backend ---------------------------------------------------------------------------


class JiraBackend:
    name = "jira"
    reports_replies = True

    def __init__(
        self, settings: JiraSettings, secret: str, timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        self.settings = settings
        self.base_url = str(settings.url).rstrip("/")
        self._http = JsonHttp(
            self.name,
            self.base_url,
            headers=basic_auth(settings.email, secret),
            timeout=timeout,
        )
        self._account_id: str | None = None  # ours, from GET /myself

    def issue_url(self, key: str) -> str:
        return f"{self.base_url}/browse/{key}"

    def _ref(self, issue: Any) -> TicketRef:
        if not isinstance(issue, dict) or not (issue.get("key") or issue.get("id")):
            raise OutcomeUnknown(f"{self.name}: answer without an issue key")
        if issue.get("key"):
            key = str(issue["key"])
            return TicketRef(id=key, url=self.issue_url(key))
        return TicketRef(id=str(issue["id"]))  # Jira takes the numeric id wherever a key goes

    async def create(self, draft: TicketDraft) -> TicketRef:
        _, body = await self._http.request(
            "POST", "/rest/api/3/issue", json_body=create_payload(draft, self.settings)
        )
        return self._ref(body)

    async def find(self, dedup_key: str) -> TicketRef | None:
        _, body = await self._http.request(
            "POST", "/rest/api/3/search/jql", json_body=search_payload(dedup_key, self.settings)
        )
        issues = body.get("issues") if isinstance(body, dict) else None
        candidates = [
            i for i in issues or [] if isinstance(i, dict) and (i.get("key") or i.get("id"))
        ]
        if not candidates:
            return None
        return self._ref(candidates[0])  # ORDER BY created ASC: the first one opened

    async def add_note(self, ref: TicketRef, body: str, public: bool) -> None:
        await self._http.request(
            "POST", f"/rest/api/3/issue/{ref.id}/comment", json_body=comment_payload(body, public)
        )

    async def _ours(self) -> str:
        if self._account_id is None:
            _, me = await self._http.request("GET", "/rest/api/3/myself")
            if not isinstance(me, dict) or not me.get("accountId"):
                raise RetryableError(f"{self.name}: myself: answer without an accountId")
            self._account_id = str(me["accountId"])
        return self._account_id

    async def has_note(self, ref: TicketRef, body: str, public: bool) -> bool:
        ours = await self._ours()
        start = 0
        while True:
            _, listed = await self._http.request(
                "GET",
                f"/rest/api/3/issue/{ref.id}/comment",
                params={"orderBy": "-created", "startAt": str(start), "maxResults": "100"},
            )
            comments = listed.get("comments") if isinstance(listed, dict) else None
            if not isinstance(comments, list):
                raise RetryableError(f"{self.name}: issue {ref.id}: answer is not a list")
            if any(is_note(c, ours, body, public) for c in comments):
                return True
            start += len(comments)
            total = listed.get("total") if isinstance(listed, dict) else None
            if not comments or start >= (total if isinstance(total, int) else start + 1):
                return False

    async def set_status(self, ref: TicketRef, status: NewStatus) -> None:
        settings = self.settings
        wanted = {
            "open": settings.reopen_transition,
            "pending": settings.pending_transition,
            "resolved": settings.resolve_transition,
            "closed": settings.resolve_transition,
        }[status]
        if wanted is None and status == "pending":
            return  # no pending status configured: the ticket stays where it is
        _, body = await self._http.request("GET", f"/rest/api/3/issue/{ref.id}/transitions")
        raw = body.get("transitions") if isinstance(body, dict) else None
        transitions = [t for t in raw or [] if isinstance(t, dict) and t.get("id") is not None]
        transition = pick_transition(transitions, wanted) if wanted else pick_reopen(transitions)
        if transition is not None:
            await self._http.request(
                "POST",
                f"/rest/api/3/issue/{ref.id}/transitions",
                json_body=transition_payload(str(transition["id"])),
            )
            return
        # Not on offer: fine if the issue is there already (a retry, or a person was quicker).
        info = await self.get(ref)
        if _already(info, status, wanted):
            return
        offered = ", ".join(repr(str(t.get("name"))) for t in transitions) or "none"
        raise PermanentError(
            f"{self.name}: issue {ref.id} (status {info.raw_status!r}) has no transition "
            f"{wanted or 'back to open'!r}; transitions available: {offered}"
        )

    async def get(self, ref: TicketRef, replies_since: float | None = None) -> TicketInfo:
        _, body = await self._http.request(
            "GET", f"/rest/api/3/issue/{ref.id}", params={"fields": "status,assignee,priority"}
        )
        if not isinstance(body, dict):
            raise RetryableError(f"{self.name}: issue {ref.id}: answer is not an issue")
        replied = None
        if replies_since is not None:
            _, listed = await self._http.request(
                "GET",
                f"/rest/api/3/issue/{ref.id}/comment",
                params={"orderBy": "-created", "maxResults": str(COMMENT_PAGE)},
            )
            comments = listed.get("comments") if isinstance(listed, dict) else None
            replied = customer_reply_at(comments or [], replies_since)
        settings = self.settings
        return ticket_info(body, settings.pending_transition, replied, settings.priority_names())

    async def aclose(self) -> None:
        await self._http.aclose()


def _already(info: TicketInfo, status: NewStatus, wanted: str | None) -> bool:
    """Whether the issue is where ``set_status(status)`` would take it."""
    if wanted is not None and (info.raw_status or "").casefold() == wanted.casefold():
        return True
    if status in ("resolved", "closed"):
        return info.status == "resolved"
    return status == "open" and info.status != "resolved" and not info.waiting_on_customer
