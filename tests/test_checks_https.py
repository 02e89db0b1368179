"""The https side of the http probe, on its lean path: the certificate's expiry read from the
probe's own handshake (and recorded by the agent), SNI, one TLS context per CA setting, session
resumption only where a target asks for it, and the same on uvloop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiohttp import web
from prometheus_client.utils import floatToGoString
from pydantic import ValidationError

from checks.base import HttpClients, ProbeContext, client_ssl_context
from checks.http import HttpSettings, probe
from monitor.probing import run_probe
from tests.agent_harness import Harness
from tests.fakes_probes import Certs, make_certs, serve_app
from tests.test_http_lean import loops

SEEN = web.AppKey("seen", list[bool])


async def ok(request: web.Request) -> web.Response:
    ssl_object = request.transport.get_extra_info("ssl_object") if request.transport else None
    request.app[SEEN].append(bool(ssl_object and ssl_object.session_reused))
    return web.Response(text="all OK here")


async def down(request: web.Request) -> web.Response:
    return web.Response(status=503, text="down")


async def go(request: web.Request) -> web.Response:
    raise web.HTTPFound(request.query["to"])


def make_app() -> web.Application:
    app = web.Application()
    app[SEEN] = []
    app.router.add_get("/ok", ok)
    app.router.add_get("/down", down)
    app.router.add_get("/go", go)
    return app


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture
async def context() -> AsyncIterator[ProbeContext]:
    clients = HttpClients()
    yield ProbeContext(timeout=2.0, http=clients)
    await clients.close()


async def test_the_expiry_comes_from_the_probes_own_handshake(
    certs: Certs, context: ProbeContext
) -> None:
    async with serve_app(make_app(), certs.valid) as url:
        good = await probe(HttpSettings(url=f"{url}/ok", ca_file=certs.ca_file), context)
        failed = await probe(HttpSettings(url=f"{url}/down", ca_file=certs.ca_file), context)
        keep = HttpSettings(url=f"{url}/ok", ca_file=certs.ca_file, keep_alive=True)
        kept = await probe(keep, context)  # aiohttp's pooled connection: no handshake of its own
    assert (good.ok, good.tls_expiry) == (True, certs.valid_until.timestamp())
    # a failing status still comes after a handshake: the expiry is known
    assert (failed.reason, failed.tls_expiry) == ("status 503", certs.valid_until.timestamp())
    assert (kept.ok, kept.tls_expiry) == (True, None)


async def test_the_earliest_expiry_of_a_redirect_chain(certs: Certs, context: ProbeContext) -> None:
    async with (
        serve_app(make_app(), certs.valid) as first,
        serve_app(make_app(), certs.expiring) as second,
        serve_app(make_app()) as plain,
    ):
        chain = HttpSettings(url=f"{first}/go?to={second}/ok", ca_file=certs.ca_file)
        result = await probe(chain, context)
        to_plain = await probe(
            HttpSettings(url=f"{plain}/go?to={first}/ok", ca_file=certs.ca_file), context
        )
        only_plain = await probe(HttpSettings(url=f"{plain}/ok"), context)
    assert (result.ok, result.tls_expiry) == (True, certs.expiring_until.timestamp())
    assert to_plain.tls_expiry == certs.valid_until.timestamp()
    assert only_plain.tls_expiry is None


async def test_a_failed_verification_has_no_expiry(certs: Certs, context: ProbeContext) -> None:
    async with serve_app(make_app(), certs.expired) as url:
        result = await probe(HttpSettings(url=f"{url}/ok", ca_file=certs.ca_file), context)
    assert result.reason == "TLS: certificate verify failed: certificate has expired"
    assert result.tls_expiry is None  # nothing verified: no figure to trust


async def test_the_agent_records_the_expiry_of_an_https_target(
    certs: Certs, tmp_path: Path
) -> None:
    async with serve_app(make_app(), certs.valid) as url:
        config = f"""
[ticketing]
backend = "local"

[[targets]]
name = "web"
kind = "http"
url = "{url}/ok"
ca_file = "{certs.ca_file}"
"""
        harness = await Harness.create(tmp_path, config)
        try:
            target = harness.agent.targets["web"]
            result = await run_probe(target, harness.agent.clients)
            await harness.agent.apply_result(target, result)
            text = harness.agent.metrics.exposition().decode()
        finally:
            await harness.close()
    expected = floatToGoString(certs.valid_until.timestamp())
    line = f'watchdesk_tls_cert_expiry_timestamp_seconds{{target="web"}} {expected}'
    assert line in text


async def test_sni_is_the_urls_host_name_on_both_paths(certs: Certs, context: ProbeContext) -> None:
    names: list[str | None] = []
    server = certs.valid
    server.sni_callback = lambda tls, name, ctx: names.append(name)  # type: ignore[assignment,misc]
    try:
        async with serve_app(make_app(), server) as url:
            for base in (url.replace("127.0.0.1", "localhost"), url):
                settings = HttpSettings(url=f"{base}/ok", ca_file=certs.ca_file)
                for via in ("lean", "aiohttp"):
                    assert (await probe(settings, context, via=via)).ok  # type: ignore[arg-type]
    finally:
        server.sni_callback = None
    # an IP address is never sent as SNI (RFC 6066), by either client
    assert names == ["localhost", "localhost", None, None]


async def test_one_tls_context_per_ca_setting_and_each_target_its_own_ca(
    certs: Certs, context: ProbeContext, tmp_path: Path
) -> None:
    other_ca = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other_ca))
    async with serve_app(make_app(), certs.valid) as url:
        right = HttpSettings(url=f"{url}/ok", ca_file=certs.ca_file)
        wrong = HttpSettings(url=f"{url}/ok", ca_file=str(other_ca))
        made = client_ssl_context.cache_info().misses
        results = [await probe(settings, context) for settings in (right, wrong) * 10]
    assert {(r.ok, r.reason) for r in results[::2]} == {(True, "status 200")}
    assert {r.reason for r in results[1::2]} == {
        "TLS: certificate verify failed: unable to get local issuer certificate"
    }
    assert client_ssl_context.cache_info().misses == made  # 20 probes, no context built


@pytest.mark.parametrize(("reuse", "resumed"), [(False, [False] * 3), (True, [False, True, True])])
async def test_sessions_are_resumed_only_when_the_target_opts_in(
    certs: Certs, context: ProbeContext, reuse: bool, resumed: list[bool]
) -> None:
    app = make_app()
    async with serve_app(app, certs.valid) as url:
        settings = HttpSettings(url=f"{url}/ok", ca_file=certs.ca_file, tls_session_reuse=reuse)
        results = [await probe(settings, context) for _ in range(3)]
    assert [(r.ok, r.tls_expiry) for r in results] == [(True, certs.valid_until.timestamp())] * 3
    assert app[SEEN] == resumed


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"url": "http://x.example/", "tls_session_reuse": True}, "needs an https:// URL"),
        ({"url": "HTTPS://x.example/", "tls_session_reuse": True}, None),
        (
            {"url": "https://x.example/", "tls_session_reuse": True, "keep_alive": True},
            "with keep_alive: pick one",
        ),
    ],
)
def test_session_reuse_settings_are_checked(values: dict[str, object], message: str | None) -> None:
    if message is None:
        assert HttpSettings.model_validate(values).tls_session_reuse
        return
    with pytest.raises(ValidationError, match=message):
        HttpSettings.model_validate(values)


@pytest.mark.parametrize("loop_factory", loops())
def test_lean_https_on_both_loops(
    certs: Certs, loop_factory: Callable[[], asyncio.AbstractEventLoop] | None
) -> None:
    async def run() -> list[tuple[bool, str, Any]]:
        clients = HttpClients()
        context = ProbeContext(timeout=2.0, http=clients)
        try:
            async with (
                serve_app(make_app(), certs.valid) as url,
                serve_app(make_app(), certs.self_signed) as rogue,
            ):
                cases = [
                    HttpSettings(url=f"{url}/ok", ca_file=certs.ca_file, contains="OK"),
                    HttpSettings(url=f"{url}/down", ca_file=certs.ca_file),
                    HttpSettings(url=f"{rogue}/ok", ca_file=certs.ca_file),
                    HttpSettings(url=f"{url}/ok", ca_file=certs.ca_file, tls_session_reuse=True),
                ]
                results = [await probe(settings, context, via="lean") for settings in cases]
        finally:
            await clients.close()
        return [(r.ok, r.reason, r.tls_expiry) for r in results]

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        results = runner.run(run())
    expiry = certs.valid_until.timestamp()
    assert results == [
        (True, "status 200", expiry),
        (False, "status 503", expiry),
        (False, "TLS: certificate verify failed: self-signed certificate", None),
        (True, "status 200", expiry),
    ]
