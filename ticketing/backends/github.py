"""GitHub issues (https://docs.github.com/en/rest/issues).

Endpoints and values used, as documented there (REST API version 2022-11-28):

- Authentication: ``Authorization: Bearer <token>``, with ``Accept: application/vnd.github+json``
  and ``X-GitHub-Api-Version: 2022-11-28``
  (https://docs.github.com/en/rest/authentication/authenticating-to-the-rest-api).
- Create an issue: ``POST /repos/{owner}/{repo}/issues`` with ``{title, body, labels}``; labels
  that do not exist yet are created; "only users with push access can set labels for new issues.
  Labels are silently dropped otherwise" -- so the token needs push access (Issues: write), or
  ``find`` cannot see the dedup label (https://docs.github.com/en/rest/issues/issues#create-an-issue).
  A label name is at most 50 characters.
- List repository issues: ``GET /repos/{owner}/{repo}/issues?labels=a,b&state=all`` (labels is
  a comma-separated list, all must match); pull requests come back too, marked by a
  ``pull_request`` key (https://docs.github.com/en/rest/issues/issues#list-repository-issues).
  Not a search index: a new issue shows at once.
- Comments: ``POST /repos/{owner}/{repo}/issues/{number}/comments`` with ``{body}``
  (https://docs.github.com/en/rest/issues/comments#create-an-issue-comment). GitHub has no
  internal comments: an internal note is a comment that starts with ``**[internal]**``, visible
  to whoever can read the repository.
- Update an issue: ``PATCH /repos/{owner}/{repo}/issues/{number}`` with ``state`` (open, closed)
  and ``state_reason`` (completed, not_planned, reopened)
  (https://docs.github.com/en/rest/issues/issues#update-an-issue).
- Add labels: ``POST /repos/{owner}/{repo}/issues/{number}/labels`` with ``{labels}``
  (https://docs.github.com/en/rest/issues/labels#add-labels-to-an-issue). GitHub has no
  "waiting on customer" state: pending adds the label ``status:pending`` (``pending_label``);
  ``DELETE .../issues/{number}/labels/{name}`` takes it off again (404 when it is not there)
  (https://docs.github.com/en/rest/issues/labels#remove-a-label-from-an-issue).
- List issue comments: ``GET .../issues/{number}/comments?since=<ISO 8601>`` ("only comments
  updated after"), each with ``user {login, type}`` and ``created_at``
  (https://docs.github.com/en/rest/issues/comments#list-issue-comments). GitHub knows no
  requester: a customer's reply is a comment by anyone but the issue's author (our token's
  account) that is not a bot (``user.type`` "Bot"). To look for a note whose answer was lost:
  the same list page after page (``per_page`` at most 100, ``page``), comparing the body we
  would have sent (an internal note with its prefix) on comments by the issue's author.
- Rate limits: a 403 or a 429. ``retry-after`` present: wait that long; else
  ``x-ratelimit-remaining: 0``: wait until ``x-ratelimit-reset`` (epoch seconds); else a message
  about a secondary rate limit: wait at least a minute. Any other 403 (a token without access)
  is a refusal for good (https://docs.github.com/en/rest/using-the-rest-api/rate-limits-for-the-rest-api#exceeding-the-rate-limit).
- Errors: ``{"message": ..., "documentation_url": ..., "errors": [{resource, field, code}]}``;
  401 ``Bad credentials``; 422 ``Validation Failed`` names the field
  (https://docs.github.com/en/rest/using-the-rest-api/troubleshooting-the-rest-api).

``get``: an open issue is open, or pending (waiting on the customer) while it carries
``pending_label``; a closed one is resolved (state_reason completed, or none) or closed
(not_planned, duplicate). The assignee is the first assignee's login; the priority is the
one ``priority:<p>`` label (a person changes it by swapping that label). Open again (a customer
replied) reopens a closed issue and takes the pending label off; closed closes it as completed
without the label.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from typing import Any, ClassVar, Final
from urllib.parse import quote

from pydantic import Field, HttpUrl

from ticketing.base import (
    PRIORITIES,
    NewStatus,
    Priority,
    TicketDraft,
    TicketInfo,
    TicketRef,
    TicketStatus,
    same_text,
)
from ticketing.errors import OutcomeUnknown, RetryableError
from ticketing.http import DEFAULT_TIMEOUT, JsonHttp, parse_retry_after
from ticketing.settings import IntegrationSettings
from ticketing.timestamps import epoch, iso_utc, latest

API_VERSION: Final = "2022-11-28"
MAX_LABEL: Final = 50
INTERNAL_PREFIX: Final = "**[internal]** "
COMMENT_PAGE: Final = 100  # the most GitHub lists per page
SECONDARY_LIMIT_WAIT: Final = 60.0  # "wait for at least one minute before retrying"


class GitHubSettings(IntegrationSettings):
    SECRETS: ClassVar[tuple[str, ...]] = ("token",)
    REQUIRED_SECRETS: ClassVar[tuple[str, ...]] = ("token",)

    url: HttpUrl = HttpUrl("https://api.github.com")
    repository: str = Field(pattern=r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
    token_env: str | None = None
    token_file: str | None = None
    labels: list[str] = ["incident"]
    pending_label: str = Field(default="status:pending", min_length=1, max_length=MAX_LABEL)


# --- pure payload building -----------------------------------------------------------------


def label(text: str) -> str:
    """A GitHub label name: trimmed, at most 50 characters."""
    return text.strip()[:MAX_LABEL]


def dedup_label(dedup_key: str) -> str:
    """The label carrying a dedup key: the key itself when it fits a label and a ``labels=``
    filter (at most 50 characters, no comma), else a stable digest of it."""
    key = dedup_key.strip()
    if key and key == dedup_key and len(key) <= MAX_LABEL and "," not in key:
        return key
    return "watchdesk-" + hashlib.sha256(dedup_key.encode()).hexdigest()[:22]


def issue_labels(draft: TicketDraft, settings: GitHubSettings) -> list[str]:
    """``watchdesk``, the dedup label, ``priority:<p>``, the draft's tags, the configured
    labels; no repeats."""
    key_label = dedup_label(draft.dedup_key)
    labels: list[str] = []
    for text in (
        "watchdesk",
        key_label,
        f"priority:{draft.priority}",
        *draft.tags,
        *settings.labels,
    ):
        value = key_label if text == draft.dedup_key else label(text)
        if value and value not in labels:
            labels.append(value)
    return labels


def create_payload(draft: TicketDraft, settings: GitHubSettings) -> dict[str, Any]:
    """The issue: the description as the Markdown body (GitHub keeps line breaks in issues),
    then what it is about and the dedup key."""
    body = draft.description.replace("\r\n", "\n").replace("\r", "\n")
    footer = [f"Target: `{draft.target}`"]
    if draft.customer:
        footer.append(f"Customer: {draft.customer}")
    if draft.requester_email:
        footer.append(f"Requester: {draft.requester_email}")
    footer.append(f"Dedup key: `{draft.dedup_key}`")
    return {
        "title": draft.subject,
        "body": body + "\n\n---\n" + "\n".join(footer),
        "labels": issue_labels(draft, settings),
    }


def find_params(dedup_key: str) -> dict[str, str]:
    """List repository issues carrying the dedup label, open or closed, oldest first."""
    return {
        "labels": dedup_label(dedup_key),
        "state": "all",
        "sort": "created",
        "direction": "asc",
        "per_page": "10",
    }


def comment_payload(body: str, public: bool) -> dict[str, Any]:
    return {"body": body if public else INTERNAL_PREFIX + body}


def resolve_payload() -> dict[str, Any]:
    return {"state": "closed", "state_reason": "completed"}


def pending_payload(settings: GitHubSettings) -> dict[str, Any]:
    return {"labels": [settings.pending_label]}


def reopen_payload() -> dict[str, Any]:
    return {"state": "open"}


def customer_reply_at(
    issue: dict[str, Any], comments: list[Any], replies_since: float
) -> float | None:
    """The latest comment after ``replies_since`` by someone other than the issue's author
    (watchdesk's account), bots left out."""
    author = issue.get("user")
    ours = author.get("login") if isinstance(author, dict) else None
    found = []
    for comment in comments:
        user = comment.get("user") if isinstance(comment, dict) else None
        if isinstance(user, dict) and user.get("login") != ours and user.get("type") != "Bot":
            found.append(epoch(comment.get("created_at")))
    return latest(found, replies_since)


def label_priority(names: set[str]) -> Priority | None:
    """The issue's priority: its one ``priority:<p>`` label; None without one, or with two
    (a person added a label and left the old one: which they meant is not guessed)."""
    found = [p for p in PRIORITIES if f"priority:{p}" in names]
    return found[0] if len(found) == 1 else None


def ticket_info(
    issue: dict[str, Any], pending_label: str, replied: float | None = None
) -> TicketInfo:
    state = issue.get("state")
    reason = issue.get("state_reason")
    names = {
        str(item.get("name")) if isinstance(item, dict) else str(item)
        for item in issue.get("labels") or []
    }
    status: TicketStatus
    if state == "closed":
        status = "closed" if reason in ("not_planned", "duplicate") else "resolved"
    else:
        status = "pending" if pending_label in names else "open"
    assignees = [a for a in issue.get("assignees") or [] if isinstance(a, dict) and a.get("login")]
    if not assignees and isinstance(issue.get("assignee"), dict):
        assignees = [issue["assignee"]]
    extra: dict[str, str] = {}
    if reason:
        extra["state_reason"] = str(reason)
    return TicketInfo(
        status=status,
        assignee=str(assignees[0]["login"]) if assignees else None,
        raw_status=str(state) if state is not None else None,
        extra=extra,
        waiting_on_customer=state != "closed" and pending_label in names,
        last_customer_reply_at=replied,
        priority=label_priority(names),
    )


def rate_limit_wait(
    status: int, headers: Mapping[str, str], body: bytes, now: float | None = None
) -> float | None:
    """Seconds to wait when a refusal is one of GitHub's rate limits, None when it is not."""
    if status not in (403, 429):
        return None
    retry_after = parse_retry_after(headers.get("Retry-After"), now)
    if retry_after is not None:
        return retry_after
    now = time.time() if now is None else now
    if headers.get("X-RateLimit-Remaining") == "0":
        reset = headers.get("X-RateLimit-Reset", "")
        return max(0.0, float(reset) - now) if reset.isdigit() else SECONDARY_LIMIT_WAIT
    try:
        message = json.loads(body).get("message", "")
    except (ValueError, AttributeError):
        message = body.decode("utf-8", "replace")
    if status == 429 or "rate limit" in str(message).lower():
        return SECONDARY_LIMIT_WAIT
    return None  # a 403 that is not a rate limit: the token may not do this


# --- the backend ---------------------------------------------------------------------------


class GitHubBackend:
    name = "github"
    reports_replies = True

    def __init__(
        self, settings: GitHubSettings, secret: str, timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        self.settings = settings
        self.base_url = str(settings.url).rstrip("/")
        self.repo_path = f"/repos/{settings.repository}"
        self._http = JsonHttp(
            self.name,
            self.base_url,
            headers={
                "Authorization": f"Bearer {secret}",
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": API_VERSION,
                "User-Agent": "watchdesk",
            },
            timeout=timeout,
            rate_limit=rate_limit_wait,
        )

    def _ref(self, issue: Any) -> TicketRef:
        if not isinstance(issue, dict) or issue.get("number") is None:
            raise OutcomeUnknown(f"{self.name}: answer without an issue number")
        url = issue.get("html_url")
        return TicketRef(id=str(issue["number"]), url=str(url) if url else None)

    async def create(self, draft: TicketDraft) -> TicketRef:
        _, body = await self._http.request(
            "POST", f"{self.repo_path}/issues", json_body=create_payload(draft, self.settings)
        )
        return self._ref(body)

    async def find(self, dedup_key: str) -> TicketRef | None:
        _, body = await self._http.request(
            "GET", f"{self.repo_path}/issues", params=find_params(dedup_key)
        )
        wanted = dedup_label(dedup_key)
        for issue in body if isinstance(body, list) else []:
            if not isinstance(issue, dict) or "pull_request" in issue:
                continue
            names = {
                item.get("name") for item in issue.get("labels") or [] if isinstance(item, dict)
            }
            if wanted in names and issue.get("number") is not None:
                return self._ref(issue)
        return None

    async def add_note(self, ref: TicketRef, body: str, public: bool) -> None:
        await self._http.request(
            "POST",
            f"{self.repo_path}/issues/{ref.id}/comments",
            json_body=comment_payload(body, public),
        )

    async def has_note(self, ref: TicketRef, body: str, public: bool) -> bool:
        _, issue = await self._http.request("GET", f"{self.repo_path}/issues/{ref.id}")
        author = issue.get("user") if isinstance(issue, dict) else None
        ours = author.get("login") if isinstance(author, dict) else None
        if ours is None:
            raise RetryableError(f"{self.name}: issue {ref.id}: answer without its author")
        sent = comment_payload(body, public)["body"]
        page = 1
        while True:
            _, listed = await self._http.request(
                "GET",
                f"{self.repo_path}/issues/{ref.id}/comments",
                params={"per_page": str(COMMENT_PAGE), "page": str(page)},
            )
            if not isinstance(listed, list):
                raise RetryableError(f"{self.name}: issue {ref.id}: answer is not a list")
            for comment in listed:
                user = comment.get("user") if isinstance(comment, dict) else None
                if (
                    isinstance(user, dict)
                    and user.get("login") == ours
                    and same_text(str(comment.get("body") or ""), sent)
                ):
                    return True
            if len(listed) < COMMENT_PAGE:
                return False
            page += 1

    async def set_status(self, ref: TicketRef, status: NewStatus) -> None:
        issue = f"{self.repo_path}/issues/{ref.id}"
        if status == "pending":
            await self._http.request(
                "POST", f"{issue}/labels", json_body=pending_payload(self.settings)
            )
            return
        body = reopen_payload() if status == "open" else resolve_payload()
        await self._http.request("PATCH", issue, json_body=body)
        if status != "resolved":  # open again or closed for good: no longer waiting
            label_path = quote(self.settings.pending_label, safe="")
            await self._http.request("DELETE", f"{issue}/labels/{label_path}", accept={404})

    async def get(self, ref: TicketRef, replies_since: float | None = None) -> TicketInfo:
        _, body = await self._http.request("GET", f"{self.repo_path}/issues/{ref.id}")
        if not isinstance(body, dict):
            raise RetryableError(f"{self.name}: issue {ref.id}: answer is not an issue")
        replied = None
        if replies_since is not None:
            _, comments = await self._http.request(
                "GET",
                f"{self.repo_path}/issues/{ref.id}/comments",
                params={"since": iso_utc(replies_since), "per_page": "100"},
            )
            replied = customer_reply_at(
                body, comments if isinstance(comments, list) else [], replies_since
            )
        return ticket_info(body, self.settings.pending_label, replied)

    async def aclose(self) -> None:
        await self._http.aclose()
