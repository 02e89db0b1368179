"""A fake PagerDuty Events API v2 that really listens; see ``tests.fakes.freshdesk`` for the
shared machinery (``start``/``stop``, ``fail_next``, the /_fake/ control plane).

In a test::

    async with PagerDutyFake(routing_key=KEY) as fake:    # or: url = await fake.start()
        fake.fail_next("enqueue", "429")                  # 429 without Retry-After, as PagerDuty
        ...
        assert fake.alerts["watchdesk-web-17"]["trigger_count"] == 2
        fake.acknowledge("watchdesk-web-17")              # a person acknowledges in PagerDuty

Standalone, for a test that runs the agent in another process::

    python -m tests.fakes.pagerduty --port 8502 --routing-key KEY   # prints "ready"
    curl localhost:8502/_fake/state                                 # alerts, events, requests
    curl -XPOST localhost:8502/_fake/fail -d '{"route": "enqueue", "kind": "503", "count": 2}'
    curl -XPOST localhost:8502/_fake/tickets/watchdesk-web-17 -d '{"status": "acknowledged"}'
    curl -XPOST localhost:8502/_fake/reset

One route, ``enqueue`` (POST /v2/enqueue). Failure kinds as in ``tests.fakes.freshdesk``:
``"503"``/``"500"``/``"429"`` (PagerDuty sends no Retry-After unless one is scripted),
``"timeout"`` (the event is processed, the answer comes too late), ``"timeout_before"``,
``"drop"`` (processed, connection closed), ``"drop_before"``.

What it checks, as PagerDuty does
(https://developer.pagerduty.com/docs/events-api-v2/trigger-events/): a JSON object; a
``routing_key`` of 32 characters that is the configured one; ``event_action`` trigger /
acknowledge / resolve; ``dedup_key`` at most 255 characters; for a trigger, ``payload`` with
``summary`` (1..1024 characters), ``source`` and ``severity`` (critical, error, warning, info),
``custom_details`` an object, ``links`` objects with an ``href``. Invalid events get 400
``{"status": "invalid event", "message": "Event object is invalid", "errors": [...]}``; accepted
ones 202 ``{"status": "success", "message": "Event processed", "dedup_key"}``.

De-duplication as PagerDuty does it: a trigger whose ``dedup_key`` names an open (triggered or
acknowledged) alert adds to that alert (``trigger_count``) instead of opening another; once the
alert is resolved, the next trigger opens a new one (the old one moves to ``resolved_alerts``);
acknowledge and resolve events for no open alert are accepted and dropped.
"""

from __future__ import annotations

import argparse
import uuid
from collections.abc import Sequence
from typing import Any

from aiohttp import web

from tests.fakes.freshdesk import FakeService, Json, now_iso, phrase, serve_forever

PD_ACTIONS = ("trigger", "acknowledge", "resolve")
PD_SEVERITIES = ("critical", "error", "warning", "info")
PD_KEY_LENGTH = 32


def invalid(errors: list[str]) -> web.Response:
    return web.json_response(
        {"status": "invalid event", "message": "Event object is invalid", "errors": errors},
        status=400,
    )


class PagerDutyFake(FakeService):
    service = "pagerduty"
    ROUTES = frozenset({"enqueue"})

    def __init__(
        self,
        routing_key: str = "0123456789abcdef0123456789abcdef",
        *,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(host=host, port=port)
        self.routing_key = routing_key
        self.alerts: dict[str, dict[str, Any]] = {}  # by dedup_key: the open or latest alert
        self.resolved_alerts: list[dict[str, Any]] = []  # superseded by a later trigger
        self.events: list[dict[str, Any]] = []  # accepted events, in order (no routing key)

    @property
    def enqueue_url(self) -> str:
        return f"{self.url}/v2/enqueue"

    # --- the wire ------------------------------------------------------------------------

    def add_routes(self, app: web.Application) -> None:
        self.route(app, "POST", "/v2/enqueue", "enqueue", self._enqueue)

    def authorized(self, request: web.Request) -> bool:
        return True  # the routing key is in the body: checked with the event

    def unauthorized(self) -> web.Response:  # pragma: no cover - never used
        return invalid(["Invalid routing key"])

    def error_response(self, status: int) -> web.Response:
        if status == 429:
            return web.json_response(
                {
                    "status": "throttle event",
                    "message": "Requests for this service are arriving too quickly. "
                    "Please retry later.",
                },
                status=429,
            )
        return web.Response(status=status, text=phrase(status))

    def bad_json(self) -> web.Response:
        return web.json_response(
            {"status": "invalid request", "message": "Event object is invalid", "errors": []},
            status=400,
        )

    def _check(self, event: Json) -> list[str]:
        if not isinstance(event, dict):
            return ["Event object must be a JSON object"]
        errors: list[str] = []
        key = event.get("routing_key")
        if not isinstance(key, str) or not key:
            errors.append("'routing_key' is missing or blank")
        elif len(key) != PD_KEY_LENGTH:
            errors.append("Length of 'routing_key' is incorrect (should be 32 characters)")
        elif key != self.routing_key:
            errors.append("Invalid routing key")
        action = event.get("event_action")
        if action not in PD_ACTIONS:
            errors.append(
                "'event_action' is invalid (must be one of: trigger, acknowledge, resolve)"
            )
        dedup_key = event.get("dedup_key")
        if dedup_key is not None and (not isinstance(dedup_key, str) or len(dedup_key) > 255):
            errors.append("'dedup_key' is invalid (must be a string of at most 255 characters)")
        if action in ("acknowledge", "resolve") and not dedup_key:
            errors.append("'dedup_key' is missing or blank")
        if action == "trigger":
            errors += self._check_payload(event.get("payload"))
            links = event.get("links", [])
            if not isinstance(links, list) or not all(
                isinstance(link, dict) and isinstance(link.get("href"), str) for link in links
            ):
                errors.append("'links' is invalid (each link needs an 'href')")
        return errors

    @staticmethod
    def _check_payload(payload: Json) -> list[str]:
        if not isinstance(payload, dict):
            return ["'payload' is missing or not an object"]
        errors: list[str] = []
        summary = payload.get("summary")
        if not isinstance(summary, str) or not summary.strip():
            errors.append("'payload.summary' is missing or blank")
        elif len(summary) > 1024:
            errors.append("'payload.summary' is too long (at most 1024 characters)")
        if not isinstance(payload.get("source"), str) or not payload["source"].strip():
            errors.append("'payload.source' is missing or blank")
        if payload.get("severity") not in PD_SEVERITIES:
            errors.append(
                "'payload.severity' is invalid (must be one of: critical, error, warning, info)"
            )
        if "custom_details" in payload and not isinstance(payload["custom_details"], dict):
            errors.append("'payload.custom_details' must be an object")
        return errors

    async def _enqueue(self, request: web.Request, event: Json) -> web.Response:
        errors = self._check(event)
        if errors:
            return invalid(errors)
        action = event["event_action"]
        dedup_key = event.get("dedup_key") or uuid.uuid4().hex
        stamp = now_iso()
        self.events.append(
            {k: v for k, v in event.items() if k != "routing_key"} | {"received_at": stamp}
        )
        alert = self.alerts.get(dedup_key)
        is_open = alert is not None and alert["status"] != "resolved"
        if action == "trigger":
            if alert is not None and is_open:
                alert["trigger_count"] += 1
                alert["updated_at"] = stamp
            else:
                if alert is not None:
                    self.resolved_alerts.append(alert)
                payload = event["payload"]
                self.alerts[dedup_key] = {
                    "dedup_key": dedup_key,
                    "status": "triggered",
                    "summary": payload["summary"],
                    "source": payload["source"],
                    "severity": payload["severity"],
                    "component": payload.get("component"),
                    "custom_details": payload.get("custom_details"),
                    "links": list(event.get("links", [])),
                    "trigger_count": 1,
                    "created_at": stamp,
                    "updated_at": stamp,
                }
        elif alert is not None and is_open:  # acknowledge / resolve an open alert
            alert["status"] = "acknowledged" if action == "acknowledge" else "resolved"
            alert["updated_at"] = stamp
        # else: PagerDuty accepts and drops events for no open alert.
        return web.json_response(
            {"status": "success", "message": "Event processed", "dedup_key": dedup_key},
            status=202,
        )

    # --- what people do, and the state ---------------------------------------------------

    def acknowledge(self, dedup_key: str) -> dict[str, Any]:
        """A person acknowledges the alert in PagerDuty."""
        return self.agent_update(dedup_key, {"status": "acknowledged"})

    def agent_update(self, ticket_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        alert = self.alerts[ticket_id]
        alert.update(changes)
        alert["updated_at"] = now_iso()
        return alert

    def state(self) -> dict[str, Any]:
        return {
            "alerts": self.alerts,
            "resolved_alerts": self.resolved_alerts,
            "events": self.events,
            "requests": self.requests,
        }

    def reset(self) -> None:
        super().reset()
        self.alerts.clear()
        self.resolved_alerts.clear()
        self.events.clear()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A fake PagerDuty Events API v2 for tests.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--routing-key", default="0123456789abcdef0123456789abcdef")
    args = parser.parse_args(argv)
    serve_forever(PagerDutyFake(args.routing_key, host=args.host, port=args.port))


if __name__ == "__main__":
    main()
