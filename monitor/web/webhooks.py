"""Acknowledgements pushed by pagers: ``POST /api/webhooks/pagerduty`` takes PagerDuty v3
webhooks (https://developer.pagerduty.com/docs/webhooks/ overview and signatures).

Such a request cannot carry our bearer token, so it is authenticated by its
``X-PagerDuty-Signature`` instead: ``v1=`` HMAC-SHA256 of the raw body with the subscription's
signing secret (``webhook_secret_env``/``_file`` on a ``[pagers.NAME]`` of type pagerduty),
compared in constant time; several signatures may come during a secret rotation. An
``incident.acknowledged`` event whose ``incident_key`` is one of our open incidents' dedup keys
acknowledges that incident, in the name of the PagerDuty user who did it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from aiohttp import web

from monitor.policy.desk import DeskError
from monitor.web.views import AgentView

PATH = "/api/webhooks/pagerduty"


def add_routes(app: web.Application, agent_key: web.AppKey[AgentView]) -> None:
    async def pagerduty(request: web.Request) -> web.Response:
        agent = request.app[agent_key]
        secrets = agent.integrations.current.webhook_secrets
        if not secrets:
            raise web.HTTPNotFound(text="no pager here takes webhooks (webhook_secret_env)")
        body = await request.read()
        if not signed(body, request.headers.get("X-PagerDuty-Signature", ""), secrets):
            raise web.HTTPUnauthorized(text="bad or missing X-PagerDuty-Signature")
        try:
            event = json.loads(body)["event"]
        except (ValueError, KeyError, TypeError):
            raise web.HTTPBadRequest(text="not a PagerDuty v3 webhook") from None
        acknowledged = await _acknowledge(agent, event)
        return web.json_response({"acknowledged": acknowledged}, status=202)

    app.router.add_post(PATH, pagerduty)


def signed(body: bytes, header: str, secrets: tuple[str, ...]) -> bool:
    offered = [part.strip() for part in header.split(",") if part.strip().startswith("v1=")]
    for secret in secrets:
        expected = "v1=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        if any(hmac.compare_digest(expected, candidate) for candidate in offered):
            return True
    return False


async def _acknowledge(agent: AgentView, event: Any) -> int | None:
    if not isinstance(event, dict) or event.get("event_type") != "incident.acknowledged":
        return None
    data = event.get("data") or {}
    key = data.get("incident_key") if isinstance(data, dict) else None
    who = (event.get("agent") or {}).get("summary") or "someone"
    for incident in await agent.store.incidents(open_only=True):
        if incident.dedup_key == key:
            try:
                done = await agent.desk.acknowledge(incident.id, f"{who} in PagerDuty")
            except DeskError:
                return None
            return done.id
    return None
