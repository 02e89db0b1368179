"""The operator's endpoints: acknowledge an incident, mute and unmute a target.

``POST /api/incidents/{id}/ack`` (``?by=NAME`` or JSON ``{"by": NAME}``),
``POST /api/incidents/{id}/resolve?by=NAME&note=TEXT``,
``POST /api/targets/{name}/mute?for=2h&reason=TEXT&by=NAME``,
``DELETE /api/targets/{name}/mute?by=NAME``, ``GET /api/mutes``.

Like every /api/ endpoint they need the bearer token when one is set; without a token they
answer only on a loopback address (anyone who reaches the port could otherwise silence pages).
"""

from __future__ import annotations

import ipaddress
from typing import Any

from aiohttp import web

from monitor.durations import parse_duration
from monitor.policy.desk import DeskError
from monitor.web.views import AgentView

MAX_MUTE = 7 * 86400.0


def add_routes(app: web.Application, agent_key: web.AppKey[AgentView]) -> None:
    async def ack(request: web.Request) -> web.Response:
        agent = _allowed(request, agent_key)
        by = await _by(request)
        try:
            incident = await agent.desk.acknowledge(int(request.match_info["id"]), by)
        except (DeskError, ValueError) as error:
            raise web.HTTPNotFound(text=str(error)) from None
        return web.json_response(incident.as_json())

    async def resolve(request: web.Request) -> web.Response:
        agent = _allowed(request, agent_key)
        by = await _by(request)
        note = request.query.get("note", "").strip()[:1000]
        try:
            incident = await agent.desk.resolve(
                int(request.match_info["id"]), by, note, agent.config, agent.incidents
            )
        except (DeskError, ValueError) as error:
            raise web.HTTPNotFound(text=str(error)) from None
        return web.json_response(incident.as_json())

    async def mute(request: web.Request) -> web.Response:
        agent = _allowed(request, agent_key)
        target = _target(agent, request)
        try:
            seconds = parse_duration(request.query.get("for", ""))
        except ValueError as error:
            raise web.HTTPBadRequest(text=f"for: {error}") from None
        if not 0 < seconds <= MAX_MUTE:
            raise web.HTTPBadRequest(text="for: a mute lasts more than 0s and at most 7d")
        reason = request.query.get("reason", "").strip()
        if not reason:
            raise web.HTTPBadRequest(text="reason: say why (it goes on the ticket)")
        until = await agent.desk.mute(target, seconds, reason, await _by(request))
        return web.json_response({"target": target, "until": until, "reason": reason})

    async def unmute(request: web.Request) -> web.Response:
        agent = _allowed(request, agent_key)
        target = _target(agent, request)
        was = await agent.desk.unmute(target, await _by(request))
        return web.json_response({"target": target, "was_muted": was})

    async def mutes(request: web.Request) -> web.Response:
        return web.json_response(request.app[agent_key].desk.mutes())

    app.router.add_post("/api/incidents/{id}/ack", ack)
    app.router.add_post("/api/incidents/{id}/resolve", resolve)
    app.router.add_post("/api/targets/{name}/mute", mute)
    app.router.add_delete("/api/targets/{name}/mute", unmute)
    app.router.add_get("/api/mutes", mutes)


def _allowed(request: web.Request, agent_key: web.AppKey[AgentView]) -> AgentView:
    """The agent, if this request may change anything (the token middleware ran already)."""
    agent = request.app[agent_key]
    if agent.api_token is None and not _loopback(agent.listen_host):
        raise web.HTTPForbidden(
            text="set agent.api_token_env (or _file) to ack or mute on a non-loopback address"
        )
    return agent


def _loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _target(agent: AgentView, request: web.Request) -> str:
    name = request.match_info["name"]
    if name not in agent.targets:
        raise web.HTTPNotFound(text=f"no target {name}")
    return name


async def _by(request: web.Request) -> str:
    by: Any = request.query.get("by")
    if by is None and request.can_read_body:
        try:
            body = await request.json()
        except ValueError:
            body = {}
        by = body.get("by") if isinstance(body, dict) else None
    text = str(by or "someone").strip()[:100]
    return text or "someone"
