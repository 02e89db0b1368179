"""A fake Jira Cloud REST API v3 (issues, comments, transitions, enhanced JQL search) that really
listens; see ``tests.fakes.freshdesk`` for the shared machinery (``start``/``stop``,
``fail_next``, the /_fake/ control plane).

Routes: ``create`` (POST /rest/api/3/issue), ``search`` (GET/POST /rest/api/3/search/jql),
``get`` (GET /rest/api/3/issue/{key}), ``comment`` (POST .../comment), ``comments`` (GET
.../comment, with ``orderBy`` ``created``/``-created``, ``startAt`` and ``maxResults``),
``transitions`` (GET .../transitions), ``transition`` (POST .../transitions), ``myself`` (GET
/rest/api/3/myself: the API token's account).

Comments carry their ``author`` (``accountId``, ``accountType``, ``displayName``): ours are the
API token's account (``atlassian``); ``customer_reply`` is a portal customer's (``customer``), as
Jira Service Management records them. No automation moves the issue on a customer's comment.

What it checks, as Jira does (https://developer.atlassian.com/cloud/jira/platform/rest/v3/):
basic auth as e-mail + API token (401 ``{"errorMessages": [...], "errors": {}}``); the project;
a one-line summary of at most 255 characters; description and comment bodies in Atlassian
Document Format (a plain string is refused, as v3 does); the issue type and priority by name
among the project's; labels without spaces. Field errors are 400 ``{"errorMessages": [],
"errors": {field: message}}``. The workflow is To Do (new) -> In Progress / Waiting for customer
(indeterminate) -> Done (done), one transition per target status named like it, never a
transition to the status the issue is in. Search understands ``project = X``, ``labels = "y"``
joined by AND, and ``ORDER BY created ASC|DESC``; it answers ``{"issues", "isLast"}``, each issue
only ``{"id"}`` unless ``fields`` are asked for.

Standalone: ``python -m tests.fakes.jira --port N --email E --token T`` (prints "ready").
"""

from __future__ import annotations

import argparse
import itertools
import re
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from tests.fakes.freshdesk import FakeService, Json, basic_credentials, now_iso, serve_forever

BOT = {"accountId": "557058:watchdesk-bot", "accountType": "atlassian", "displayName": "watchdesk"}
CUSTOMER = {"accountId": "qm:customer-1", "accountType": "customer", "displayName": "Jane Customer"}

JIRA_PRIORITIES = ("Highest", "High", "Medium", "Low", "Lowest")
JIRA_ISSUE_TYPES = ("Task", "Bug", "Story", "Incident")
# status name -> (status id, category key, category name)
JIRA_STATUSES: dict[str, tuple[str, str, str]] = {
    "To Do": ("10000", "new", "To Do"),
    "In Progress": ("3", "indeterminate", "In Progress"),
    "Waiting for customer": ("10001", "indeterminate", "In Progress"),
    "Done": ("10002", "done", "Done"),
}
# transition id -> target status (transition named like its target, as simplified workflows do)
JIRA_TRANSITIONS: dict[str, str] = {
    "11": "To Do",
    "21": "In Progress",
    "31": "Done",
    "41": "Waiting for customer",
}
_JQL_CLAUSE = re.compile(r'^\s*(project|labels)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([A-Za-z0-9_-]+))\s*$')
_JQL_ORDER = re.compile(r"\s+ORDER\s+BY\s+created(?:\s+(ASC|DESC))?\s*$", re.IGNORECASE)


def jira_time(at: float | None) -> str:
    """Jira's timestamps: ``2026-11-24T10:00:00.000+0000``."""
    moment = datetime.now(UTC) if at is None else datetime.fromtimestamp(at, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def jira_errors(errors: dict[str, str], status: int = 400) -> web.Response:
    return web.json_response({"errorMessages": [], "errors": errors}, status=status)


def jira_messages(messages: list[str], status: int) -> web.Response:
    return web.json_response({"errorMessages": messages, "errors": {}}, status=status)


def adf_problem(value: Any) -> str | None:
    """Why ``value`` is not an ADF document of paragraphs and text nodes, or None."""
    if not isinstance(value, dict):
        return "Operation value must be an Atlassian Document (see the Atlassian Document Format)"
    if value.get("type") != "doc" or value.get("version") != 1:
        return "Operation value must be an Atlassian Document (see the Atlassian Document Format)"
    content = value.get("content")
    if not isinstance(content, list):
        return "INVALID_INPUT"
    for block in content:
        if not isinstance(block, dict) or block.get("type") != "paragraph":
            return "INVALID_INPUT"
        for node in block.get("content", []):
            if not isinstance(node, dict) or node.get("type") != "text":
                return "INVALID_INPUT"
            if not isinstance(node.get("text"), str) or not node["text"]:
                return "INVALID_INPUT"
    return None


def adf_text(value: dict[str, Any]) -> str:
    """The plain text of an ADF document: one line per paragraph."""
    return "\n".join(
        "".join(node["text"] for node in block.get("content", [])) for block in value["content"]
    )


class JiraFake(FakeService):
    service = "jira"
    ROUTES = frozenset(
        {"create", "search", "get", "comment", "comments", "transitions", "transition", "myself"}
    )

    def __init__(
        self,
        email: str = "bot@example.com",
        token: str = "fake-api-token",
        *,
        projects: Sequence[str] = ("OPS",),
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(host=host, port=port)
        self.email = email
        self.token = token
        self.projects = tuple(projects)
        self.issues: dict[str, dict[str, Any]] = {}  # by key, in creation order
        self.comments: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self._ids = itertools.count(10001)
        self._numbers: dict[str, itertools.count[int]] = {}
        self._comment_ids = itertools.count(20001)

    # --- the wire ------------------------------------------------------------------------

    def add_routes(self, app: web.Application) -> None:
        issue = r"/rest/api/3/issue/{key:[A-Z][A-Z0-9_]*-\d+|\d+}"
        self.route(app, "POST", "/rest/api/3/issue", "create", self._create)
        self.route(app, "GET", "/rest/api/3/search/jql", "search", self._search)
        self.route(app, "POST", "/rest/api/3/search/jql", "search", self._search)
        self.route(app, "GET", issue, "get", self._get)
        self.route(app, "POST", issue + "/comment", "comment", self._comment)
        self.route(app, "GET", issue + "/comment", "comments", self._comments)
        self.route(app, "GET", issue + "/transitions", "transitions", self._transitions)
        self.route(app, "POST", issue + "/transitions", "transition", self._transition)
        self.route(app, "GET", "/rest/api/3/myself", "myself", self._myself)

    def authorized(self, request: web.Request) -> bool:
        return basic_credentials(request) == (self.email, self.token)

    def unauthorized(self) -> web.Response:
        return jira_messages(["Client must be authenticated to access this resource."], 401)

    def error_response(self, status: int) -> web.Response:
        if status == 429:
            return jira_messages(["Rate limit exceeded."], 429)
        return jira_messages(["Service temporarily unavailable. Please try again later."], status)

    def bad_json(self) -> web.Response:
        return jira_messages(["Unexpected character: was expecting a JSON value"], 400)

    # --- helpers -------------------------------------------------------------------------

    def _issue(self, request: web.Request) -> dict[str, Any] | None:
        key = request.match_info["key"]
        if key.isdigit():
            return next((i for i in self.issues.values() if i["id"] == key), None)
        return self.issues.get(key)

    @staticmethod
    def _not_found() -> web.Response:
        return jira_messages(["Issue does not exist or you do not have permission to see it."], 404)

    @staticmethod
    def _status(name: str) -> dict[str, Any]:
        status_id, category, category_name = JIRA_STATUSES[name]
        return {
            "name": name,
            "id": status_id,
            "statusCategory": {"key": category, "name": category_name},
        }

    def _public(self, issue: dict[str, Any], fields: Sequence[str] | None) -> dict[str, Any]:
        answer: dict[str, Any] = {
            "id": issue["id"],
            "key": issue["key"],
            "self": f"{self.url}/rest/api/3/issue/{issue['id']}",
        }
        if fields is None:
            answer["fields"] = dict(issue["fields"])
        else:
            answer["fields"] = {f: issue["fields"][f] for f in fields if f in issue["fields"]}
        return answer

    # --- handlers ------------------------------------------------------------------------

    def _check(self, fields: dict[str, Any]) -> dict[str, str]:
        errors: dict[str, str] = {}
        project = fields.get("project")
        if not (isinstance(project, dict) and project.get("key") in self.projects):
            errors["project"] = "valid project is required"
        summary = fields.get("summary")
        if not (isinstance(summary, str) and summary.strip()):
            errors["summary"] = "You must specify a summary of the issue."
        elif len(summary) > 255:
            errors["summary"] = "Summary must be less than 255 characters."
        elif "\n" in summary or "\r" in summary:
            errors["summary"] = "The summary is invalid because it contains newline characters."
        issue_type = fields.get("issuetype")
        if not (isinstance(issue_type, dict) and issue_type.get("name") in JIRA_ISSUE_TYPES):
            errors["issuetype"] = "Specify a valid issue type"
        if "description" in fields:
            problem = adf_problem(fields["description"])
            if problem:
                errors["description"] = problem
        if "priority" in fields:
            priority = fields["priority"]
            if not (isinstance(priority, dict) and priority.get("name") in JIRA_PRIORITIES):
                errors["priority"] = "Specify the Priority (id or name) in the string format"
        for label in fields.get("labels", []):
            if not isinstance(label, str) or not label:
                errors["labels"] = "The label must be a non-empty string."
            elif re.search(r"\s", label):
                errors["labels"] = f"The label '{label}' contains spaces which is invalid."
            elif len(label) > 255:
                errors["labels"] = "The label must not exceed 255 characters."
        return errors

    async def _create(self, request: web.Request, body: Json) -> web.Response:
        fields = body.get("fields") if isinstance(body, dict) else None
        if not isinstance(fields, dict):
            return jira_messages(["Field 'fields' is required."], 400)
        errors = self._check(fields)
        if errors:
            return jira_errors(errors)
        project = fields["project"]["key"]
        number = next(self._numbers.setdefault(project, itertools.count(1)))
        issue_id = str(next(self._ids))
        key = f"{project}-{number}"
        self.issues[key] = {
            "id": issue_id,
            "key": key,
            "fields": {
                "project": {"key": project},
                "summary": fields["summary"],
                "description": fields.get("description"),
                "issuetype": {"name": fields["issuetype"]["name"]},
                "priority": {"name": (fields.get("priority") or {"name": "Medium"})["name"]},
                "labels": list(fields.get("labels", [])),
                "status": self._status("To Do"),
                "assignee": None,
                "created": now_iso(),
            },
        }
        return web.json_response(
            {"id": issue_id, "key": key, "self": f"{self.url}/rest/api/3/issue/{issue_id}"},
            status=201,
        )

    def _parse_jql(self, jql: str) -> tuple[list[tuple[str, str]], bool] | None:
        descending = False
        order = _JQL_ORDER.search(jql)
        if order:
            descending = (order.group(1) or "ASC").upper() == "DESC"
            jql = jql[: order.start()]
        clauses: list[tuple[str, str]] = []
        for part in re.split(r"\s+AND\s+", jql.strip(), flags=re.IGNORECASE):
            match = _JQL_CLAUSE.match(part)
            if not match:
                return None
            quoted, bare = match.group(2), match.group(3)
            value = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else bare
            clauses.append((match.group(1), value))
        return clauses, descending

    async def _search(self, request: web.Request, body: Json) -> web.Response:
        if request.method == "POST":
            query = body if isinstance(body, dict) else {}
            jql = query.get("jql")
            fields = query.get("fields")
        else:
            jql = request.query.get("jql")
            fields = (
                request.query.get("fields", "").split(",") if "fields" in request.query else None
            )
        if not isinstance(jql, str) or not jql.strip():
            return jira_messages(
                ["Unbounded JQL queries are not allowed here. Please add a search restriction."],
                400,
            )
        parsed = self._parse_jql(jql)
        if parsed is None:
            return jira_messages([f"Error in the JQL Query: cannot parse '{jql}'."], 400)
        clauses, descending = parsed
        found = [
            issue
            for issue in self.issues.values()
            if all(
                (issue["fields"]["project"]["key"] == value)
                if name == "project"
                else (value in issue["fields"]["labels"])
                for name, value in clauses
            )
        ]
        if descending:
            found.reverse()
        if fields:
            issues = [self._public(issue, list(fields)) for issue in found]
        else:
            issues = [{"id": issue["id"]} for issue in found]
        return web.json_response({"issues": issues, "isLast": True})

    async def _get(self, request: web.Request, body: Json) -> web.Response:
        issue = self._issue(request)
        if issue is None:
            return self._not_found()
        fields = request.query.get("fields")
        return web.json_response(self._public(issue, fields.split(",") if fields else None))

    async def _comment(self, request: web.Request, body: Json) -> web.Response:
        issue = self._issue(request)
        if issue is None:
            return self._not_found()
        content = body.get("body") if isinstance(body, dict) else None
        problem = adf_problem(content)
        if problem:
            return jira_errors({"comment": problem})
        assert isinstance(content, dict)
        if not adf_text(content).strip():
            return jira_errors({"comment": "Comment body can not be empty!"})
        properties = body.get("properties", [])
        comment = {
            "id": str(next(self._comment_ids)),
            "body": content,
            "text": adf_text(content),
            "properties": properties,
            "internal": any(
                p.get("key") == "sd.public.comment" and (p.get("value") or {}).get("internal")
                for p in properties
                if isinstance(p, dict)
            ),
            "author": dict(BOT),
            "created": jira_time(None),
        }
        self.comments[issue["key"]].append(comment)
        return web.json_response(comment, status=201)

    async def _comments(self, request: web.Request, body: Json) -> web.Response:
        issue = self._issue(request)
        if issue is None:
            return self._not_found()
        comments = list(self.comments[issue["key"]])
        if request.query.get("orderBy", "created") == "-created":
            comments.reverse()
        limit = int(request.query.get("maxResults", "5000"))
        start = int(request.query.get("startAt", "0"))
        return web.json_response(
            {
                "comments": comments[start : start + limit],
                "startAt": start,
                "maxResults": limit,
                "total": len(comments),
            }
        )

    async def _myself(self, request: web.Request, body: Json) -> web.Response:
        return web.json_response({**BOT, "emailAddress": self.email, "active": True})

    def customer_reply(self, ticket_id: str, body: str, at: float | None = None) -> None:
        """A portal customer's comment on issue ``ticket_id`` (its key)."""
        issue = self.issues[ticket_id]
        content = {
            "type": "doc",
            "version": 1,
            "content": [{"type": "paragraph", "content": [{"type": "text", "text": body}]}],
        }
        self.comments[issue["key"]].append(
            {
                "id": str(next(self._comment_ids)),
                "body": content,
                "text": body,
                "properties": [],
                "internal": False,
                "author": dict(CUSTOMER),
                "jsdPublic": True,
                "created": jira_time(at),
            }
        )

    def _offered(self, issue: dict[str, Any]) -> list[dict[str, Any]]:
        current = issue["fields"]["status"]["name"]
        return [
            {
                "id": transition_id,
                "name": target,
                "to": self._status(target),
                "hasScreen": False,
                "isGlobal": True,
                "isInitial": False,
                "isConditional": False,
            }
            for transition_id, target in JIRA_TRANSITIONS.items()
            if target != current
        ]

    async def _transitions(self, request: web.Request, body: Json) -> web.Response:
        issue = self._issue(request)
        if issue is None:
            return self._not_found()
        return web.json_response({"expand": "transitions", "transitions": self._offered(issue)})

    async def _transition(self, request: web.Request, body: Json) -> web.Response:
        issue = self._issue(request)
        if issue is None:
            return self._not_found()
        transition = body.get("transition") if isinstance(body, dict) else None
        transition_id = transition.get("id") if isinstance(transition, dict) else None
        offered = {t["id"]: t for t in self._offered(issue)}
        if transition_id not in offered:
            return jira_messages(
                [f"Transition id '{transition_id}' is not valid for this issue."], 400
            )
        issue["fields"]["status"] = self._status(offered[transition_id]["name"])
        return web.Response(status=204)

    # --- state ---------------------------------------------------------------------------

    def agent_update(self, ticket_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        """``{"assignee": {"accountId", "displayName"} | None, "status": "In Progress",
        "priority": "High"}`` (a priority by its name in the scheme, as a person picks it)."""
        issue = self.issues[ticket_id]
        if "status" in changes:
            issue["fields"]["status"] = self._status(changes["status"])
        if "assignee" in changes:
            issue["fields"]["assignee"] = changes["assignee"]
        if "priority" in changes:
            name = changes["priority"]
            if name not in JIRA_PRIORITIES:
                raise ValueError(f"no priority {name!r} in the scheme {JIRA_PRIORITIES}")
            issue["fields"]["priority"] = {"id": str(JIRA_PRIORITIES.index(name) + 1), "name": name}
        return self._public(issue, None)

    def state(self) -> dict[str, Any]:
        return {
            "issues": list(self.issues.values()),
            "comments": {k: v for k, v in self.comments.items() if v},
            "requests": self.requests,
        }

    def reset(self) -> None:
        super().reset()
        self.issues.clear()
        self.comments.clear()
        self._numbers.clear()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A fake Jira Cloud REST API for tests.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--email", default="bot@example.com")
    parser.add_argument("--token", default="fake-api-token")
    args = parser.parse_args(argv)
    serve_forever(JiraFake(args.email, args.token, host=args.host, port=args.port))


if __name__ == "__main__":
    main()
