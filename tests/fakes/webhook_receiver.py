"""A receiver of watchdesk's webhook ticket events (``ticketing.backends.webhook``) that really
listens; see ``tests.fakes.freshdesk`` for the shared machinery (``start``/``stop``,
``fail_next``, the /_fake/ control plane). One route, ``hook`` (POST ``path``, default /hook).

It checks what a careful receiver would: with a ``secret``, ``X-Watchdesk-Signature`` must be
``sha256=<hex HMAC-SHA256 of the raw body>`` (401 ``{"error": "bad signature"}`` otherwise);
the body is JSON with a known ``event``. Every event is kept in ``events`` (the parsed body, the
raw bytes, the headers). Tickets are kept by dedup key in ``tickets``:

- ``create``: stores the ticket (a repeated dedup key returns the first one) and answers
  ``{"id": "WH-<n>", "url": ...}``, or, with ``assign_ids=False``, 204 with no body (the backend
  then uses the dedup key as the id);
- ``note`` / ``status``: update the ticket named by ``ticket.id``;
- ``find``: ``{"id", "url"}`` of the dedup key's ticket, or 404;
- ``get``: ``{"status", "assignee"}`` of the ticket, or 404.

With ``supports_queries=False`` find and get answer 404, as a receiver that keeps no tickets.

Standalone: ``python -m tests.fakes.webhook_receiver --port N [--secret S]``.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import itertools
from collections.abc import Sequence
from typing import Any

from aiohttp import web

from tests.fakes.freshdesk import FakeService, Json, serve_forever

EVENTS = frozenset({"create", "note", "status", "find", "get"})


class WebhookReceiver(FakeService):
    service = "webhook"
    ROUTES = frozenset({"hook"})

    def __init__(
        self,
        secret: str | None = None,
        *,
        path: str = "/hook",
        assign_ids: bool = True,
        supports_queries: bool = True,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(host=host, port=port)
        self.secret = secret
        self.path = path
        self.assign_ids = assign_ids
        self.supports_queries = supports_queries
        self.events: list[dict[str, Any]] = []
        self.tickets: dict[str, dict[str, Any]] = {}  # by dedup key
        self._ids = itertools.count(1)

    @property
    def hook_url(self) -> str:
        return f"{self.url}{self.path}"

    # --- the wire ------------------------------------------------------------------------

    def add_routes(self, app: web.Application) -> None:
        self.route(app, "POST", self.path, "hook", self._hook)

    def authorized(self, request: web.Request) -> bool:
        return True  # the signature covers the body: checked in the handler, which has it

    def unauthorized(self) -> web.Response:
        return web.json_response({"error": "bad signature"}, status=401)

    def bad_json(self) -> web.Response:
        return web.json_response({"error": "body is not JSON"}, status=400)

    def signature_ok(self, raw: bytes, header: str | None) -> bool:
        if self.secret is None:
            return True
        expected = "sha256=" + hmac.new(self.secret.encode(), raw, hashlib.sha256).hexdigest()
        return header is not None and hmac.compare_digest(header, expected)

    # --- handler -------------------------------------------------------------------------

    def _by_id(self, ticket: Any) -> dict[str, Any] | None:
        ticket_id = ticket.get("id") if isinstance(ticket, dict) else None
        return next((t for t in self.tickets.values() if t["id"] == ticket_id), None)

    async def _hook(self, request: web.Request, body: Json) -> web.Response:
        raw = await request.read()  # cached by aiohttp: the very bytes that were sent
        if not self.signature_ok(raw, request.headers.get("X-Watchdesk-Signature")):
            return self.unauthorized()
        event = body.get("event") if isinstance(body, dict) else None
        if event not in EVENTS:
            return web.json_response({"error": f"unknown event {event!r}"}, status=400)
        assert isinstance(body, dict)
        self.events.append(
            {"event": event, "json": body, "raw": raw, "headers": dict(request.headers)}
        )
        if event == "create":
            return self._create(body)
        if event in ("find", "get") and not self.supports_queries:
            return web.json_response({"error": "not supported"}, status=404)
        if event == "find":
            found = self.tickets.get(str(body.get("dedup_key")))
            if found is None:
                return web.json_response({"error": "no such ticket"}, status=404)
            return web.json_response({"id": found["id"], "url": found["url"]})
        ticket = self._by_id(body.get("ticket"))
        if event == "get":
            if ticket is None:
                return web.json_response({"error": "no such ticket"}, status=404)
            return web.json_response({"status": ticket["status"], "assignee": ticket["assignee"]})
        if ticket is not None and event == "note":
            ticket["notes"].append(body["note"])
        elif ticket is not None and event == "status":
            ticket["status"] = body["status"]
        return web.json_response({"ok": True})

    def _create(self, body: dict[str, Any]) -> web.Response:
        key = str(body.get("dedup_key"))
        if key not in self.tickets:
            number = next(self._ids)
            ticket_id = f"WH-{number}" if self.assign_ids else key
            self.tickets[key] = {
                "id": ticket_id,
                "url": f"{self.url}/tickets/{number}" if self.assign_ids else None,
                "status": "open",
                "assignee": None,
                "notes": [],
                "ticket": body.get("ticket"),
            }
        if not self.assign_ids:
            return web.Response(status=204)
        ticket = self.tickets[key]
        return web.json_response({"id": ticket["id"], "url": ticket["url"]}, status=201)

    # --- state ---------------------------------------------------------------------------

    def agent_update(self, ticket_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        ticket = self._by_id({"id": ticket_id})
        if ticket is None:
            raise KeyError(ticket_id)
        ticket.update(changes)
        return ticket

    def state(self) -> dict[str, Any]:
        return {
            "events": [{k: v for k, v in e.items() if k != "raw"} for e in self.events],
            "tickets": self.tickets,
            "requests": self.requests,
        }

    def reset(self) -> None:
        super().reset()
        self.events.clear()
        self.tickets.clear()
        self._ids = itertools.count(1)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A receiver of watchdesk webhook events.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--secret", default=None)
    args = parser.parse_args(argv)
    serve_forever(WebhookReceiver(args.secret, host=args.host, port=args.port))


if __name__ == "__main__":
    main()
