"""The agent's HTTP endpoints: /metrics, /healthz, /readyz, /api/status, /api/incidents, and
in a cluster /api/cluster (this agent's slots and leases).

When ``agent.api_token_env``/``_file`` is set, /api/* needs ``Authorization: Bearer <token>``;
/metrics, /healthz and /readyz stay open for Prometheus and orchestrators.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from monitor.delivery.outbox import CHANNEL_REMOVED
from monitor.policy.explain import explain
from monitor.web import desk, webhooks
from monitor.web.views import AgentView, incident_rows

AGENT_KEY: web.AppKey[AgentView] = web.AppKey("agent")


def make_app(agent: AgentView) -> web.Application:
    app = web.Application(middlewares=[_api_auth])
    app[AGENT_KEY] = agent
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/api/status", api_status)
    app.router.add_get("/api/incidents", api_incidents)
    app.router.add_get("/api/targets/{name}", api_target)
    app.router.add_get("/api/cluster", api_cluster)
    desk.add_routes(app, AGENT_KEY)
    webhooks.add_routes(app, AGENT_KEY)
    return app


@web.middleware
async def _api_auth(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    # Pager webhooks carry a signature of their own instead of our token.
    if request.path.startswith("/api/") and not request.path.startswith("/api/webhooks/"):
        token = request.app[AGENT_KEY].api_token
        if token is not None:
            offered = request.headers.get("Authorization", "")
            expected = f"Bearer {token}"
            if not hmac.compare_digest(offered.encode(), expected.encode()):
                return web.json_response(
                    {"error": "unauthorized: send Authorization: Bearer <token>"},
                    status=401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
    return await handler(request)


async def metrics(request: web.Request) -> web.Response:
    loop = asyncio.get_running_loop()
    metrics = request.app[AGENT_KEY].metrics
    # The per-target lines are joined here, on the loop where they change (milliseconds);
    # the registry's few series are rendered in a worker thread.
    body = await loop.run_in_executor(None, metrics.exposition, metrics.targets.text())
    response = web.Response(body=body)
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response


async def healthz(request: web.Request) -> web.Response:
    agent = request.app[AGENT_KEY]
    stalled = agent.seconds_since_beat()
    if agent.healthy():
        return web.json_response(
            {"status": "ok", "seconds_since_scheduler_beat": round(stalled, 3)}
        )
    return web.json_response(
        {"status": "stalled", "seconds_since_scheduler_beat": round(stalled, 3)}, status=503
    )


async def readyz(request: web.Request) -> web.Response:
    agent = request.app[AGENT_KEY]
    fenced = agent.ownership.problems()
    if fenced:  # in a cluster: fenced or cut off from the database; nothing more to ask it
        return web.json_response({"status": "not ready", "problems": fenced}, status=503)
    store = agent.store
    writable = await store.writable()
    if not writable:  # nothing more to read there (a lost database would answer in seconds)
        problems = [f"store {store.location} is not writable"]
        return web.json_response({"status": "not ready", "problems": problems}, status=503)
    problems = []
    impaired = request.app[AGENT_KEY].incidents.canaries.problem()
    if impaired is not None:
        problems.append(impaired)
    for action in await store.failed_actions():
        problems.append(
            f"{action.channel} {action.operation} of incident {action.incident_id} was refused: "
            f"{action.last_error}"
        )
    for action in await store.pending_with_error(CHANNEL_REMOVED):
        problems.append(
            f"{action.channel} {action.operation} of incident {action.incident_id} is kept: "
            f"{action.last_error}"
        )
    body = {"status": "ready" if not problems else "not ready", "problems": problems}
    return web.json_response(body, status=200 if not problems else 503)


async def api_status(request: web.Request) -> web.Response:
    return web.json_response(request.app[AGENT_KEY].status_view())


async def api_target(request: web.Request) -> web.Response:
    """Why the target has, or has no, incident right now (``watchdesk explain``)."""
    agent = request.app[AGENT_KEY]
    target = agent.targets.get(request.match_info["name"])
    if target is None:
        raise web.HTTPNotFound(text=f"no target {request.match_info['name']}")
    now = agent.incidents.clock.now()
    answer = explain(agent.incidents, target, agent.desk.mutes(), now)
    answer["vantages"] = await agent.incidents.confirmation.verdicts(target, now)
    return web.json_response(answer)


async def api_cluster(request: web.Request) -> web.Response:
    """This agent in its cluster: its slots (slot -> epoch), share, coordinator lease."""
    view = request.app[AGENT_KEY].ownership.view()
    if view is None:
        return web.json_response({"error": "this agent runs alone (no [cluster])"}, status=404)
    return web.json_response(view)


async def api_incidents(request: web.Request) -> web.Response:
    """Open incidents and recent resolved ones (``?open=1`` for open only)."""
    agent = request.app[AGENT_KEY]
    open_only = request.query.get("open") in ("1", "true")
    return web.json_response(await incident_rows(agent.store, include_resolved=not open_only))
