"""A fake Opsgenie Alert API v2 that really listens; see ``tests.fakes.freshdesk`` for the
shared machinery (``start``/``stop``, ``fail_next``, the /_fake/ control plane).

In a test::

    async with OpsgenieFake(api_key=KEY) as fake:          # or: url = await fake.start()
        fake.fail_next("create", "503")
        ...
        assert fake.alerts["watchdesk-web-17"]["count"] == 1
        fake.acknowledge("watchdesk-web-17")               # a person acknowledges it

Standalone, for a test that runs the agent in another process::

    python -m tests.fakes.opsgenie --port 8503 --api-key KEY   # prints "ready"
    curl localhost:8503/_fake/state                            # alerts, closed, requests
    curl -XPOST localhost:8503/_fake/fail -d '{"route": "create", "kind": "429"}'
    curl -XPOST localhost:8503/_fake/alerts/watchdesk-web-17/acknowledge
    curl -XPOST localhost:8503/_fake/reset

Routes: ``create`` (POST /v2/alerts), ``get`` (GET /v2/alerts/{identifier}), ``close`` /
``acknowledge`` (POST /v2/alerts/{identifier}/close, .../acknowledge), ``request`` (GET
/v2/alerts/requests/{requestId}). ``identifierType`` is ``id`` (default), ``tiny`` or ``alias``.
Failure kinds as in ``tests.fakes.freshdesk``; a 429 carries no Retry-After unless scripted.

What it checks, as Opsgenie does (https://docs.opsgenie.com/docs/alert-api,
https://docs.opsgenie.com/docs/response): ``Authorization: GenieKey <key>`` (401 ``{"message":
"Could not authenticate"}``); ``message`` 1..130 characters, ``alias`` <= 512, ``description``
<= 15000, ``priority`` P1..P5, at most 20 ``tags`` of <= 50 characters, ``details`` string to
string, ``entity`` <= 512, ``source`` <= 100, ``responders`` with a type of team / user /
escalation / schedule and an id, name or username (422 ``{"message": "Request body is not
processable. Please check the errors.", "errors": {field: reason}}``). Creates, closes and
acknowledges answer 202 ``{"result": "Request will be processed", "took", "requestId"}`` and,
as there, an action on an alert that does not exist is still accepted (its request status says
"Alert does not exist"). De-duplication: a create whose alias names an open alert only raises
that alert's ``count``; after the alert is closed, the same alias opens a new one (the old one
moves to ``closed``).
"""

from __future__ import annotations

import argparse
import itertools
import uuid
from collections.abc import Sequence
from typing import Any

from aiohttp import web

from tests.fakes.freshdesk import FakeService, Json, now_iso, phrase, serve_forever

OG_PRIORITIES = ("P1", "P2", "P3", "P4", "P5")
OG_RESPONDER_TYPES = ("team", "user", "escalation", "schedule")
OG_IDENTIFIER_TYPES = ("id", "tiny", "alias")


def og_body(**fields: Any) -> dict[str, Any]:
    return {**fields, "took": 0.002, "requestId": str(uuid.uuid4())}


class OpsgenieFake(FakeService):
    service = "opsgenie"
    ROUTES = frozenset({"create", "get", "close", "acknowledge", "request"})

    def __init__(
        self,
        api_key: str = "fake-genie-key",
        *,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(host=host, port=port)
        self.api_key = api_key
        self.alerts: dict[str, dict[str, Any]] = {}  # by alias: the open or latest alert
        self.closed: list[dict[str, Any]] = []  # closed alerts superseded by a new one
        self.request_status: dict[str, dict[str, Any]] = {}
        self._tiny_ids = itertools.count(1)

    # --- the wire ------------------------------------------------------------------------

    def add_routes(self, app: web.Application) -> None:
        self.route(app, "POST", "/v2/alerts", "create", self._create)
        self.route(app, "GET", "/v2/alerts/requests/{request_id}", "request", self._request)
        self.route(app, "GET", "/v2/alerts/{identifier}", "get", self._get)
        self.route(app, "POST", "/v2/alerts/{identifier}/close", "close", self._close)
        self.route(
            app, "POST", "/v2/alerts/{identifier}/acknowledge", "acknowledge", self._acknowledge
        )

    def build_app(self) -> web.Application:
        app = super().build_app()
        app.router.add_post("/_fake/alerts/{alias}/acknowledge", self._control_acknowledge)
        return app

    def authorized(self, request: web.Request) -> bool:
        scheme, _, key = request.headers.get("Authorization", "").partition(" ")
        return scheme == "GenieKey" and key.strip() == self.api_key

    def unauthorized(self) -> web.Response:
        return web.json_response(og_body(message="Could not authenticate"), status=401)

    def error_response(self, status: int) -> web.Response:
        if status == 429:
            return web.json_response(
                og_body(message="You are making too many requests! Please slow down."),
                status=429,
            )
        return web.json_response(og_body(message=phrase(status)), status=status)

    def bad_json(self) -> web.Response:
        return web.json_response(og_body(message="Could not parse the request body."), status=400)

    @staticmethod
    def _unprocessable(errors: dict[str, str]) -> web.Response:
        return web.json_response(
            og_body(
                message="Request body is not processable. Please check the errors.",
                errors=errors,
            ),
            status=422,
        )

    def _accepted(self, action: str, alert: dict[str, Any] | None, status: str) -> web.Response:
        body = og_body(result="Request will be processed")
        self.request_status[body["requestId"]] = {
            "success": alert is not None,
            "action": action,
            "processedAt": now_iso(),
            "isSuccess": alert is not None,
            "status": status if alert is not None else "Alert does not exist",
            "alertId": alert["id"] if alert is not None else "",
            "alias": alert["alias"] if alert is not None else "",
        }
        return web.json_response(body, status=202)

    def _check(self, body: Json) -> dict[str, str]:
        if not isinstance(body, dict):
            return {"body": "Request body must be a JSON object."}
        errors: dict[str, str] = {}
        message = body.get("message")
        if not isinstance(message, str) or not message.strip():
            errors["message"] = "Message can not be empty."
        elif len(message) > 130:
            errors["message"] = "Message can not be longer than 130 characters."
        for field, limit in (("alias", 512), ("description", 15000), ("entity", 512)):
            value = body.get(field)
            if value is not None and (not isinstance(value, str) or len(value) > limit):
                errors[field] = f"{field} can not be longer than {limit} characters."
        source = body.get("source")
        if source is not None and (not isinstance(source, str) or len(source) > 100):
            errors["source"] = "source can not be longer than 100 characters."
        if "priority" in body and body["priority"] not in OG_PRIORITIES:
            errors["priority"] = "Priority should be one of [P1, P2, P3, P4, P5]."
        tags = body.get("tags", [])
        if not isinstance(tags, list) or len(tags) > 20:
            errors["tags"] = "Tags can not be more than 20."
        elif any(not isinstance(t, str) or len(t) > 50 for t in tags):
            errors["tags"] = "Tags can not be longer than 50 characters."
        details = body.get("details", {})
        if not isinstance(details, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in details.items()
        ):
            errors["details"] = "Details should be a map of string to string."
        responders = body.get("responders", [])
        if not isinstance(responders, list):
            errors["responders"] = "Responders should be a list."
        else:
            for responder in responders:
                kind = responder.get("type") if isinstance(responder, dict) else None
                if kind not in OG_RESPONDER_TYPES:
                    errors["responders#type"] = f"Invalid recipient type '{kind}'"
                elif not any(responder.get(k) for k in ("id", "name", "username")):
                    errors["responders"] = "Responder should have an id, name or username."
        return errors

    def _find(self, request: web.Request) -> dict[str, Any] | None:
        identifier = request.match_info["identifier"]
        kind = request.query.get("identifierType", "id")
        if kind == "alias":
            return self.alerts.get(identifier)
        field = "tinyId" if kind == "tiny" else "id"
        for alert in self.alerts.values():
            if alert[field] == identifier:
                return alert
        return None

    async def _create(self, request: web.Request, body: Json) -> web.Response:
        errors = self._check(body)
        if errors:
            return self._unprocessable(errors)
        stamp = now_iso()
        alert_id = str(uuid.uuid4())
        alias = body.get("alias") or alert_id
        current = self.alerts.get(alias)
        if current is not None and current["status"] == "open":
            current["count"] += 1
            current["lastOccurredAt"] = stamp
            current["updatedAt"] = stamp
            return self._accepted("Create", current, "Alert is deduplicated")
        if current is not None:
            self.closed.append(current)
        alert = {
            "id": alert_id,
            "tinyId": str(next(self._tiny_ids)),
            "alias": alias,
            "message": body["message"],
            "description": body.get("description", ""),
            "status": "open",
            "acknowledged": False,
            "isSeen": False,
            "snoozed": False,
            "count": 1,
            "priority": body.get("priority", "P3"),
            "source": body.get("source", request.remote or ""),
            "entity": body.get("entity", ""),
            "tags": list(body.get("tags", [])),
            "details": dict(body.get("details", {})),
            "responders": list(body.get("responders", [])),
            "owner": "",
            "notes": [],
            "report": {},
            "createdAt": stamp,
            "updatedAt": stamp,
            "lastOccurredAt": stamp,
        }
        self.alerts[alias] = alert
        return self._accepted("Create", alert, "Created alert")

    async def _get(self, request: web.Request, body: Json) -> web.Response:
        if request.query.get("identifierType", "id") not in OG_IDENTIFIER_TYPES:
            return self._unprocessable({"identifierType": "Invalid identifier type."})
        alert = self._find(request)
        if alert is None:
            return web.json_response(og_body(message="Alert does not exist"), status=404)
        public = {k: v for k, v in alert.items() if k != "notes"}  # notes: their own endpoint
        return web.json_response(og_body(data=public))

    async def _close(self, request: web.Request, body: Json) -> web.Response:
        alert = self._find(request)
        if alert is not None and alert["status"] == "open":
            alert["status"] = "closed"
            alert["updatedAt"] = now_iso()
            if isinstance(body, dict) and body.get("note"):
                alert["notes"].append(body["note"])
            alert["report"]["closedBy"] = (body or {}).get("user") or "API"
        return self._accepted("Close", alert, "Closed alert")

    async def _acknowledge(self, request: web.Request, body: Json) -> web.Response:
        alert = self._find(request)
        if alert is not None:
            self._ack(alert, (body or {}).get("user") or "API")
        return self._accepted("Acknowledge", alert, "Acknowledged alert")

    async def _request(self, request: web.Request, body: Json) -> web.Response:
        status = self.request_status.get(request.match_info["request_id"])
        if status is None:
            return web.json_response(og_body(message="Request does not exist"), status=404)
        return web.json_response(og_body(data=status))

    async def _control_acknowledge(self, request: web.Request) -> web.Response:
        try:
            return web.json_response(self.acknowledge(request.match_info["alias"]))
        except KeyError:
            return web.json_response({"error": "no such alert"}, status=404)

    # --- what people do, and the state ---------------------------------------------------

    @staticmethod
    def _ack(alert: dict[str, Any], user: str) -> None:
        alert["acknowledged"] = True
        alert["isSeen"] = True
        alert["owner"] = user
        alert["report"]["acknowledgedBy"] = user
        alert["updatedAt"] = now_iso()

    def acknowledge(self, alias: str, user: str = "oncall@example.com") -> dict[str, Any]:
        """A person acknowledges the alert in Opsgenie."""
        alert = self.alerts[alias]
        self._ack(alert, user)
        return alert

    def agent_update(self, ticket_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        alert = self.alerts[ticket_id]
        alert.update(changes)
        alert["updatedAt"] = now_iso()
        return alert

    def state(self) -> dict[str, Any]:
        return {"alerts": self.alerts, "closed": self.closed, "requests": self.requests}

    def reset(self) -> None:
        super().reset()
        self.alerts.clear()
        self.closed.clear()
        self.request_status.clear()
        self._tiny_ids = itertools.count(1)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A fake Opsgenie Alert API v2 for tests.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--api-key", default="fake-genie-key")
    args = parser.parse_args(argv)
    serve_forever(OpsgenieFake(args.api_key, host=args.host, port=args.port))


if __name__ == "__main__":
    main()
