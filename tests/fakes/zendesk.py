"""A fake Zendesk Support API (tickets) that really listens; see ``tests.fakes.freshdesk`` for
the shared machinery (``start``/``stop``, ``fail_next``, the /_fake/ control plane).

Routes: ``create`` (POST /api/v2/tickets.json), ``list`` (GET /api/v2/tickets.json, with
``external_id``), ``get`` / ``update`` (GET / PUT /api/v2/tickets/{id}.json), ``comments``
(GET /api/v2/tickets/{id}/comments.json, with ``sort_order`` asc/desc, ``per_page`` and ``page``:
offset pagination, ``next_page`` the next page's URL or null), ``me`` (GET
/api/v2/users/me.json: the API agent, user 1).

``customer_reply`` is a public comment by the ticket's requester; as Zendesk does, it moves a
pending or solved ticket back to open.

What it checks, as Zendesk does
(https://developer.zendesk.com/api-reference/ticketing/tickets/tickets/): basic auth as
``{email}/token`` + API token (401 ``{"error": "Couldn't authenticate you"}``); a ``ticket``
object; a first comment with a body; priority urgent/high/normal/low; status
new/open/pending/hold/solved/closed; a requester e-mail that looks like one; a closed ticket
refuses every update. Validation errors are 422 ``{"error": "RecordInvalid", "description":
"Record validation errors", "details": {field: [{"description", "error"}]}}``. Unknown fields
are ignored, as Zendesk does.

Standalone: ``python -m tests.fakes.zendesk --port N --email E --token T`` (prints "ready").
"""

from __future__ import annotations

import argparse
import itertools
import re
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from aiohttp import web

from tests.fakes.freshdesk import (
    FakeService,
    Json,
    basic_credentials,
    iso_at,
    now_iso,
    serve_forever,
)

ZD_PRIORITIES = ("urgent", "high", "normal", "low")
ZD_STATUSES = ("new", "open", "pending", "hold", "solved", "closed")
ZD_TYPES = ("problem", "incident", "question", "task")
ZD_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def zd_detail(field: str, description: str, error: str = "InvalidValue") -> dict[str, Any]:
    return {field: [{"description": description, "error": error}]}


class ZendeskFake(FakeService):
    service = "zendesk"
    ROUTES = frozenset({"create", "list", "get", "update", "comments", "me"})

    def __init__(
        self,
        email: str = "agent@example.com",
        token: str = "fake-api-token",
        *,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(host=host, port=port)
        self.email = email
        self.token = token
        self.tickets: dict[int, dict[str, Any]] = {}
        self.comments: dict[int, list[dict[str, Any]]] = defaultdict(list)
        self.users: dict[int, dict[str, Any]] = {1: {"id": 1, "email": email, "name": "API agent"}}
        self._ids = itertools.count(1)
        self._comment_ids = itertools.count(9001)
        self._user_ids = itertools.count(2)

    # --- the wire ------------------------------------------------------------------------

    def add_routes(self, app: web.Application) -> None:
        self.route(app, "POST", "/api/v2/tickets.json", "create", self._create)
        self.route(app, "GET", "/api/v2/tickets.json", "list", self._list)
        self.route(app, "GET", r"/api/v2/tickets/{id:\d+}.json", "get", self._get)
        self.route(app, "PUT", r"/api/v2/tickets/{id:\d+}.json", "update", self._update)
        self.route(
            app, "GET", r"/api/v2/tickets/{id:\d+}/comments.json", "comments", self._comments
        )
        self.route(app, "GET", "/api/v2/users/me.json", "me", self._me)

    def authorized(self, request: web.Request) -> bool:
        return basic_credentials(request) == (f"{self.email}/token", self.token)

    def unauthorized(self) -> web.Response:
        return web.json_response({"error": "Couldn't authenticate you"}, status=401)

    def error_response(self, status: int) -> web.Response:
        if status == 429:
            return web.Response(
                status=429, text="Number of allowed API requests per minute exceeded"
            )
        return web.json_response(
            {"error": "ServiceUnavailable", "description": "Please try again later"}, status=status
        )

    def bad_json(self) -> web.Response:
        return web.json_response(
            {"error": "Unprocessable Entity", "message": "Server could not parse JSON"}, status=400
        )

    @staticmethod
    def _invalid(details: dict[str, Any]) -> web.Response:
        return web.json_response(
            {
                "error": "RecordInvalid",
                "description": "Record validation errors",
                "details": details,
            },
            status=422,
        )

    @staticmethod
    def _not_found() -> web.Response:
        return web.json_response(
            {"error": "RecordNotFound", "description": "Not found"}, status=404
        )

    # --- validation ----------------------------------------------------------------------

    def _check(self, ticket: dict[str, Any], creating: bool) -> dict[str, Any]:
        details: dict[str, Any] = {}
        comment = ticket.get("comment")
        if comment is not None or creating:
            text = (
                comment.get("body") or comment.get("html_body")
                if isinstance(comment, dict)
                else None
            )
            if not isinstance(text, str) or not text.strip():
                details.update(zd_detail("base", "Description: cannot be blank", "BlankValue"))
            if isinstance(comment, dict) and not isinstance(comment.get("public", True), bool):
                details.update(zd_detail("comment", "Public: is not a boolean"))
        if creating and not (isinstance(ticket.get("subject"), str) and ticket["subject"].strip()):
            details.update(zd_detail("subject", "Subject: cannot be blank", "BlankValue"))
        if ticket.get("priority") is not None and ticket["priority"] not in ZD_PRIORITIES:
            details.update(zd_detail("priority", "Priority: is not valid"))
        if ticket.get("status") is not None and ticket["status"] not in ZD_STATUSES:
            details.update(zd_detail("status", "Status: is not valid"))
        if ticket.get("type") is not None and ticket["type"] not in ZD_TYPES:
            details.update(zd_detail("type", "Type: is not valid"))
        requester = ticket.get("requester")
        if requester is not None:
            email = requester.get("email") if isinstance(requester, dict) else None
            if not (isinstance(email, str) and ZD_EMAIL.match(email)):
                details.update(zd_detail("requester", "Requester: Email is invalid"))
        if "tags" in ticket and not (
            isinstance(ticket["tags"], list) and all(isinstance(t, str) for t in ticket["tags"])
        ):
            details.update(zd_detail("tags", "Tags: is not a list of strings"))
        return details

    # --- handlers ------------------------------------------------------------------------

    def _user(self, requester: dict[str, Any]) -> int:
        email = str(requester["email"]).lower()
        for user in self.users.values():
            if user["email"].lower() == email:
                return int(user["id"])
        user_id = next(self._user_ids)
        self.users[user_id] = {
            "id": user_id,
            "email": email,
            "name": requester.get("name") or email,
        }
        return user_id

    def _add_comment(
        self, ticket_id: int, comment: dict[str, Any], author_id: int, at: float | None = None
    ) -> None:
        self.comments[ticket_id].append(
            {
                "id": next(self._comment_ids),
                "type": "Comment",
                "author_id": author_id,
                "body": comment.get("body") or comment.get("html_body"),
                "public": bool(comment.get("public", True)),
                "created_at": iso_at(at),
            }
        )

    def _public(self, ticket: dict[str, Any]) -> dict[str, Any]:
        return {**ticket, "url": f"{self.url}/api/v2/tickets/{ticket['id']}.json"}

    @staticmethod
    def _ticket_of(body: Json) -> dict[str, Any] | None:
        ticket = body.get("ticket") if isinstance(body, dict) else None
        return ticket if isinstance(ticket, dict) else None

    async def _create(self, request: web.Request, body: Json) -> web.Response:
        ticket = self._ticket_of(body)
        if ticket is None:
            return web.json_response(
                {"error": "InvalidValue", "description": "ticket parameter is missing"}, status=400
            )
        details = self._check(ticket, creating=True)
        if details:
            return self._invalid(details)
        ticket_id = next(self._ids)
        requester_id = self._user(ticket["requester"]) if ticket.get("requester") else 1
        stamp = now_iso()
        stored = {
            "id": ticket_id,
            "external_id": ticket.get("external_id"),
            "subject": ticket["subject"],
            "description": ticket["comment"].get("body") or ticket["comment"].get("html_body"),
            "priority": ticket.get("priority"),
            "status": ticket.get("status") or "new",
            "type": ticket.get("type"),
            "requester_id": requester_id,
            "submitter_id": 1,
            "assignee_id": ticket.get("assignee_id"),
            "group_id": ticket.get("group_id"),
            "tags": list(dict.fromkeys(str(t).lower() for t in ticket.get("tags", []))),
            "created_at": stamp,
            "updated_at": stamp,
        }
        self.tickets[ticket_id] = stored
        self._add_comment(ticket_id, ticket["comment"], author_id=1)
        return web.json_response(
            {"ticket": self._public(stored), "audit": {"ticket_id": ticket_id}}, status=201
        )

    async def _list(self, request: web.Request, body: Json) -> web.Response:
        external_id = request.query.get("external_id")
        tickets = [
            self._public(t)
            for t in self.tickets.values()
            if external_id is None or t.get("external_id") == external_id
        ]
        return web.json_response(
            {"tickets": tickets, "next_page": None, "previous_page": None, "count": len(tickets)}
        )

    async def _get(self, request: web.Request, body: Json) -> web.Response:
        ticket = self.tickets.get(int(request.match_info["id"]))
        if ticket is None:
            return self._not_found()
        return web.json_response({"ticket": self._public(ticket)})

    async def _comments(self, request: web.Request, body: Json) -> web.Response:
        ticket_id = int(request.match_info["id"])
        if ticket_id not in self.tickets:
            return self._not_found()
        comments = list(self.comments[ticket_id])
        if request.query.get("sort_order", "asc") == "desc":
            comments.reverse()
        per_page = min(100, int(request.query.get("per_page", "100")))
        page = max(1, int(request.query.get("page", "1")))
        start = (page - 1) * per_page
        query = dict(request.query)

        def link(number: int) -> str | None:
            if number < 1 or (number - 1) * per_page >= len(comments):
                return None
            return str(request.url.with_query({**query, "page": str(number)}))

        return web.json_response(
            {
                "comments": comments[start : start + per_page],
                "next_page": link(page + 1),
                "previous_page": link(page - 1),
                "count": len(comments),
            }
        )

    async def _me(self, request: web.Request, body: Json) -> web.Response:
        return web.json_response({"user": self.users[1]})

    async def _update(self, request: web.Request, body: Json) -> web.Response:
        ticket_id = int(request.match_info["id"])
        stored = self.tickets.get(ticket_id)
        if stored is None:
            return self._not_found()
        changes = self._ticket_of(body)
        if changes is None:
            return web.json_response(
                {"error": "InvalidValue", "description": "ticket parameter is missing"}, status=400
            )
        if stored["status"] == "closed":
            return self._invalid(
                zd_detail("status", "Status: closed prevents ticket update", "ClosedTicket")
            )
        details = self._check(changes, creating=False)
        if details:
            return self._invalid(details)
        if changes.get("comment") is not None:
            self._add_comment(ticket_id, changes["comment"], author_id=1)
        for key in (
            "status",
            "priority",
            "assignee_id",
            "group_id",
            "subject",
            "external_id",
            "type",
        ):
            if key in changes:
                stored[key] = changes[key]
        if "tags" in changes:
            stored["tags"] = list(dict.fromkeys(str(t).lower() for t in changes["tags"]))
        stored["updated_at"] = now_iso()
        return web.json_response(
            {"ticket": self._public(stored), "audit": {"ticket_id": ticket_id}}
        )

    # --- state ---------------------------------------------------------------------------

    def agent_update(self, ticket_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        ticket = self.tickets[int(ticket_id)]
        ticket.update(changes)
        ticket["updated_at"] = now_iso()
        return self._public(ticket)

    def customer_reply(self, ticket_id: str, body: str, at: float | None = None) -> None:
        ticket = self.tickets[int(ticket_id)]
        comment = {"body": body, "public": True}
        self._add_comment(ticket["id"], comment, author_id=ticket["requester_id"], at=at)
        if ticket["status"] in ("pending", "solved"):
            ticket["status"] = "open"
        ticket["updated_at"] = now_iso()

    def state(self) -> dict[str, Any]:
        return {
            "tickets": list(self.tickets.values()),
            "comments": {str(k): v for k, v in self.comments.items() if v},
            "users": list(self.users.values()),
            "requests": self.requests,
        }

    def reset(self) -> None:
        super().reset()
        self.tickets.clear()
        self.comments.clear()
        self._ids = itertools.count(1)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A fake Zendesk Support API for tests.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--email", default="agent@example.com")
    parser.add_argument("--token", default="fake-api-token")
    args = parser.parse_args(argv)
    serve_forever(ZendeskFake(args.email, args.token, host=args.host, port=args.port))


if __name__ == "__main__":
    main()
