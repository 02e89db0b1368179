"""A fake GitHub REST API (repository issues, comments, labels) that really listens; see
``tests.fakes.freshdesk`` for the shared machinery (``start``/``stop``, ``fail_next``, the
/_fake/ control plane).

Routes: ``create`` / ``list`` (POST / GET /repos/{owner}/{repo}/issues), ``get`` / ``update``
(GET / PATCH .../issues/{number}), ``comment`` / ``comments`` (POST / GET
.../issues/{number}/comments, the list with ``since``: comments updated at or after it, and
``per_page`` (at most 100) / ``page``),
``labels`` (POST .../issues/{number}/labels), ``unlabel`` (DELETE .../labels/{name}, 404
"Label does not exist" when the issue does not carry it).

Our issues and comments are by the token's account, ``watchdesk-bot``; ``customer_reply`` is a
comment by another user (``customer-jane``), as a customer writes on GitHub.

What it checks, as GitHub does (https://docs.github.com/en/rest/issues): a Bearer (or
``token``) credential (401 ``{"message": "Bad credentials", "documentation_url", "status"}``);
the repository (404 otherwise); a title; label names of at most 50 characters; state open/closed
and state_reason completed/not_planned/reopened/duplicate; a comment body. Validation errors are
422 ``{"message": "Validation Failed", "errors": [{"resource", "code", "field", ...}]}``. A
token in ``read_only_tokens`` may read but any write gets 403 "Resource not accessible by
personal access token" (a refusal, not a rate limit). Listing filters on ``labels`` (all must
match) and ``state`` (open by default) and includes pull requests, as GitHub does.

Scripted 403/429 answers are rate limits. ``rate_limit_style = "primary"`` (default) answers
"API rate limit exceeded" with ``x-ratelimit-remaining: 0`` and ``x-ratelimit-reset`` =
now + ``rate_limit_reset_in``; ``"secondary"`` answers "You have exceeded a secondary rate
limit" with requests remaining (plus ``Retry-After`` when the failure is scripted with one).

Standalone: ``python -m tests.fakes.github --port N --repository o/r --token T``.
"""

from __future__ import annotations

import argparse
import itertools
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any, Literal

from aiohttp import web

from tests.fakes.freshdesk import FakeService, Json, iso_at, now_iso, phrase, serve_forever

DOCS = "https://docs.github.com/rest"
GH_STATES = ("open", "closed")
GH_STATE_REASONS = ("completed", "not_planned", "reopened", "duplicate", None)
WRITES = frozenset({"create", "update", "comment", "labels", "unlabel"})
BOT = {"login": "watchdesk-bot", "id": 1, "type": "User"}


def gh_message(message: str, status: int, docs: str = DOCS, **extra: Any) -> web.Response:
    """GitHub's error body; like every GitHub answer it carries the x-ratelimit-* headers."""
    response = web.json_response(
        {"message": message, **extra, "documentation_url": docs, "status": str(status)},
        status=status,
    )
    response.headers.update(
        {
            "x-ratelimit-limit": "5000",
            "x-ratelimit-remaining": "4999",
            "x-ratelimit-resource": "core",
        }
    )
    return response


def gh_invalid(*errors: dict[str, Any]) -> web.Response:
    return gh_message(
        "Validation Failed",
        422,
        "https://docs.github.com/rest/issues/issues",
        errors=list(errors),
    )


class GitHubFake(FakeService):
    service = "github"
    ROUTES = frozenset(
        {"create", "list", "get", "update", "comment", "comments", "labels", "unlabel"}
    )

    def __init__(
        self,
        repository: str = "acme/ops",
        token: str = "ghp_fake_token",
        *,
        read_only_tokens: Iterable[str] = (),
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(host=host, port=port)
        self.repository = repository
        self.token = token
        self.read_only_tokens = frozenset(read_only_tokens)
        self.rate_limit_style: Literal["primary", "secondary"] = "primary"
        self.rate_limit_reset_in = 30
        self.issues: dict[int, dict[str, Any]] = {}  # by number (pull requests too)
        self.comments: dict[int, list[dict[str, Any]]] = defaultdict(list)
        self.headers_seen: list[dict[str, str]] = []
        self._numbers = itertools.count(1)
        self._ids = itertools.count(900001)
        self._label_ids = itertools.count(5001)
        self._labels: dict[str, dict[str, Any]] = {}

    # --- the wire ------------------------------------------------------------------------

    def add_routes(self, app: web.Application) -> None:
        repo = "/repos/{owner}/{repo}/issues"
        issue = repo + r"/{number:\d+}"
        self.route(app, "POST", repo, "create", self._create)
        self.route(app, "GET", repo, "list", self._list)
        self.route(app, "GET", issue, "get", self._get)
        self.route(app, "PATCH", issue, "update", self._update)
        self.route(app, "POST", issue + "/comments", "comment", self._comment)
        self.route(app, "GET", issue + "/comments", "comments", self._comments)
        self.route(app, "POST", issue + "/labels", "labels", self._add_labels)
        self.route(app, "DELETE", issue + "/labels/{name}", "unlabel", self._remove_label)

    def _token(self, request: web.Request) -> str | None:
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        return value.strip() if scheme.lower() in ("bearer", "token") else None

    def authorized(self, request: web.Request) -> bool:
        self.headers_seen.append(dict(request.headers))
        token = self._token(request)
        return token == self.token or token in self.read_only_tokens

    def unauthorized(self) -> web.Response:
        return gh_message("Bad credentials", 401)

    def error_response(self, status: int) -> web.Response:
        headers: dict[str, str] = {}
        if status in (403, 429) and self.rate_limit_style == "primary":
            response = gh_message(
                "API rate limit exceeded for user ID 1.",
                status,
                "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api",
            )
            reset = int(time.time()) + self.rate_limit_reset_in
            headers.update({"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(reset)})
        elif status in (403, 429):
            response = gh_message(
                "You have exceeded a secondary rate limit. Please wait a few minutes before you "
                "try again.",
                status,
                "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"
                "#about-secondary-rate-limits",
            )
            headers["x-ratelimit-remaining"] = "4990"
        else:
            response = gh_message(phrase(status), status)
        response.headers.update(headers)
        return response

    def bad_json(self) -> web.Response:
        return gh_message("Problems parsing JSON", 400)

    # --- helpers -------------------------------------------------------------------------

    def _repo_ok(self, request: web.Request) -> bool:
        return f"{request.match_info['owner']}/{request.match_info['repo']}" == self.repository

    def _refused(self, request: web.Request, route: str) -> web.Response | None:
        """404 for another repository, 403 for a write with a read-only token."""
        if not self._repo_ok(request):
            return gh_message("Not Found", 404)
        if route in WRITES and self._token(request) in self.read_only_tokens:
            return gh_message(
                "Resource not accessible by personal access token",
                403,
                "https://docs.github.com/rest/issues/issues",
            )
        return None

    def _label(self, name: str) -> dict[str, Any]:
        if name not in self._labels:
            self._labels[name] = {
                "id": next(self._label_ids),
                "name": name,
                "color": "ededed",
                "default": False,
                "description": None,
            }
        return self._labels[name]

    @staticmethod
    def _label_errors(labels: Any) -> list[dict[str, Any]]:
        if not isinstance(labels, list) or not all(isinstance(n, str) for n in labels):
            return [{"resource": "Issue", "code": "invalid", "field": "labels"}]
        return [
            {
                "resource": "Label",
                "code": "custom",
                "field": "name",
                "value": name,
                "message": "name is too long (maximum is 50 characters)",
            }
            for name in labels
            if len(name) > 50
        ]

    def _public(self, issue: dict[str, Any]) -> dict[str, Any]:
        number = issue["number"]
        return {
            **issue,
            "url": f"{self.url}/repos/{self.repository}/issues/{number}",
            "html_url": f"{self.url}/{self.repository}/issues/{number}",
            "labels": [self._label(n) for n in issue["labels"]],
            "assignee": issue["assignees"][0] if issue["assignees"] else None,
            "comments": len(self.comments[number]),
        }

    def add_pull_request(self, title: str, labels: Sequence[str]) -> int:
        """A pull request, which the issues endpoints list too (with a ``pull_request`` key)."""
        number = next(self._numbers)
        self.issues[number] = self._new(number, title, "", list(labels))
        self.issues[number]["pull_request"] = {
            "url": f"{self.url}/repos/{self.repository}/pulls/{number}"
        }
        return number

    def _new(self, number: int, title: str, body: str, labels: list[str]) -> dict[str, Any]:
        stamp = now_iso()
        return {
            "id": next(self._ids),
            "number": number,
            "title": title,
            "body": body,
            "state": "open",
            "state_reason": None,
            "labels": list(dict.fromkeys(labels)),
            "assignees": [],
            "user": dict(BOT),
            "created_at": stamp,
            "updated_at": stamp,
            "closed_at": None,
        }

    # --- handlers ------------------------------------------------------------------------

    async def _create(self, request: web.Request, body: Json) -> web.Response:
        refused = self._refused(request, "create")
        if refused is not None:
            return refused
        body = body if isinstance(body, dict) else {}
        errors: list[dict[str, Any]] = []
        title = body.get("title")
        if not (isinstance(title, (str, int)) and str(title).strip()):
            errors.append({"resource": "Issue", "code": "missing_field", "field": "title"})
        if "body" in body and not isinstance(body["body"], (str, type(None))):
            errors.append({"resource": "Issue", "code": "invalid", "field": "body"})
        errors += self._label_errors(body.get("labels", []))
        if errors:
            return gh_invalid(*errors)
        number = next(self._numbers)
        issue = self._new(number, str(title), body.get("body") or "", body.get("labels", []))
        self.issues[number] = issue
        return web.json_response(self._public(issue), status=201)

    async def _list(self, request: web.Request, body: Json) -> web.Response:
        refused = self._refused(request, "list")
        if refused is not None:
            return refused
        wanted = [n for n in request.query.get("labels", "").split(",") if n]
        state = request.query.get("state", "open")
        found = [
            issue
            for issue in self.issues.values()
            if all(n in issue["labels"] for n in wanted) and state in ("all", issue["state"])
        ]
        if request.query.get("direction", "desc") == "desc":
            found.reverse()
        per_page = int(request.query.get("per_page", "30"))
        return web.json_response([self._public(i) for i in found[:per_page]])

    async def _get(self, request: web.Request, body: Json) -> web.Response:
        refused = self._refused(request, "get")
        if refused is not None:
            return refused
        issue = self.issues.get(int(request.match_info["number"]))
        if issue is None:
            return gh_message("Not Found", 404)
        return web.json_response(self._public(issue))

    async def _update(self, request: web.Request, body: Json) -> web.Response:
        refused = self._refused(request, "update")
        if refused is not None:
            return refused
        issue = self.issues.get(int(request.match_info["number"]))
        if issue is None:
            return gh_message("Not Found", 404)
        changes = body if isinstance(body, dict) else {}
        errors: list[dict[str, Any]] = []
        if "state" in changes and changes["state"] not in GH_STATES:
            errors.append({"resource": "Issue", "code": "invalid", "field": "state"})
        if "state_reason" in changes and changes["state_reason"] not in GH_STATE_REASONS:
            errors.append({"resource": "Issue", "code": "invalid", "field": "state_reason"})
        if "labels" in changes:
            errors += self._label_errors(changes["labels"])
        if errors:
            return gh_invalid(*errors)
        if "state" in changes:
            issue["state"] = changes["state"]
            issue["closed_at"] = now_iso() if changes["state"] == "closed" else None
            issue["state_reason"] = changes.get(
                "state_reason", "completed" if changes["state"] == "closed" else "reopened"
            )
        for key in ("title", "body"):
            if key in changes:
                issue[key] = changes[key]
        if "labels" in changes:
            issue["labels"] = list(dict.fromkeys(changes["labels"]))
        issue["updated_at"] = now_iso()
        return web.json_response(self._public(issue))

    async def _comment(self, request: web.Request, body: Json) -> web.Response:
        refused = self._refused(request, "comment")
        if refused is not None:
            return refused
        number = int(request.match_info["number"])
        if number not in self.issues:
            return gh_message("Not Found", 404)
        text = body.get("body") if isinstance(body, dict) else None
        if not (isinstance(text, str) and text.strip()):
            return gh_invalid(
                {"resource": "IssueComment", "code": "missing_field", "field": "body"}
            )
        comment = self._new_comment(number, text, dict(BOT), "OWNER", None)
        return web.json_response(comment, status=201)

    def _new_comment(
        self, number: int, text: str, user: dict[str, Any], association: str, at: float | None
    ) -> dict[str, Any]:
        stamp = iso_at(at)
        comment = {
            "id": next(self._ids),
            "body": text,
            "user": user,
            "author_association": association,
            "html_url": f"{self.url}/{self.repository}/issues/{number}#issuecomment-1",
            "created_at": stamp,
            "updated_at": stamp,
        }
        self.comments[number].append(comment)
        return comment

    async def _comments(self, request: web.Request, body: Json) -> web.Response:
        refused = self._refused(request, "comments")
        if refused is not None:
            return refused
        number = int(request.match_info["number"])
        if number not in self.issues:
            return gh_message("Not Found", 404)
        since = request.query.get("since", "")
        listed = [c for c in self.comments[number] if c["updated_at"] >= since]
        per_page = min(100, int(request.query.get("per_page", "30")))
        start = (max(1, int(request.query.get("page", "1"))) - 1) * per_page
        return web.json_response(listed[start : start + per_page])

    async def _remove_label(self, request: web.Request, body: Json) -> web.Response:
        refused = self._refused(request, "unlabel")
        if refused is not None:
            return refused
        issue = self.issues.get(int(request.match_info["number"]))
        if issue is None:
            return gh_message("Not Found", 404)
        name = request.match_info["name"]
        if name not in issue["labels"]:
            return gh_message("Label does not exist", 404)
        issue["labels"] = [n for n in issue["labels"] if n != name]
        return web.json_response([self._label(n) for n in issue["labels"]])

    def customer_reply(self, ticket_id: str, body: str, at: float | None = None) -> None:
        """A comment by a customer's GitHub account on issue number ``ticket_id``."""
        user = {"login": "customer-jane", "id": 42, "type": "User"}
        self._new_comment(int(ticket_id), body, user, "NONE", at)

    async def _add_labels(self, request: web.Request, body: Json) -> web.Response:
        refused = self._refused(request, "labels")
        if refused is not None:
            return refused
        issue = self.issues.get(int(request.match_info["number"]))
        if issue is None:
            return gh_message("Not Found", 404)
        labels = body.get("labels") if isinstance(body, dict) else body
        errors = self._label_errors(labels)
        if errors:
            return gh_invalid(*errors)
        assert isinstance(labels, list)
        issue["labels"] = list(dict.fromkeys([*issue["labels"], *labels]))
        return web.json_response([self._label(n) for n in issue["labels"]])

    # --- state ---------------------------------------------------------------------------

    def agent_update(self, ticket_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        """``{"assignees": ["octocat"], "state": "closed", "state_reason": "not_planned"}``."""
        issue = self.issues[int(ticket_id)]
        if "assignees" in changes:
            issue["assignees"] = [{"login": login, "id": 7} for login in changes["assignees"]]
        for key in ("state", "state_reason", "labels"):
            if key in changes:
                issue[key] = changes[key]
        return self._public(issue)

    def state(self) -> dict[str, Any]:
        return {
            "issues": [self._public(i) for i in self.issues.values()],
            "comments": {str(k): v for k, v in self.comments.items() if v},
            "requests": self.requests,
        }

    def reset(self) -> None:
        super().reset()
        self.issues.clear()
        self.comments.clear()
        self.headers_seen.clear()
        self._numbers = itertools.count(1)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A fake GitHub issues API for tests.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--repository", default="acme/ops")
    parser.add_argument("--token", default="ghp_fake_token")
    args = parser.parse_args(argv)
    serve_forever(GitHubFake(args.repository, args.token, host=args.host, port=args.port))


if __name__ == "__main__":
    main()
