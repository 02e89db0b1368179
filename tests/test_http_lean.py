"""The lean HTTP/1.1 path of the http probe, on asyncio's loop and on uvloop (what the agent
runs on when it is installed): chunked and sized bodies, keywords, refusals, garbage."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import web

from checks import HttpClients, ProbeContext, ProbeResult
from checks.http import HttpSettings, probe
from checks.http_request import first_request
from tests.fakes_probes import chunked
from tests.helpers import closed_port


def loops() -> list[Any]:
    factories: list[Any] = [pytest.param(None, id="asyncio")]
    try:
        import uvloop
    except ImportError:
        factories.append(
            pytest.param(None, id="uvloop", marks=pytest.mark.skip("uvloop not installed"))
        )
    else:
        factories.append(pytest.param(uvloop.new_event_loop, id="uvloop"))
    return factories


async def _serve_and_probe(cases: list[dict[str, Any]]) -> list[ProbeResult]:
    async def sized(request: web.Request) -> web.Response:
        return web.Response(text="status: degraded", status=200)

    async def missing(request: web.Request) -> web.Response:
        return web.Response(status=503, text="down")

    app = web.Application()
    app.router.add_get("/chunked", chunked)
    app.router.add_get("/sized", sized)
    app.router.add_get("/missing", missing)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    clients = HttpClients()
    context = ProbeContext(timeout=2.0, http=clients)
    try:
        results = []
        for case in cases:
            url = case["url"].replace("PORT", str(port))
            results.append(await probe(HttpSettings.model_validate({**case, "url": url}), context))
        return results
    finally:
        await clients.close()
        await runner.cleanup()


@pytest.mark.parametrize("loop_factory", loops())
def test_lean_probe_on_both_loops(
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None,
) -> None:
    cases = [
        {"url": "http://127.0.0.1:PORT/chunked", "contains": "systems OK"},
        {"url": "http://127.0.0.1:PORT/chunked", "contains": "nope"},
        {"url": "http://127.0.0.1:PORT/sized", "not_contains": "degraded"},
        {"url": "http://127.0.0.1:PORT/missing"},
        {"url": "http://127.0.0.1:PORT/sized", "expect_status": [200]},
        {"url": f"http://127.0.0.1:{closed_port()}/"},
    ]
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        results = runner.run(_serve_and_probe(cases))
    assert [(r.ok, r.reason) for r in results] == [
        (True, "status 200"),
        (False, "keyword 'nope' missing"),
        (False, "keyword 'degraded' found"),
        (False, "status 503"),
        (True, "status 200"),
        (False, "connection refused"),
    ]


def test_the_lean_path_is_taken_for_http_and_https_without_keep_alive() -> None:
    assert HttpSettings(url="http://example.test/").lean()
    assert HttpSettings(url="https://example.test/").lean()
    assert not HttpSettings(url="http://example.test/", keep_alive=True).lean()
    assert not HttpSettings(url="https://example.test/", keep_alive=True).lean()
    # the lean path does not decode compressed bodies: asking for them means aiohttp
    assert not HttpSettings(url="http://example.test/", headers={"Accept-Encoding": "gzip"}).lean()


async def test_forcing_the_lean_path_where_it_cannot_go_is_an_error() -> None:
    context = ProbeContext(timeout=1.0, http=HttpClients())
    gzip = HttpSettings(url="https://example.test/", headers={"Accept-Encoding": "gzip"})
    with pytest.raises(ValueError, match="lean path cannot"):
        await probe(gzip, context, via="lean")


def test_the_lean_request_carries_the_agents_user_agent() -> None:
    settings = HttpSettings(
        url="http://example.test:8080/health?x=1",
        method="POST",
        body="ping",
        headers={"X-Key": "v"},
    )
    assert first_request(settings, settings.plan, "watchdesk/1.2.3") == (
        b"POST /health?x=1 HTTP/1.1\r\nHost: example.test:8080\r\nAccept: */*\r\n"
        b"User-Agent: watchdesk/1.2.3\r\nX-Key: v\r\nAccept-Encoding: identity\r\n"
        b"Content-Length: 4\r\nContent-Type: text/plain; charset=utf-8\r\n"
        b"Connection: close\r\n\r\nping"
    )
    # built once per user agent
    assert first_request(settings, settings.plan, "watchdesk/1.2.3") is first_request(
        settings, settings.plan, "watchdesk/1.2.3"
    )
    assert b"User-Agent: other\r\n" in first_request(settings, settings.plan, "other")
