"""A fake ServiceNow Table API (incident table) that really listens; see
``tests.fakes.freshdesk`` for the shared machinery (``start``/``stop``, ``fail_next``, the
/_fake/ control plane).

Routes: ``create`` (POST /api/now/table/incident), ``list`` (GET /api/now/table/incident with
``sysparm_query``, ``sysparm_limit``, ``sysparm_offset``, ``sysparm_fields``), ``get`` /
``update`` (GET and PATCH or PUT /api/now/table/incident/{sys_id}), ``journal`` (GET
/api/now/table/sys_journal_field, the journal entries: ``element_id``, ``element``, ``value``,
``sys_created_on`` as ``YYYY-MM-DD HH:MM:SS`` UTC, ``sys_created_by`` the user name).

Encoded queries take ``field=value``, ``field>value`` / ``<`` (compared as strings, as
ServiceNow's date-times compare), ``ORDERBY``/``ORDERBYDESC``. ``sysparm_fields`` may dot-walk
``caller_id.user_name`` (users from ``add_user``). ``customer_reply`` is an additional comment
written by the incident's caller; no business rule moves the state on it.

What it does, as the Table API does
(https://docs.servicenow.com/bundle/utah-api-reference/page/integrate/inbound-rest/concept/c_TableAPI.html):
basic auth (401 ``{"error": {"message": "User Not Authenticated", "detail": "Required to
provide Auth information"}, "status": "failure"}``); answers wrapped in ``{"result": ...}``;
every value a string; fields the table does not have are ignored; ``comments`` and
``work_notes`` are journal fields (kept in ``journal``, read back empty); priority computed
from urgency x impact; a record in state 6 (Resolved) or 7 (Closed) needs ``close_code`` and
``close_notes`` -- the out-of-box data policy answers 403 "Data Policy Exception" otherwise;
reference fields (``assigned_to``, ``caller_id``, ``assignment_group``) come back as
``{"link", "value"}`` unless ``sysparm_exclude_reference_link=true``.

Standalone: ``python -m tests.fakes.servicenow --port N --username U --password P``.
"""

from __future__ import annotations

import argparse
import itertools
import re
import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any

from aiohttp import web

from tests.fakes.freshdesk import FakeService, Json, basic_credentials, now_iso, serve_forever

SN_FIELDS = frozenset(
    {
        "short_description",
        "description",
        "urgency",
        "impact",
        "priority",
        "state",
        "caller_id",
        "assignment_group",
        "assigned_to",
        "category",
        "subcategory",
        "contact_type",
        "correlation_id",
        "correlation_display",
        "hold_reason",
        "close_code",
        "close_notes",
        "cmdb_ci",
        "business_service",
    }
)
SN_JOURNAL = frozenset({"comments", "work_notes"})
SN_REFERENCES = frozenset({"caller_id", "assignment_group", "assigned_to", "cmdb_ci"})
# The out-of-box priority lookup: (impact, urgency) -> priority.
SN_PRIORITY = {
    ("1", "1"): "1",
    ("1", "2"): "2",
    ("2", "1"): "2",
    ("1", "3"): "3",
    ("2", "2"): "3",
    ("3", "1"): "3",
    ("2", "3"): "4",
    ("3", "2"): "4",
    ("3", "3"): "5",
}
SN_LABELS = {"close_code": "Resolution code", "close_notes": "Resolution notes"}


def sn_error(message: str, detail: str | None, status: int) -> web.Response:
    return web.json_response(
        {"error": {"message": message, "detail": detail}, "status": "failure"}, status=status
    )


_CONDITION = re.compile(r"^([A-Za-z0-9_.]+)(>=|<=|!=|=|>|<)(.*)$")


def sn_time(at: float | None) -> str:
    """ServiceNow's date-time: ``2026-11-24 10:00:00`` in UTC."""
    moment = datetime.now(UTC) if at is None else datetime.fromtimestamp(at, UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def split_query(query: str) -> list[str]:
    """An encoded query's conditions: split on "^", where "^^" is a literal caret."""
    parts = query.replace("^^", "\0").split("^")
    return [p.replace("\0", "^") for p in parts if p]


def _sort_key(field: str, record: dict[str, Any]) -> str:
    return str(record.get(field, ""))


def _holds(record: dict[str, Any], field: str, operator: str, value: str) -> bool:
    have = str(record.get(field, ""))
    return {
        "=": have == value,
        "!=": have != value,
        ">": have > value,
        "<": have < value,
        ">=": have >= value,
        "<=": have <= value,
    }[operator]


class ServiceNowFake(FakeService):
    service = "servicenow"
    ROUTES = frozenset({"create", "list", "get", "update", "journal"})

    def __init__(
        self,
        username: str = "watchdesk",
        password: str = "fake-password",
        *,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(host=host, port=port)
        self.username = username
        self.password = password
        self.tickets: dict[str, dict[str, Any]] = {}  # sys_id -> incident record
        self.journal: dict[str, list[dict[str, str]]] = defaultdict(list)
        self.users: dict[str, str] = {}  # sys_id -> user_name
        self._numbers = itertools.count(10001)

    # --- the wire ------------------------------------------------------------------------

    def add_routes(self, app: web.Application) -> None:
        table = "/api/now/table/incident"
        self.route(app, "POST", table, "create", self._create)
        self.route(app, "GET", table, "list", self._list)
        self.route(app, "GET", table + "/{sys_id}", "get", self._get)
        self.route(app, "PATCH", table + "/{sys_id}", "update", self._update)
        self.route(app, "PUT", table + "/{sys_id}", "update", self._update)
        self.route(app, "GET", "/api/now/table/sys_journal_field", "journal", self._journal)

    def authorized(self, request: web.Request) -> bool:
        return basic_credentials(request) == (self.username, self.password)

    def unauthorized(self) -> web.Response:
        return sn_error("User Not Authenticated", "Required to provide Auth information", 401)

    def error_response(self, status: int) -> web.Response:
        if status == 429:
            return sn_error("Too many requests", "Rate limit exceeded", 429)
        return web.Response(
            status=status,
            text="<html><body>Service Unavailable</body></html>",
            content_type="text/html",
        )

    def bad_json(self) -> web.Response:
        return sn_error("Exception while reading request", "The payload is not valid JSON.", 400)

    # --- records -------------------------------------------------------------------------

    def _render(self, record: dict[str, Any], request: web.Request) -> dict[str, Any]:
        fields = request.query.get("sysparm_fields")
        keep = [f.strip() for f in fields.split(",")] if fields else list(record)
        links = request.query.get("sysparm_exclude_reference_link", "false").lower() != "true"
        out: dict[str, Any] = {}
        for name in keep:
            value = record.get(name, "")
            if name == "caller_id.user_name":
                value = self.users.get(str(record.get("caller_id", "")), "")
            if links and name in SN_REFERENCES and value:
                value = {"link": f"{self.url}/api/now/table/sys_user/{value}", "value": value}
            out[name] = value
        return out

    def _apply(self, record: dict[str, Any], body: dict[str, Any]) -> web.Response | None:
        """Apply a create/update body to ``record``; an error response when a policy refuses."""
        changes = {k: "" if v is None else str(v) for k, v in body.items() if k in SN_FIELDS}
        merged = {**record, **changes}
        if merged.get("state") in ("6", "7"):
            missing = [SN_LABELS[f] for f in ("close_code", "close_notes") if not merged.get(f)]
            if missing:
                return sn_error(
                    "Operation Failed",
                    "Data Policy Exception: \n\tThe following fields are mandatory: "
                    + ", ".join(missing)
                    + "\n",
                    403,
                )
        merged["priority"] = SN_PRIORITY.get(
            (merged.get("impact", "3"), merged.get("urgency", "3")), merged.get("priority", "5")
        )
        merged["sys_updated_on"] = now_iso()
        record.clear()
        record.update(merged)
        for element in SN_JOURNAL:
            value = body.get(element)
            if value:
                self._journal_entry(record["sys_id"], element, str(value), self.username, None)
        return None

    def _journal_entry(
        self, sys_id: str, element: str, value: str, by: str, at: float | None
    ) -> None:
        self.journal[sys_id].append(
            {
                "sys_id": uuid.uuid4().hex,
                "name": "incident",
                "element_id": sys_id,
                "element": element,
                "value": value,
                "sys_created_on": sn_time(at),
                "sys_created_by": by,
            }
        )

    # --- handlers ------------------------------------------------------------------------

    async def _create(self, request: web.Request, body: Json) -> web.Response:
        if not isinstance(body, dict):
            return self.bad_json()
        sys_id = uuid.uuid4().hex
        record: dict[str, Any] = {
            "sys_id": sys_id,
            "number": f"INC{next(self._numbers):07d}",
            "state": "1",
            "urgency": "3",
            "impact": "3",
            "priority": "5",
            "assigned_to": "",
            "short_description": "",
            "description": "",
            "comments": "",
            "work_notes": "",
            "sys_created_on": now_iso(),
        }
        refused = self._apply(record, body)
        if refused is not None:
            return refused
        self.tickets[sys_id] = record
        response = web.json_response({"result": self._render(record, request)}, status=201)
        response.headers["Location"] = f"{self.url}/api/now/table/incident/{sys_id}"
        return response

    async def _list(self, request: web.Request, body: Json) -> web.Response:
        return self._query(list(self.tickets.values()), request)

    async def _journal(self, request: web.Request, body: Json) -> web.Response:
        entries = [entry for entries in self.journal.values() for entry in entries]
        return self._query(entries, request)

    def _query(self, records: list[dict[str, Any]], request: web.Request) -> web.Response:
        """A table read: ``sysparm_query`` conditions and order, ``sysparm_offset``,
        ``sysparm_limit``."""
        order: list[tuple[str, bool]] = []
        for condition in split_query(request.query.get("sysparm_query", "")):
            if condition.startswith("ORDERBYDESC"):
                order.append((condition[len("ORDERBYDESC") :], True))
            elif condition.startswith("ORDERBY"):
                order.append((condition[len("ORDERBY") :], False))
            elif match := _CONDITION.match(condition):
                records = [r for r in records if _holds(r, *match.groups())]
            else:
                return sn_error("Invalid query", f"Unsupported condition: {condition}", 400)
        for field, descending in reversed(order):
            records.sort(key=partial(_sort_key, field), reverse=descending)
        records = records[int(request.query.get("sysparm_offset", "0")) :]
        limit = request.query.get("sysparm_limit")
        if limit is not None:
            records = records[: int(limit)]
        return web.json_response({"result": [self._render(r, request) for r in records]})

    async def _get(self, request: web.Request, body: Json) -> web.Response:
        record = self.tickets.get(request.match_info["sys_id"])
        if record is None:
            return sn_error(
                "No Record found", "Record doesn't exist or ACL restricts the record retrieval", 404
            )
        return web.json_response({"result": self._render(record, request)})

    async def _update(self, request: web.Request, body: Json) -> web.Response:
        record = self.tickets.get(request.match_info["sys_id"])
        if record is None:
            return sn_error(
                "No Record found", "Record doesn't exist or ACL restricts the record retrieval", 404
            )
        if not isinstance(body, dict):
            return self.bad_json()
        refused = self._apply(record, body)
        if refused is not None:
            return refused
        return web.json_response({"result": self._render(record, request)})

    # --- state ---------------------------------------------------------------------------

    def agent_update(self, ticket_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        """What a person does on the form: assign, change state, urgency or impact (the
        priority follows them, as the lookup computes it)."""
        record = self.tickets[ticket_id]
        record.update({k: str(v) for k, v in changes.items()})
        record["priority"] = SN_PRIORITY.get(
            (record.get("impact", "3"), record.get("urgency", "3")), record.get("priority", "5")
        )
        return dict(record)

    def add_user(self, user_name: str) -> str:
        """A sys_user (a caller); returns its sys_id."""
        sys_id = uuid.uuid4().hex
        self.users[sys_id] = user_name
        return sys_id

    def customer_reply(self, ticket_id: str, body: str, at: float | None = None) -> None:
        """An additional comment by the incident's caller (``customer`` without one)."""
        record = self.tickets[ticket_id]
        caller = self.users.get(str(record.get("caller_id", "")), "customer")
        self._journal_entry(ticket_id, "comments", body, caller, at)

    def state(self) -> dict[str, Any]:
        return {
            "tickets": list(self.tickets.values()),
            "journal": {k: v for k, v in self.journal.items() if v},
            "requests": self.requests,
        }

    def reset(self) -> None:
        super().reset()
        self.tickets.clear()
        self.journal.clear()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A fake ServiceNow Table API for tests.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--username", default="watchdesk")
    parser.add_argument("--password", default="fake-password")
    args = parser.parse_args(argv)
    serve_forever(ServiceNowFake(args.username, args.password, host=args.host, port=args.port))


if __name__ == "__main__":
    main()
