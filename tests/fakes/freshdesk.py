"""A fake Freshdesk (API v2) that really listens, and the machinery every helpdesk fake shares.

In a test::

    async with FreshdeskFake(api_key="k") as fake:       # or: url = await fake.start()
        fake.fail_next("create", "timeout")               # record the ticket, never answer
        ...
        assert fake.tickets[1]["priority"] == 4
        assert fake.notes[1][0]["private"] is False

Standalone, for a test that runs the agent in another process::

    python -m tests.fakes.freshdesk --port 8501 --api-key K
    # prints "ready" on stdout once it listens; serves until SIGTERM/SIGINT
    curl localhost:8501/_fake/state                       # tickets, notes, contacts, requests
    curl -XPOST localhost:8501/_fake/fail -d '{"route": "create", "kind": "429", "retry_after": 7}'
    curl -XPOST localhost:8501/_fake/tickets/1 -d '{"responder_id": 42}'   # an agent takes it
    curl -XPOST localhost:8501/_fake/tickets/1/reply -d '{"body": "still broken", "at": 1.8e9}'
    curl -XPOST localhost:8501/_fake/reset

``customer_reply(ticket_id, body, at=None)`` (or ``POST /_fake/tickets/{id}/reply``) is the
requester writing back (``at``: epoch seconds it carries, default now), as each helpdesk
records it.

Scripted failures (``fail_next(route, kind, count=1, retry_after=None, status=None,
delay=None)``), taken in order per route; route ``"*"`` matches any route:

- ``"429"``, ``"500"``, ``"503"`` (any status as a string) or ``"error"`` (with ``status=``):
  answer that status with the service's error body, and ``Retry-After`` when given;
- ``"timeout"``: do the work (the ticket is stored), then answer only after ``delay`` seconds
  (default 30): the client's timeout fires first -- "created but the answer was lost";
- ``"timeout_before"``: hang without doing anything;
- ``"drop"``: do the work, then close the connection without an answer;
- ``"drop_before"``: close the connection without doing anything.

A time-based outage (``outage(until, kinds, route="*")``, or ``POST /_fake/outage {"until":
EPOCH, "route": "*", "kinds": [{"kind": "503"}, {"kind": "429", "retry_after": 2}]}``): until
the wall-clock time ``until``, every request to the route that has no scripted failure gets the
next of ``kinds`` in turn (same kinds and fields as ``fail_next``). For a stretch of misbehaviour
whose request count nobody can know in advance.

Every request is recorded (``requests``) with its route, method, path, query, JSON body,
``host`` (the Host header: which name the client was configured with, e.g. to tell apart agents
of a cluster pointed at the same stand-in by different names) and ``at``, the wall-clock time
(``time.time()``) it arrived.

Scripted failures come before the credential check, as a load balancer's would. aiohttp's
client retries an idempotent request (GET/PUT) once when the server closes the connection, so a
single ``drop`` on such a route goes unnoticed: script ``count=2`` to make it visible.

Freshdesk routes: ``create`` (POST /api/v2/tickets), ``search`` (GET /api/v2/search/tickets),
``get`` / ``update`` (GET / PUT /api/v2/tickets/{id}), ``note`` (POST .../notes), ``reply``
(POST .../reply).

What it checks, as Freshdesk does (https://developers.freshdesk.com/api/): basic auth with the
API key as user name; unknown body fields (400 ``invalid_field``); a requester; subject and
description; priority 1-4, status 2-5 (plus ``custom_statuses``), source, type among the ticket
types, tags as strings of at most 32 characters; search queries enclosed in double quotes.
Errors have Freshdesk's shape: ``{"description": "Validation failed", "errors": [{"field",
"message", "code"}]}``. ``search_lag`` (seconds) hides new tickets from search, as the real
index does.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import contextlib
import itertools
import json
import re
import signal
import sys
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any, Self

from aiohttp import web

Json = Any
Handler = Callable[[web.Request, Json], Awaitable[web.StreamResponse]]

DEFAULT_HANG = 30.0


def phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP {status}"


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_at(at: float | None) -> str:
    """``at`` (epoch seconds; None: now) as ``2026-11-24T10:00:00Z``."""
    return (
        now_iso() if at is None else datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    )


def basic_credentials(request: web.Request) -> tuple[str, str] | None:
    """(user, password) from an ``Authorization: Basic`` header, or None."""
    header = request.headers.get("Authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


@dataclass
class Failure:
    kind: str
    status: int = 503
    retry_after: float | None = None
    delay: float = DEFAULT_HANG


class FakeService:
    """A helpdesk API on 127.0.0.1 with scripted failures and a control plane under /_fake/.

    Subclasses add their routes in ``add_routes`` (through ``self.route``), and say how a
    request authenticates, what an error looks like, and what their state is.
    """

    service = "fake"
    # A scripted failure for a route that does not exist is a typo in a test.
    ROUTES: frozenset[str] = frozenset()

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self.url = ""
        self.requests: list[dict[str, Any]] = []
        self._failures: dict[str, deque[Failure]] = defaultdict(deque)
        self._outage: tuple[float, str, list[Failure]] | None = None
        self._outage_turn = itertools.count()
        self._runner: web.AppRunner | None = None
        self._stopping = asyncio.Event()
        self._lock = asyncio.Lock()

    # --- what subclasses provide -----------------------------------------------------------

    def add_routes(self, app: web.Application) -> None:
        raise NotImplementedError

    def authorized(self, request: web.Request) -> bool:
        raise NotImplementedError

    def unauthorized(self) -> web.Response:
        raise NotImplementedError

    def error_response(self, status: int) -> web.Response:
        """What the service answers with this status when it is overloaded or broken."""
        return web.json_response({"error": phrase(status)}, status=status)

    def bad_json(self) -> web.Response:
        return web.json_response({"error": "invalid JSON"}, status=400)

    def state(self) -> dict[str, Any]:
        raise NotImplementedError

    def reset(self) -> None:
        self.requests.clear()
        self._failures.clear()
        self._outage = None

    def agent_update(self, ticket_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        """What a person does in the helpdesk (assign, change status): merged into the ticket."""
        raise NotImplementedError

    def customer_reply(self, ticket_id: str, body: str, at: float | None = None) -> None:
        """The requester writes back on the ticket, at ``at`` (epoch seconds; None: now)."""
        raise NotImplementedError

    # --- scripting -------------------------------------------------------------------------

    def _check_route(self, route: str) -> None:
        if route != "*" and route not in self.ROUTES:
            raise ValueError(f"{self.service}: no route {route!r}; routes: {sorted(self.ROUTES)}")

    def _failure(
        self,
        kind: str,
        retry_after: float | None = None,
        status: int | None = None,
        delay: float | None = None,
    ) -> Failure:
        if kind.isdigit():
            status, kind = int(kind), "error"
        if kind not in {"error", "timeout", "timeout_before", "drop", "drop_before"}:
            raise ValueError(f"{self.service}: unknown failure kind {kind!r}")
        return Failure(
            kind=kind,
            status=status or 503,
            retry_after=retry_after,
            delay=DEFAULT_HANG if delay is None else delay,
        )

    def fail_next(
        self,
        route: str,
        kind: str,
        count: int = 1,
        *,
        retry_after: float | None = None,
        status: int | None = None,
        delay: float | None = None,
    ) -> None:
        self._check_route(route)
        failure = self._failure(kind, retry_after, status, delay)
        self._failures[route].extend(failure for _ in range(count))

    def reset_failures(self) -> None:
        """Drop every scripted failure not yet taken: the service is healthy again."""
        self._failures.clear()

    def outage(self, until: float, kinds: Sequence[dict[str, Any]], route: str = "*") -> None:
        """Until wall-clock ``until``, answer every request to ``route`` with the next of
        ``kinds`` (dicts with ``kind`` and optional ``retry_after``/``status``/``delay``)."""
        self._check_route(route)
        failures = [
            self._failure(str(k["kind"]), k.get("retry_after"), k.get("status"), k.get("delay"))
            for k in kinds
        ]
        if not failures:
            raise ValueError(f"{self.service}: an outage needs at least one failure kind")
        self._outage = (float(until), route, failures)

    def pending_failures(self, route: str) -> int:
        return len(self._failures[route])

    def _take_failure(self, route: str) -> Failure | None:
        for key in (route, "*"):
            if self._failures[key]:
                return self._failures[key].popleft()
        if self._outage is not None:
            until, outage_route, failures = self._outage
            if time.time() >= until:
                self._outage = None
            elif outage_route in ("*", route):
                return failures[next(self._outage_turn) % len(failures)]
        return None

    def requests_to(self, route: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["route"] == route]

    # --- serving ---------------------------------------------------------------------------

    def route(
        self, app: web.Application, method: str, path: str, name: str, handler: Handler
    ) -> None:
        async def handle(request: web.Request) -> web.StreamResponse:
            raw = await request.read()
            body: Json = None
            bad_body = False
            if raw:
                try:
                    body = json.loads(raw)
                except ValueError:
                    bad_body = True
            self.requests.append(
                {
                    "route": name,
                    "method": request.method,
                    "path": request.path,
                    "query": dict(request.query),
                    "json": body,
                    "host": request.host,
                    "at": time.time(),
                }
            )
            failure = self._take_failure(name)
            if failure is not None:
                if failure.kind == "error":
                    response = self.error_response(failure.status)
                    if failure.retry_after is not None:
                        response.headers["Retry-After"] = f"{failure.retry_after:g}"
                    return response
                if failure.kind == "timeout_before":
                    await self._hang(failure.delay)
                    return self.error_response(504)
                if failure.kind == "drop_before":
                    return self._drop(request)
            if not self.authorized(request):
                return self.unauthorized()
            if bad_body:
                return self.bad_json()
            async with self._lock:
                answer = await handler(request, body)
            if failure is not None and failure.kind == "timeout":
                await self._hang(failure.delay)
            elif failure is not None and failure.kind == "drop":
                return self._drop(request)
            return answer

        app.router.add_route(method, path, handle)

    async def _hang(self, delay: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), delay)

    @staticmethod
    def _drop(request: web.Request) -> web.StreamResponse:
        if request.transport is not None:
            request.transport.abort()
        return web.Response(status=500)  # never reaches the client: the connection is gone

    def build_app(self) -> web.Application:
        app = web.Application()
        self.add_routes(app)
        app.router.add_get("/_fake/state", self._control_state)
        app.router.add_post("/_fake/fail", self._control_fail)
        app.router.add_post("/_fake/outage", self._control_outage)
        app.router.add_post("/_fake/reset", self._control_reset)
        app.router.add_post("/_fake/tickets/{id}", self._control_ticket)
        app.router.add_post("/_fake/tickets/{id}/reply", self._control_reply)
        return app

    async def _control_state(self, request: web.Request) -> web.Response:
        return web.json_response(self.state())

    async def _control_fail(self, request: web.Request) -> web.Response:
        spec = await request.json()
        try:
            self.fail_next(
                str(spec["route"]),
                str(spec["kind"]),
                int(spec.get("count", 1)),
                retry_after=spec.get("retry_after"),
                status=spec.get("status"),
                delay=spec.get("delay"),
            )
        except (KeyError, ValueError, TypeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response({"pending": self.pending_failures(str(spec["route"]))})

    async def _control_outage(self, request: web.Request) -> web.Response:
        spec = await request.json()
        try:
            self.outage(float(spec["until"]), list(spec["kinds"]), str(spec.get("route", "*")))
        except (KeyError, ValueError, TypeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response({"until": spec["until"]})

    async def _control_reset(self, request: web.Request) -> web.Response:
        self.reset()
        return web.json_response({"ok": True})

    async def _control_ticket(self, request: web.Request) -> web.Response:
        changes = await request.json()
        try:
            ticket = self.agent_update(request.match_info["id"], changes)
        except KeyError:
            return web.json_response({"error": "no such ticket"}, status=404)
        return web.json_response(ticket)

    async def _control_reply(self, request: web.Request) -> web.Response:
        spec = await request.json()
        try:
            self.customer_reply(request.match_info["id"], str(spec["body"]), spec.get("at"))
        except KeyError:
            return web.json_response({"error": "no such ticket"}, status=404)
        return web.json_response({"ok": True})

    async def start(self) -> str:
        """Listen on ``host:port`` (0: any free port); return the base URL."""
        self._stopping.clear()
        self._runner = web.AppRunner(
            self.build_app(), handler_cancellation=True, access_log=None, shutdown_timeout=0.5
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.port = int(port)
        self.url = f"http://{host}:{self.port}"
        return self.url

    async def stop(self) -> None:
        self._stopping.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def serve_forever(fake: FakeService) -> None:
    """Start the fake, print "ready" once it listens, serve until SIGTERM or SIGINT."""

    async def run() -> None:
        url = await fake.start()
        done = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, done.set)
        print(f"{fake.service} fake listening on {url}", file=sys.stderr, flush=True)
        print("ready", flush=True)
        await done.wait()
        await fake.stop()

    asyncio.run(run())


# --- Freshdesk ------------------------------------------------------------------------------

FD_CREATE_FIELDS = frozenset(
    {
        "name",
        "requester_id",
        "email",
        "facebook_id",
        "phone",
        "twitter_id",
        "unique_external_id",
        "subject",
        "type",
        "status",
        "priority",
        "description",
        "responder_id",
        "attachments",
        "cc_emails",
        "custom_fields",
        "due_by",
        "email_config_id",
        "fr_due_by",
        "group_id",
        "parent_id",
        "product_id",
        "source",
        "tags",
        "company_id",
        "internal_agent_id",
        "internal_group_id",
        "lookup_parameter",
        "related_ticket_ids",
    }
)
FD_UPDATE_FIELDS = FD_CREATE_FIELDS - {"cc_emails", "parent_id", "related_ticket_ids"}
FD_NOTE_FIELDS = frozenset(
    {"body", "incoming", "notify_emails", "private", "user_id", "attachments"}
)
FD_REPLY_FIELDS = frozenset(
    {"body", "from_email", "user_id", "cc_emails", "bcc_emails", "attachments"}
)
FD_REQUESTER_FIELDS = (
    "requester_id",
    "email",
    "phone",
    "twitter_id",
    "facebook_id",
    "unique_external_id",
)
FD_PRIORITIES = (1, 2, 3, 4)
FD_STATUSES = (2, 3, 4, 5)
FD_SOURCES = (1, 2, 3, 5, 6, 7, 9, 10)
FD_TYPES = ("Question", "Incident", "Problem", "Feature Request", "Refund")
FD_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
FD_TAG_QUERY = re.compile(r"^tag:'([^']*)'$")


def fd_error(field: str, message: str, code: str) -> dict[str, str]:
    return {"field": field, "message": message, "code": code}


def fd_one_of(values: Sequence[object]) -> str:
    return "It should be one of these values: '" + ",".join(str(v) for v in values) + "'"


class FreshdeskFake(FakeService):
    service = "freshdesk"
    ROUTES = frozenset({"create", "search", "get", "update", "note", "reply", "conversations"})
    AGENT_ID = 1  # the API key's agent: the author of our notes and replies

    def __init__(
        self,
        api_key: str = "fake-api-key",
        *,
        search_lag: float = 0.0,
        custom_statuses: dict[int, str] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(host=host, port=port)
        self.api_key = api_key
        self.search_lag = search_lag
        self.custom_statuses = dict(custom_statuses or {})
        self.tickets: dict[int, dict[str, Any]] = {}
        self.notes: dict[int, list[dict[str, Any]]] = defaultdict(list)  # notes and replies
        self.contacts: dict[int, str] = {}  # requester_id -> email
        self._indexed_at: dict[int, float] = {}
        self._ids = itertools.count(1)
        self._note_ids = itertools.count(1001)
        self._contact_ids = itertools.count(5001)
        # As Freshdesk does by default: a requester's reply moves a pending or resolved ticket
        # back to Open.
        self.reopen_on_reply = True
        self.stats: dict[int, dict[str, Any]] = defaultdict(dict)

    # --- the wire ------------------------------------------------------------------------

    def add_routes(self, app: web.Application) -> None:
        self.route(app, "POST", "/api/v2/tickets", "create", self._create)
        self.route(app, "GET", "/api/v2/search/tickets", "search", self._search)
        self.route(app, "GET", r"/api/v2/tickets/{id:\d+}", "get", self._get)
        self.route(app, "PUT", r"/api/v2/tickets/{id:\d+}", "update", self._update)
        self.route(app, "POST", r"/api/v2/tickets/{id:\d+}/notes", "note", self._note)
        self.route(app, "POST", r"/api/v2/tickets/{id:\d+}/reply", "reply", self._reply)
        self.route(
            app,
            "GET",
            r"/api/v2/tickets/{id:\d+}/conversations",
            "conversations",
            self._conversations,
        )

    def authorized(self, request: web.Request) -> bool:
        credentials = basic_credentials(request)
        return credentials is not None and credentials[0] == self.api_key

    def unauthorized(self) -> web.Response:
        return web.json_response(
            {
                "code": "invalid_credentials",
                "message": "You have to be logged in to perform this action.",
            },
            status=401,
        )

    def error_response(self, status: int) -> web.Response:
        if status == 429:
            return web.json_response(
                {"message": "You have exceeded the limit of requests per minute"}, status=429
            )
        return web.Response(status=status, text=phrase(status))

    def bad_json(self) -> web.Response:
        return self._invalid([fd_error("", "Request body has invalid json format", "invalid_json")])

    @staticmethod
    def _invalid(errors: list[dict[str, str]]) -> web.Response:
        return web.json_response({"description": "Validation failed", "errors": errors}, status=400)

    @staticmethod
    def _not_found() -> web.Response:
        return web.Response(status=404)

    # --- validation ----------------------------------------------------------------------

    def _check_fields(self, body: Json, allowed: frozenset[str]) -> list[dict[str, str]]:
        if not isinstance(body, dict):
            return [fd_error("", "Request body has invalid json format", "invalid_json")]
        return [
            fd_error(key, "Unexpected/invalid field in request", "invalid_field")
            for key in body
            if key not in allowed
        ]

    def _check_ticket_values(self, body: dict[str, Any], creating: bool) -> list[dict[str, str]]:
        errors: list[dict[str, str]] = []
        for field in ("subject", "description"):
            if field not in body:
                if creating:
                    errors.append(fd_error(field, "It should be a/an String", "missing_field"))
            elif not isinstance(body[field], str):
                errors.append(fd_error(field, "It should be a/an String", "datatype_mismatch"))
        if creating and not any(body.get(key) for key in FD_REQUESTER_FIELDS):
            errors.append(
                fd_error(
                    "requester_id",
                    "Please fill at least 1 of email, mobile, phone, requester_id, "
                    "twitter_id, facebook_id fields",
                    "missing_field",
                )
            )
        if "email" in body and not (
            isinstance(body["email"], str) and FD_EMAIL.match(body["email"])
        ):
            errors.append(
                fd_error(
                    "email", "It should be in the 'valid email address' format", "invalid_value"
                )
            )
        statuses = (*FD_STATUSES, *self.custom_statuses)
        for field, allowed in (
            ("priority", FD_PRIORITIES),
            ("status", statuses),
            ("source", FD_SOURCES),
        ):
            value = body.get(field)
            if field in body and (isinstance(value, bool) or value not in allowed):
                errors.append(fd_error(field, fd_one_of(allowed), "invalid_value"))
        if "type" in body and body["type"] is not None and body["type"] not in FD_TYPES:
            errors.append(fd_error("type", fd_one_of(FD_TYPES), "invalid_value"))
        if (
            "group_id" in body
            and body["group_id"] is not None
            and (
                not isinstance(body["group_id"], int)
                or isinstance(body["group_id"], bool)
                or body["group_id"] <= 0
            )
        ):
            errors.append(
                fd_error("group_id", "It should be a/an Positive Integer", "datatype_mismatch")
            )
        if "tags" in body:
            tags = body["tags"]
            if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
                errors.append(fd_error("tags", "It should be a/an Array", "datatype_mismatch"))
            elif any(len(t) > 32 for t in tags):
                errors.append(
                    fd_error(
                        "tags",
                        "It should only contain elements that have maximum of 32 characters",
                        "invalid_value",
                    )
                )
        return errors

    # --- handlers ------------------------------------------------------------------------

    def _contact(self, email: str) -> int:
        for contact_id, known in self.contacts.items():
            if known.lower() == email.lower():
                return contact_id
        contact_id = next(self._contact_ids)
        self.contacts[contact_id] = email
        return contact_id

    def _public(self, ticket: dict[str, Any]) -> dict[str, Any]:
        return dict(ticket)

    async def _create(self, request: web.Request, body: Json) -> web.Response:
        errors = self._check_fields(body, FD_CREATE_FIELDS)
        if not errors:
            errors = self._check_ticket_values(body, creating=True)
        if errors:
            return self._invalid(errors)
        ticket_id = next(self._ids)
        requester_id = body.get("requester_id") or self._contact(
            body.get("email") or f"anon{ticket_id}@fake"
        )
        stamp = now_iso()
        ticket = {
            "id": ticket_id,
            "subject": body["subject"],
            "description": body["description"],
            "description_text": re.sub(r"<[^>]+>", " ", body["description"]).strip(),
            "priority": body.get("priority", 1),
            "status": body.get("status", 2),
            "source": body.get("source", 2),
            "type": body.get("type"),
            "tags": list(body.get("tags", [])),
            "group_id": body.get("group_id"),
            "responder_id": body.get("responder_id"),
            "requester_id": requester_id,
            "cc_emails": list(body.get("cc_emails", [])),
            "custom_fields": dict(body.get("custom_fields", {})),
            "created_at": stamp,
            "updated_at": stamp,
        }
        self.tickets[ticket_id] = ticket
        self._indexed_at[ticket_id] = time.monotonic() + self.search_lag
        response = web.json_response(self._public(ticket), status=201)
        response.headers["Location"] = f"{self.url}/api/v2/tickets/{ticket_id}"
        return response

    async def _search(self, request: web.Request, body: Json) -> web.Response:
        query = request.query.get("query")
        if query is None:
            return self._invalid([fd_error("query", "It should be a/an String", "missing_field")])
        if len(query) < 2 or not (query.startswith('"') and query.endswith('"')):
            return self._invalid(
                [
                    fd_error(
                        "query", "Query should be enclosed within double quotes", "invalid_value"
                    )
                ]
            )
        match = FD_TAG_QUERY.match(query[1:-1].strip())
        if match is None:
            return self._invalid([fd_error("query", "Given query is invalid", "invalid_value")])
        tag = match.group(1).lower()
        now = time.monotonic()
        results = [
            self._public(t)
            for t in self.tickets.values()
            if self._indexed_at.get(t["id"], 0.0) <= now and tag in (x.lower() for x in t["tags"])
        ]
        return web.json_response({"results": results, "total": len(results)})

    async def _get(self, request: web.Request, body: Json) -> web.Response:
        ticket = self.tickets.get(int(request.match_info["id"]))
        if ticket is None:
            return self._not_found()
        answer = self._public(ticket)
        include = request.query.get("include", "")
        if "stats" in include.split(","):
            answer["stats"] = self._stats(ticket)
        return web.json_response(answer)

    def _stats(self, ticket: dict[str, Any]) -> dict[str, Any]:
        """``include=stats``: the requester's and the agents' last replies, from the
        conversations, and when the status last changed."""
        conversations = self.notes[ticket["id"]]
        requester = [c for c in conversations if c["incoming"] and not c["private"]]
        agents = [c for c in conversations if c["kind"] == "reply"]
        return {
            "requester_responded_at": requester[-1]["created_at"] if requester else None,
            "agent_responded_at": agents[-1]["created_at"] if agents else None,
            "first_responded_at": agents[0]["created_at"] if agents else None,
            "status_updated_at": self.stats[ticket["id"]].get("status_updated_at"),
            "pending_since": self.stats[ticket["id"]].get("pending_since"),
            "resolved_at": None,
            "closed_at": None,
            "reopened_at": self.stats[ticket["id"]].get("reopened_at"),
        }

    async def _conversations(self, request: web.Request, body: Json) -> web.Response:
        ticket_id = int(request.match_info["id"])
        if ticket_id not in self.tickets:
            return self._not_found()
        per_page = min(100, int(request.query.get("per_page", "30")))
        page = int(request.query.get("page", "1"))
        listed = self.notes[ticket_id][(page - 1) * per_page : page * per_page]
        return web.json_response([self._conversation_view(c) for c in listed])

    @staticmethod
    def _conversation_view(entry: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in entry.items() if k != "kind"}

    async def _update(self, request: web.Request, body: Json) -> web.Response:
        ticket = self.tickets.get(int(request.match_info["id"]))
        if ticket is None:
            return self._not_found()
        errors = self._check_fields(body, FD_UPDATE_FIELDS)
        if not errors:
            errors = self._check_ticket_values(body, creating=False)
        if errors:
            return self._invalid(errors)
        self._set_status(ticket, body.get("status"))
        ticket.update(body)
        ticket["updated_at"] = now_iso()
        return web.json_response(self._public(ticket))

    def _set_status(self, ticket: dict[str, Any], status: Any, at: float | None = None) -> None:
        if status is None or status == ticket["status"]:
            return
        stats = self.stats[ticket["id"]]
        stats["status_updated_at"] = iso_at(at)
        stats["pending_since"] = iso_at(at) if status == 3 else None
        if status == 2 and ticket["status"] in (3, 4, 5):
            stats["reopened_at"] = iso_at(at)
        ticket["status"] = status

    def _check_body(self, body: Json, allowed: frozenset[str]) -> list[dict[str, str]]:
        errors = self._check_fields(body, allowed)
        if errors:
            return errors
        if "body" not in body:
            return [fd_error("body", "It should be a/an String", "missing_field")]
        if not isinstance(body["body"], str) or not body["body"].strip():
            return [fd_error("body", "It should be a/an String", "datatype_mismatch")]
        if "private" in body and not isinstance(body["private"], bool):
            return [fd_error("private", "It should be a/an Boolean", "datatype_mismatch")]
        return []

    def _conversation(
        self,
        ticket_id: int,
        kind: str,
        body: dict[str, Any],
        user_id: int = AGENT_ID,
        at: float | None = None,
    ) -> dict[str, Any]:
        entry = {
            "id": next(self._note_ids),
            "ticket_id": ticket_id,
            "kind": kind,
            "body": body["body"],
            "body_text": re.sub(r"<[^>]+>", " ", body["body"]).strip(),
            "private": bool(body.get("private", True)) if kind == "note" else False,
            "incoming": bool(body.get("incoming", False)),
            # 0 reply, 2 note (Freshdesk's conversation sources)
            "source": 2 if kind == "note" else 0,
            "user_id": user_id,
            "created_at": iso_at(at),
        }
        self.notes[ticket_id].append(entry)
        self.tickets[ticket_id]["updated_at"] = entry["created_at"]
        return entry

    async def _note(self, request: web.Request, body: Json) -> web.Response:
        ticket_id = int(request.match_info["id"])
        if ticket_id not in self.tickets:
            return self._not_found()
        errors = self._check_body(body, FD_NOTE_FIELDS)
        if errors:
            return self._invalid(errors)
        return web.json_response(self._conversation(ticket_id, "note", body), status=201)

    async def _reply(self, request: web.Request, body: Json) -> web.Response:
        ticket_id = int(request.match_info["id"])
        if ticket_id not in self.tickets:
            return self._not_found()
        errors = self._check_body(body, FD_REPLY_FIELDS)
        if errors:
            return self._invalid(errors)
        return web.json_response(self._conversation(ticket_id, "reply", body), status=201)

    # --- state ---------------------------------------------------------------------------

    def agent_update(self, ticket_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        ticket = self.tickets[int(ticket_id)]
        self._set_status(ticket, changes.get("status"))
        ticket.update(changes)
        ticket["updated_at"] = now_iso()
        return self._public(ticket)

    def customer_reply(self, ticket_id: str, body: str, at: float | None = None) -> None:
        """An e-mail from the requester: an incoming conversation by them; a pending or
        resolved ticket goes back to Open (``reopen_on_reply``)."""
        ticket = self.tickets[int(ticket_id)]
        self._conversation(
            ticket["id"],
            "customer_reply",
            {"body": body, "incoming": True},
            user_id=ticket["requester_id"],
            at=at,
        )
        if self.reopen_on_reply and ticket["status"] in (3, 4):
            self._set_status(ticket, 2, at)

    def state(self) -> dict[str, Any]:
        return {
            "tickets": list(self.tickets.values()),
            "notes": {str(k): v for k, v in self.notes.items() if v},
            "contacts": {str(k): v for k, v in self.contacts.items()},
            "requests": self.requests,
        }

    def reset(self) -> None:
        super().reset()
        self.tickets.clear()
        self.notes.clear()
        self.contacts.clear()
        self.stats.clear()
        self._indexed_at.clear()
        self._ids = itertools.count(1)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A fake Freshdesk API v2 for tests.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--api-key", default="fake-api-key")
    parser.add_argument(
        "--search-lag", type=float, default=0.0, help="seconds before search sees a ticket"
    )
    args = parser.parse_args(argv)
    serve_forever(
        FreshdeskFake(args.api_key, search_lag=args.search_lag, host=args.host, port=args.port)
    )


if __name__ == "__main__":
    main()
