"""The http probe against real aiohttp servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from pydantic import ValidationError

from checks.base import HttpClients, ProbeContext
from checks.http import HttpSettings, probe
from tests.fakes_probes import Certs, make_certs, refused_port, serve_app, serve_tcp, silent

BIG_TOTAL = 50 * 1024 * 1024
PEERS = web.AppKey("peers", list[str])
BIG = web.AppKey("big", dict[str, int])
BIG_DONE = web.AppKey("big_done", asyncio.Event)


async def ok(request: web.Request) -> web.Response:
    return web.Response(text="all OK here")


async def status(request: web.Request) -> web.Response:
    return web.Response(status=int(request.match_info["code"]), text="status page")


async def redirect(request: web.Request) -> web.Response:
    left = int(request.match_info["n"])
    if left == 0:
        return web.Response(text="arrived OK")
    raise web.HTTPFound(f"/redirect/{left - 1}")


async def head_only(request: web.Request) -> web.Response:
    return web.Response(headers={"X-Seen": request.method})


async def echo(request: web.Request) -> web.Response:
    body = await request.text()
    return web.Response(text=f"{request.method} token={request.headers.get('X-Token')} {body}")


async def error_page(request: web.Request) -> web.Response:
    return web.Response(text="<h1>ERROR: database unavailable</h1>")


async def slow(request: web.Request) -> web.Response:
    await asyncio.sleep(10)
    return web.Response(text="too late")


async def peer(request: web.Request) -> web.Response:
    assert request.transport is not None
    request.app[PEERS].append(str(request.transport.get_extra_info("peername")))
    return web.Response(text="OK")


async def big(request: web.Request) -> web.StreamResponse:
    """50 MiB of filler after a first line that holds the word "needle"."""
    response = web.StreamResponse()
    response.content_type = "text/plain"
    await response.prepare(request)
    state = request.app[BIG]
    chunk = b"x" * 65536
    try:
        await response.write(b"the needle is in the first line\n")
        while state["sent"] < BIG_TOTAL:
            await response.write(chunk)
            state["sent"] += len(chunk)
    except ConnectionError:
        state["cut"] = 1
    finally:
        request.app[BIG_DONE].set()
    return response


def make_app() -> web.Application:
    app = web.Application()
    app[PEERS] = []
    app[BIG] = {"sent": 0, "cut": 0}
    app[BIG_DONE] = asyncio.Event()
    app.router.add_get("/ok", ok)
    app.router.add_get("/status/{code}", status)
    app.router.add_get("/redirect/{n}", redirect)
    app.router.add_route("HEAD", "/head-only", head_only)
    app.router.add_post("/echo", echo)
    app.router.add_get("/error-page", error_page)
    app.router.add_get("/slow", slow)
    app.router.add_get("/peer", peer)
    app.router.add_get("/big", big)
    return app


@pytest.fixture
async def app() -> web.Application:
    return make_app()


@pytest.fixture
async def base(app: web.Application) -> AsyncIterator[str]:
    async with serve_app(app) as url:
        yield url


@pytest.fixture
async def clients() -> AsyncIterator[HttpClients]:
    created = HttpClients()
    yield created
    await created.close()


@pytest.fixture
def context(clients: HttpClients) -> ProbeContext:
    return ProbeContext(timeout=1.0, http=clients)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"))


# --- status ----------------------------------------------------------------------------------


async def test_200_is_ok(base: str, context: ProbeContext) -> None:
    result = await probe(HttpSettings(url=f"{base}/ok"), context)
    assert result.ok
    assert result.reason == "status 200"
    assert 0 < result.duration_seconds < 1


async def test_503_fails_with_the_status(base: str, context: ProbeContext) -> None:
    result = await probe(HttpSettings(url=f"{base}/status/503"), context)
    assert not result.ok
    assert result.reason == "status 503"


async def test_expect_status_names_what_was_expected(base: str, context: ProbeContext) -> None:
    wrong = await probe(HttpSettings(url=f"{base}/status/204", expect_status=[200]), context)
    assert (wrong.ok, wrong.reason) == (False, "status 204, expected 200")

    several = HttpSettings(url=f"{base}/status/500", expect_status=[200, 204, 301])
    result = await probe(several, context)
    assert result.reason == "status 500, expected 200, 204 or 301"

    wanted = await probe(HttpSettings(url=f"{base}/status/503", expect_status=[503]), context)
    assert wanted.ok


# --- body keywords ---------------------------------------------------------------------------


async def test_contains(base: str, context: ProbeContext) -> None:
    assert (await probe(HttpSettings(url=f"{base}/ok", contains="OK"), context)).ok
    missing = await probe(HttpSettings(url=f"{base}/ok", contains="healthy"), context)
    assert not missing.ok
    assert missing.reason == "keyword 'healthy' missing"


async def test_not_contains(base: str, context: ProbeContext) -> None:
    found = await probe(HttpSettings(url=f"{base}/error-page", not_contains="ERROR"), context)
    assert not found.ok
    assert found.reason == "keyword 'ERROR' found"
    assert (await probe(HttpSettings(url=f"{base}/ok", not_contains="ERROR"), context)).ok


async def test_a_keyword_on_a_status_failure_reports_the_status(
    base: str, context: ProbeContext
) -> None:
    result = await probe(HttpSettings(url=f"{base}/status/500", contains="OK"), context)
    assert result.reason == "status 500"


async def test_huge_body_is_read_only_up_to_1_mib(
    app: web.Application, base: str, context: ProbeContext
) -> None:
    started = time.perf_counter()
    missing = await probe(HttpSettings(url=f"{base}/big", contains="not-there"), context)
    assert not missing.ok
    assert missing.reason == "keyword 'not-there' missing in the first 1 MiB"
    assert time.perf_counter() - started < 0.9
    # the server noticed the connection go away long before it sent its 50 MiB
    await asyncio.wait_for(app[BIG_DONE].wait(), 5)
    assert app[BIG]["cut"] == 1
    assert app[BIG]["sent"] < BIG_TOTAL / 2


async def test_huge_body_keyword_in_the_first_mib(base: str, context: ProbeContext) -> None:
    found = await probe(HttpSettings(url=f"{base}/big", contains="needle"), context)
    assert found.ok
    assert found.duration_seconds < 0.9


# --- redirects, methods, headers ---------------------------------------------------------------


@pytest.mark.parametrize("hops", [1, 3, 5])
async def test_up_to_5_redirects_are_followed(base: str, context: ProbeContext, hops: int) -> None:
    result = await probe(HttpSettings(url=f"{base}/redirect/{hops}", contains="arrived"), context)
    assert (result.ok, result.reason) == (True, "status 200")


async def test_more_than_5_redirects_fail(base: str, context: ProbeContext) -> None:
    result = await probe(HttpSettings(url=f"{base}/redirect/6"), context)
    assert (result.ok, result.reason) == (False, "more than 5 redirects")


async def test_redirects_not_followed(base: str, context: ProbeContext) -> None:
    settings = HttpSettings(url=f"{base}/redirect/2", follow_redirects=False)
    assert (await probe(settings, context)).reason == "status 302"
    strict = HttpSettings(url=f"{base}/redirect/2", follow_redirects=False, expect_status=[200])
    result = await probe(strict, context)
    assert (result.ok, result.reason) == (False, "status 302, expected 200")


async def test_head(base: str, context: ProbeContext) -> None:
    assert (await probe(HttpSettings(url=f"{base}/head-only", method="head"), context)).ok
    wrong = await probe(HttpSettings(url=f"{base}/head-only"), context)
    assert wrong.reason == "status 405"


async def test_post_sends_body_and_headers(base: str, context: ProbeContext) -> None:
    settings = HttpSettings(
        url=f"{base}/echo",
        method="POST",
        headers={"X-Token": "abc"},
        body="hello",
        contains="POST token=abc hello",
    )
    result = await probe(settings, context)
    assert result.ok, result.reason


# --- connections -------------------------------------------------------------------------------


@pytest.mark.parametrize(("keep_alive", "connections"), [(False, 2), (True, 1)])
async def test_fresh_connection_per_probe_unless_keep_alive(
    app: web.Application, base: str, context: ProbeContext, keep_alive: bool, connections: int
) -> None:
    settings = HttpSettings(url=f"{base}/peer", keep_alive=keep_alive)
    for _ in range(2):
        assert (await probe(settings, context)).ok
    assert len(app[PEERS]) == 2
    assert len(set(app[PEERS])) == connections


async def test_connection_refused(context: ProbeContext) -> None:
    result = await probe(HttpSettings(url=f"http://127.0.0.1:{refused_port()}/"), context)
    assert (result.ok, result.reason) == (False, "connection refused")


async def test_slow_response_times_out(base: str, clients: HttpClients) -> None:
    result = await probe(HttpSettings(url=f"{base}/slow"), ProbeContext(0.3, clients))
    assert (result.ok, result.reason) == (False, "timeout after 300ms")
    assert result.duration_seconds < 0.6


async def test_server_that_never_answers_times_out(clients: HttpClients) -> None:
    async with serve_tcp(silent) as port:
        settings = HttpSettings(url=f"http://127.0.0.1:{port}/")
        result = await probe(settings, ProbeContext(0.3, clients))
    assert (result.ok, result.reason) == (False, "timeout after 300ms")


async def test_server_that_hangs_up(context: ProbeContext) -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")

    async with serve_tcp(hang_up) as port:
        result = await probe(HttpSettings(url=f"http://127.0.0.1:{port}/"), context)
    assert not result.ok
    assert result.reason == "server closed the connection without a response"


async def test_server_that_speaks_no_http(context: ProbeContext) -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"SSH-2.0-OpenSSH_9.6\r\n")
        await writer.drain()
        await reader.read()

    async with serve_tcp(garbage) as port:
        result = await probe(HttpSettings(url=f"http://127.0.0.1:{port}/"), context)
    assert not result.ok
    assert result.reason == "bad response: Bad status line"


async def test_unknown_host(context: ProbeContext) -> None:
    result = await probe(HttpSettings(url="http://no-such-host.invalid/"), context)
    assert (result.ok, result.reason) == (False, "name not found: no-such-host.invalid")


# --- TLS ---------------------------------------------------------------------------------------


async def test_https_with_a_private_ca(certs: Certs, context: ProbeContext) -> None:
    async with serve_app(make_app(), certs.valid) as url:
        result = await probe(HttpSettings(url=f"{url}/ok", ca_file=certs.ca_file), context)
    assert (result.ok, result.reason) == (True, "status 200")


async def test_https_self_signed(certs: Certs, context: ProbeContext) -> None:
    async with serve_app(make_app(), certs.self_signed) as url:
        result = await probe(HttpSettings(url=f"{url}/ok", ca_file=certs.ca_file), context)
        assert not result.ok
        assert result.reason == "TLS: certificate verify failed: self-signed certificate"
        unverified = HttpSettings(url=f"{url}/ok", verify_tls=False)
        assert (await probe(unverified, context)).ok


async def test_https_expired(certs: Certs, context: ProbeContext) -> None:
    async with serve_app(make_app(), certs.expired) as url:
        result = await probe(HttpSettings(url=f"{url}/ok", ca_file=certs.ca_file), context)
    assert not result.ok
    assert result.reason == "TLS: certificate verify failed: certificate has expired"


async def test_https_to_a_plain_http_port(base: str, context: ProbeContext) -> None:
    result = await probe(HttpSettings(url=base.replace("http:", "https:") + "/ok"), context)
    assert (result.ok, result.reason) == (False, "TLS: wrong version number")


# --- settings ----------------------------------------------------------------------------------


def test_settings_defaults_and_where() -> None:
    settings = HttpSettings(url="https://www.example.com/health")
    assert settings.where() == "https://www.example.com/health"
    assert settings.method == "GET"
    assert settings.expect_status is None
    assert settings.keep_alive is False
    assert settings.follow_redirects is True
    assert settings.verify_tls is True


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"url": "ftp://example.com/"}, "http:// or https://"),
        ({"url": "example.com"}, "http:// or https://"),
        ({"url": "https://x.example", "expect_status": [700]}, "less than or equal to 599"),
        ({"url": "https://x.example", "expect_status": []}, "at least 1"),
        ({"url": "https://x.example", "method": "FETCH"}, "must be one of"),
        ({"url": "https://x.example", "method": "HEAD", "contains": "OK"}, "need a body"),
        ({"url": "https://x.example", "ca_file": "/nonexistent.pem"}, "no such file"),
        ({"url": "https://x.example", "headers": {"X-A": "1\r\nX-B: 2"}}, "bad header"),
        ({"url": "https://x.example", "headers": {"content-length": "3"}}, "follow from body"),
        (
            {"url": "https://u:p@x.example", "headers": {"Authorization": "Bearer t"}},
            "pick one",
        ),
        ({"url": "https://x.example", "timeout_typo": 1}, "Extra inputs are not permitted"),
    ],
)
def test_bad_settings_are_refused(values: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        HttpSettings.model_validate(values)


def test_bad_ca_file_is_a_settings_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate")
    with pytest.raises(ValidationError, match="cannot load ca_file"):
        HttpSettings(url="https://x.example", ca_file=str(bad))
