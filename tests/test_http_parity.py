"""One HTTP semantics: the lean path (checks.http_lean) and aiohttp give the same verdict, send
the same requests and send each exactly once per probe.

Every case runs four ways against real servers on 127.0.0.1:

* ``lean``: ``probe(..., via="lean")`` against plain http servers;
* ``aiohttp``: ``probe(..., via="aiohttp")`` against the same plain http servers;
* ``tls``: the same case through aiohttp over https (trustme certificates; the verdict and the
  requests must still be those of the plain case);
* ``lean-tls``: the same case through the lean path over https.

tests/test_https_parity.py adds the cases only TLS has (certificates, SNI, handshakes) to the
same machinery.

For each way the servers record every request (method, target, headers, body). The test then
asserts: the verdict and reason match the table, each server saw the table's requests exactly
once per probe (each case probes twice, so state left by one probe, such as a cookie, shows),
and the three ways sent the same requests, byte for byte, headers included (the Host header
and URLs are compared by server role, not port).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import pytest
from aiohttp import web

from checks.base import HttpClients, ProbeContext
from checks.http import HttpSettings, Via, probe
from tests.fakes_probes import (
    Certs,
    SeenRequest,
    chunked,
    make_certs,
    raw_responder,
    recording,
    refused_port,
    serve_app,
    serve_tcp,
    tls_refuser,
)

USER_AGENT = "watchdesk/parity-test"
BIG_BODY = b"x" * (2 * 1024 * 1024) + b"needle"

# --- the servers' handlers ------------------------------------------------------------------


async def ok(request: web.Request) -> web.Response:
    return web.Response(text="all OK here")


async def status(request: web.Request) -> web.Response:
    return web.Response(status=int(request.match_info["code"]), text="status page")


async def go(request: web.Request) -> web.Response:
    """/go/{code}?to=LOCATION: a redirect with that status (no Location when ``to`` is empty)."""
    to = request.query.get("to", "")
    headers = {"Location": to} if to else {}
    return web.Response(status=int(request.match_info["code"]), headers=headers, text="moved")


async def hops(request: web.Request) -> web.Response:
    left = int(request.match_info["n"])
    if left == 0:
        return web.Response(text="arrived OK")
    raise web.HTTPFound(f"/hops/{left - 1}")


async def echo(request: web.Request) -> web.Response:
    body = await request.text()
    return web.Response(text=f"{request.method} {body}")


async def slow_body(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse()
    response.content_length = 100
    await response.prepare(request)
    await response.write(b"first part ")
    await asyncio.sleep(10)
    return response


async def big(request: web.Request) -> web.Response:
    return web.Response(body=BIG_BODY)


async def cookie(request: web.Request) -> web.Response:
    response = web.Response(text="all OK here")
    response.set_cookie("session", "s3cr3t")
    return response


async def compressible(request: web.Request) -> web.Response:
    response = web.Response(text="all OK here " * 100)
    response.enable_compression()
    return response


async def non_ascii(request: web.Request) -> web.Response:
    return web.Response(text="all OK here", headers={"X-Where": "Montréal ✓"})


def make_app(name: str, seen: list[SeenRequest]) -> web.Application:
    app = web.Application(middlewares=[recording(name, seen)])
    app.router.add_get("/ok", ok)
    app.router.add_get("/status/{code}", status)
    app.router.add_route("*", "/go/{code}", go)
    app.router.add_get("/hops/{n}", hops)
    app.router.add_route("*", "/echo", echo)
    app.router.add_get("/chunked", chunked)
    app.router.add_get("/slow-body", slow_body)
    app.router.add_get("/big", big)
    app.router.add_get("/cookie", cookie)
    app.router.add_get("/compressible", compressible)
    app.router.add_get("/non-ascii", non_ascii)
    return app


# --- the table -------------------------------------------------------------------------------

Hit = tuple[str, str, str]  # server role, method, target (with {role} for a server's base URL)


@dataclass(frozen=True)
class Case:
    id: str
    settings: dict[str, Any]  # "url" may name {main}, {other}, {tls}, {refused}
    ok: bool
    reason: str
    hits: list[Hit]  # what the servers see for one probe
    raw: bytes | None = None  # {main} is then a raw server that answers these bytes
    raw_hang_up: bool = True
    timeout: float = 2.0
    repeat: int = 2
    ways: tuple[str, ...] = ("lean", "aiohttp", "tls", "lean-tls")
    host: str = "127.0.0.1"  # how the target's URL names {main} (servers listen on 127.0.0.1)
    ignore_headers: frozenset[str] = field(default_factory=frozenset)
    # Over TLS, {main}'s certificate: a Certs field, or "plain" (no TLS at all behind an
    # https:// URL), or "hang-up" (a listener that closes mid-handshake), or "refusing-FIELD"
    # (tests.fakes_probes.tls_refuser with that Certs field: its alert is sent); and
    # {other}'s. The URL may also name {plain}, a plain http server in every way.
    cert: str = "valid"
    other_cert: str = "valid"


POST = {"method": "POST", "body": "ping"}
CUT = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nall OK"
CUT_CHUNKED = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nall OK\r\n10\r\nmo"
EARLY_HINTS = (
    b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n"
    b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nall OK"
)
LATIN_1_HEADER = b"HTTP/1.1 200 OK\r\nX-Where: Montr\xe9al\r\nContent-Length: 6\r\n\r\nall OK"
HTTP_1_0 = b"HTTP/1.0 200 OK\r\n\r\nall OK, until the connection closes"

CASES = [
    # plain requests
    Case("get", {"url": "{main}/ok"}, True, "status 200", [("main", "GET", "/ok")]),
    Case(
        "503", {"url": "{main}/status/503"}, False, "status 503", [("main", "GET", "/status/503")]
    ),
    Case(
        "expect_status-match",
        {"url": "{main}/status/503", "expect_status": [503]},
        True,
        "status 503",
        [("main", "GET", "/status/503")],
    ),
    Case(
        "expect_status-miss",
        {"url": "{main}/status/204", "expect_status": [200, 301]},
        False,
        "status 204, expected 200 or 301",
        [("main", "GET", "/status/204")],
    ),
    Case(
        "contains",
        {"url": "{main}/ok", "contains": "OK here"},
        True,
        "status 200",
        [("main", "GET", "/ok")],
    ),
    Case(
        "contains-missing",
        {"url": "{main}/ok", "contains": "healthy"},
        False,
        "keyword 'healthy' missing",
        [("main", "GET", "/ok")],
    ),
    Case(
        "not_contains",
        {"url": "{main}/ok", "not_contains": "OK"},
        False,
        "keyword 'OK' found",
        [("main", "GET", "/ok")],
    ),
    Case(
        "keyword-on-a-failed-status",
        {"url": "{main}/status/500", "contains": "status page"},
        False,
        "status 500",
        [("main", "GET", "/status/500")],
    ),
    Case(
        "chunked",
        {"url": "{main}/chunked", "contains": "systems OK"},
        True,
        "status 200",
        [("main", "GET", "/chunked")],
    ),
    Case(
        "chunked-missing",
        {"url": "{main}/chunked", "contains": "nope"},
        False,
        "keyword 'nope' missing",
        [("main", "GET", "/chunked")],
    ),
    Case(
        "big-body-keyword-past-1-MiB",
        {"url": "{main}/big", "contains": "needle"},
        False,
        "keyword 'needle' missing in the first 1 MiB",
        [("main", "GET", "/big")],
    ),
    Case(
        "compressible-body",
        {"url": "{main}/compressible", "contains": "OK here"},
        True,
        "status 200",
        [("main", "GET", "/compressible")],
    ),
    Case(
        "head",
        {"url": "{main}/ok", "method": "HEAD"},
        True,
        "status 200",
        [("main", "HEAD", "/ok")],
    ),
    Case(
        "post-body",
        {"url": "{main}/echo", **POST, "contains": "POST ping"},
        True,
        "status 200",
        [("main", "POST", "/echo")],
    ),
    Case(
        "post-json",
        {
            "url": "{main}/echo",
            "method": "POST",
            "body": '{"check": "é"}',
            "headers": {"Content-Type": "application/json"},
            "contains": '"check"',
        },
        True,
        "status 200",
        [("main", "POST", "/echo")],
    ),
    Case(
        "post-no-body",
        {"url": "{main}/echo", "method": "POST", "contains": "POST"},
        True,
        "status 200",
        [("main", "POST", "/echo")],
    ),
    Case(
        "delete-no-body",
        {"url": "{main}/echo", "method": "DELETE"},
        True,
        "status 200",
        [("main", "DELETE", "/echo")],
    ),
    Case(
        "options",
        {"url": "{main}/echo", "method": "OPTIONS"},
        True,
        "status 200",
        [("main", "OPTIONS", "/echo")],
    ),
    Case(
        "headers-non-ascii",
        {"url": "{main}/echo", "headers": {"X-Note": "café ✓", "X-Token": "abc"}},
        True,
        "status 200",
        [("main", "GET", "/echo")],
    ),
    Case(
        "response-header-non-ascii",
        {"url": "{main}/non-ascii", "contains": "OK"},
        True,
        "status 200",
        [("main", "GET", "/non-ascii")],
    ),
    Case(
        "query-non-ascii",
        {"url": "{main}/ok?q=é&x=1"},
        True,
        "status 200",
        [("main", "GET", "/ok?q=%C3%A9&x=1")],
    ),
    Case(
        "own-user-agent-and-accept",
        {"url": "{main}/ok", "headers": {"user-agent": "custom/1", "Accept": "text/plain"}},
        True,
        "status 200",
        [("main", "GET", "/ok")],
    ),
    Case(
        "cookie-is-not-kept",
        {"url": "{main}/cookie"},
        True,
        "status 200",
        [("main", "GET", "/cookie")],
        host="localhost",  # aiohttp's cookie jar ignores cookies from IP addresses
    ),
    Case(
        "localhost-ipv6-first-then-ipv4",
        {"url": "{main}/ok"},
        True,
        "status 200",
        [("main", "GET", "/ok")],
        host="localhost",  # resolves to ::1 first, where nothing listens
    ),
    Case(
        "credentials-in-the-url",
        {"url": "{main}/go/302?to=/echo"},
        True,
        "status 200",
        [("main", "GET", "/go/302?to=/echo"), ("main", "GET", "/echo")],
        host="probe:s%C3%A9cret@127.0.0.1",
    ),
    Case(
        "credentials-in-the-url-other-origin",
        {"url": "{main}/go/302?to={other}/echo"},
        True,
        "status 200",
        [("main", "GET", "/go/302?to={other}/echo"), ("other", "GET", "/echo")],
        host="probe:secret@127.0.0.1",
    ),
    Case(
        "keep-alive",
        {"url": "{main}/ok", "keep_alive": True, "contains": "OK"},
        True,
        "status 200",
        [("main", "GET", "/ok")],
        # only aiohttp keeps connections; the lean path always sends "Connection: close"
        ignore_headers=frozenset({"connection"}),
    ),
    # redirects
    Case(
        "301-get",
        {"url": "{main}/go/301?to=/ok", "contains": "OK"},
        True,
        "status 200",
        [("main", "GET", "/go/301?to=/ok"), ("main", "GET", "/ok")],
    ),
    Case(
        "302-post-becomes-get",
        {"url": "{main}/go/302?to=/echo", **POST, "contains": "GET"},
        True,
        "status 200",
        [("main", "POST", "/go/302?to=/echo"), ("main", "GET", "/echo")],
    ),
    Case(
        "303-post-becomes-get",
        {"url": "{main}/go/303?to=/echo", **POST, "contains": "GET"},
        True,
        "status 200",
        [("main", "POST", "/go/303?to=/echo"), ("main", "GET", "/echo")],
    ),
    Case(
        "307-post-stays-post",
        {"url": "{main}/go/307?to=/echo", **POST, "contains": "POST ping"},
        True,
        "status 200",
        [("main", "POST", "/go/307?to=/echo"), ("main", "POST", "/echo")],
    ),
    Case(
        "308-post-stays-post",
        {"url": "{main}/go/308?to=/echo", **POST, "contains": "POST ping"},
        True,
        "status 200",
        [("main", "POST", "/go/308?to=/echo"), ("main", "POST", "/echo")],
    ),
    Case(
        "301-put-keeps-body",
        {"url": "{main}/go/301?to=/echo", "method": "PUT", "body": "ping"},
        True,
        "status 200",
        [("main", "PUT", "/go/301?to=/echo"), ("main", "PUT", "/echo")],
    ),
    Case(
        "303-head-stays-head",
        {"url": "{main}/go/303?to=/ok", "method": "HEAD"},
        True,
        "status 200",
        [("main", "HEAD", "/go/303?to=/ok"), ("main", "HEAD", "/ok")],
    ),
    Case(
        "redirect-not-followed",
        {"url": "{main}/go/307?to=/echo", **POST, "follow_redirects": False},
        True,
        "status 307",
        [("main", "POST", "/go/307?to=/echo")],
    ),
    Case(
        "redirect-not-followed-expect-200",
        {"url": "{main}/go/302?to=/ok", "follow_redirects": False, "expect_status": [200]},
        False,
        "status 302, expected 200",
        [("main", "GET", "/go/302?to=/ok")],
    ),
    Case(
        "redirect-without-location",
        {"url": "{main}/go/302", "contains": "moved"},
        True,
        "status 302",
        [("main", "GET", "/go/302")],
    ),
    Case(
        "5-hops",
        {"url": "{main}/hops/5", "contains": "arrived"},
        True,
        "status 200",
        [("main", "GET", f"/hops/{n}") for n in range(5, -1, -1)],
    ),
    Case(
        "6-hops",
        {"url": "{main}/hops/6", "contains": "arrived"},
        False,
        "more than 5 redirects",
        [("main", "GET", f"/hops/{n}") for n in range(6, 0, -1)],
    ),
    Case(
        "redirect-fragment",
        {"url": "{main}/go/302?to=/ok%23top"},
        True,
        "status 200",
        [("main", "GET", "/go/302?to=/ok%23top"), ("main", "GET", "/ok")],
    ),
    Case(
        "redirect-other-origin-drops-authorization",
        {
            "url": "{main}/go/307?to={other}/echo",
            **POST,
            "headers": {"Authorization": "Bearer t0ken", "X-Keep": "1"},
            "contains": "POST ping",
        },
        True,
        "status 200",
        [("main", "POST", "/go/307?to={other}/echo"), ("other", "POST", "/echo")],
    ),
    Case(
        "redirect-http-to-https",
        {"url": "{main}/go/308?to={tls}/echo", **POST, "contains": "POST ping"},
        True,
        "status 200",
        [("main", "POST", "/go/308?to={tls}/echo"), ("tls", "POST", "/echo")],
        ways=("lean", "aiohttp"),
    ),
    Case(
        "redirect-to-ftp",
        {"url": "{main}/go/302?to=ftp://files.example/"},
        False,
        "bad redirect: ftp://files.example/",
        [("main", "GET", "/go/302?to=ftp://files.example/")],
    ),
    Case(
        "redirect-to-refused-port",
        {"url": "{main}/go/302?to={refused}/ok"},
        False,
        "connection refused",
        [("main", "GET", "/go/302?to={refused}/ok")],
    ),
    # timeouts
    Case(
        "slow-body-with-keyword",
        {"url": "{main}/slow-body", "contains": "second part"},
        False,
        "timeout after 300ms",
        [("main", "GET", "/slow-body")],
        timeout=0.3,
        repeat=1,
    ),
    Case(
        "slow-body-keyword-in-first-part",
        {"url": "{main}/slow-body", "contains": "first part"},
        True,
        "status 200",
        [("main", "GET", "/slow-body")],
        timeout=0.3,
    ),
    Case(
        "slow-body-no-keyword",
        {"url": "{main}/slow-body"},
        True,
        "status 200",
        [("main", "GET", "/slow-body")],
        timeout=0.3,
    ),
    Case(
        "silent-server",
        {"url": "{main}/"},
        False,
        "timeout after 300ms",
        [("main", "GET", "/")],
        raw=b"",
        raw_hang_up=False,
        timeout=0.3,
        repeat=1,
    ),
    # raw servers: what aiohttp's own server would never send
    Case(
        "body-cut-short-keyword-seen-first",
        {"url": "{main}/", "contains": "OK"},
        True,
        "status 200",
        [("main", "GET", "/")],
        raw=CUT,
    ),
    Case(
        "body-cut-short",
        {"url": "{main}/", "contains": "nope"},
        False,
        "response body cut short",
        [("main", "GET", "/")],
        raw=CUT,
    ),
    Case(
        "body-cut-short-no-keyword",
        {"url": "{main}/"},
        True,
        "status 200",
        [("main", "GET", "/")],
        raw=CUT,
    ),
    Case(
        "chunked-body-cut-short",
        {"url": "{main}/", "contains": "nope"},
        False,
        "response body cut short",
        [("main", "GET", "/")],
        raw=CUT_CHUNKED,
    ),
    Case(
        "early-hints-then-200",
        {"url": "{main}/", "contains": "all OK"},
        True,
        "status 200",
        [("main", "GET", "/")],
        raw=EARLY_HINTS,
    ),
    Case(
        "latin-1-response-header",
        {"url": "{main}/", "contains": "all OK"},
        True,
        "status 200",
        [("main", "GET", "/")],
        raw=LATIN_1_HEADER,
    ),
    Case(
        "http-1.0-body-until-close",
        {"url": "{main}/", "contains": "until"},
        True,
        "status 200",
        [("main", "GET", "/")],
        raw=HTTP_1_0,
    ),
    Case(
        "closed-without-response",
        {"url": "{main}/"},
        False,
        "server closed the connection without a response",
        [("main", "GET", "/")],
        raw=b"",
    ),
    Case(
        "not-http",
        {"url": "{main}/"},
        False,
        "bad response: Bad status line",
        [("main", "GET", "/")],
        raw=b"SSH-2.0-OpenSSH_9.6\r\n",
        raw_hang_up=False,
    ),
]

Way = Literal["lean", "aiohttp", "tls", "lean-tls"]


@dataclass
class Outcome:
    results: list[tuple[bool, str]]
    expiries: list[float | None]  # each probe's tls_expiry
    seen: list[tuple[str, str, str, tuple[tuple[str, str], ...], bytes]]


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"))


async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Read what the client sends first (a TLS ClientHello), then close: a clean FIN in the
    middle of the handshake (unread data would make it a reset)."""
    await reader.read(65536)
    writer.close()


@asynccontextmanager
async def servers(
    case: Case, certs: Certs, seen: list[SeenRequest], tls: bool
) -> AsyncIterator[dict[str, str]]:
    """Start what ``case`` needs; yield each role's base URL."""
    chosen = {"main": case.cert, "other": case.other_cert}
    contexts = {role: getattr(certs, cert, None) if tls else None for role, cert in chosen.items()}
    async with AsyncExitStack() as stack:
        bases: dict[str, str] = {"refused": f"http://127.0.0.1:{refused_port()}"}
        if tls and case.cert == "hang-up":
            port = await stack.enter_async_context(serve_tcp(hang_up))
            bases["main"] = f"http://127.0.0.1:{port}"
        elif tls and case.cert.startswith("refusing-"):
            refuser = tls_refuser(getattr(certs, case.cert.removeprefix("refusing-")))
            port = await stack.enter_async_context(serve_tcp(refuser))
            bases["main"] = f"http://127.0.0.1:{port}"
        elif case.raw is not None:
            handler = raw_responder("main", seen, case.raw, case.raw_hang_up)
            port = await stack.enter_async_context(serve_tcp(handler, contexts["main"]))
            bases["main"] = f"http://127.0.0.1:{port}"
        else:
            for role in ("main", "other"):
                app = make_app(role, seen)
                base = await stack.enter_async_context(serve_app(app, contexts[role]))
                bases[role] = base.replace("https://", "http://")
        if tls:
            for role in ("main", "other"):
                if role in bases:
                    bases[role] = bases[role].replace("http://", "https://")
        for role, context in (("tls", certs.valid), ("plain", None)):
            if "{" + role + "}" in case.settings["url"]:
                app = make_app(role, seen)
                bases[role] = await stack.enter_async_context(serve_app(app, context))
        yield bases


def _roles(text: str, bases: dict[str, str]) -> str:
    for role, base in sorted(bases.items(), key=lambda item: -len(item[1])):
        name = "{" + role.rstrip("@") + "}"
        text = text.replace(base, name).replace(base.split("://", 1)[1], name)
    return text


async def run_way(case: Case, way: Way, certs: Certs) -> Outcome:
    seen: list[SeenRequest] = []
    clients = HttpClients(user_agent=USER_AGENT)
    context = ProbeContext(timeout=case.timeout, http=clients)
    results = []
    expiries: list[float | None] = []
    try:
        async with servers(case, certs, seen, tls=way in ("tls", "lean-tls")) as bases:
            values = {"ca_file": certs.ca_file, **case.settings}
            if case.host != "127.0.0.1":
                bases["main@"] = bases["main"].replace("127.0.0.1", case.host)
            values["url"] = values["url"].format(
                **{**bases, "main": bases.get("main@", bases["main"])}
            )
            settings = HttpSettings.model_validate(values)
            for _ in range(case.repeat):
                via: Via = "lean" if way.startswith("lean") else "aiohttp"
                result = await probe(settings, context, via=via)
                results.append((result.ok, result.reason))
                expiries.append(result.tls_expiry)
    finally:
        await clients.close()
    normalized = [
        (
            request.server,
            request.method,
            _roles(request.target, bases),
            tuple(
                (name, _roles(value, bases))
                for name, value in request.headers
                if name not in case.ignore_headers
            ),
            request.body,
        )
        for request in seen
    ]
    return Outcome(results, expiries, normalized)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
async def test_both_paths_agree(case: Case, certs: Certs) -> None:
    outcomes = {way: await run_way(case, way, certs) for way in case.ways}
    for way, outcome in outcomes.items():
        assert outcome.results == [(case.ok, case.reason)] * case.repeat, way
        hits = [(role, method, target) for role, method, target, _, _ in outcome.seen]
        assert hits == case.hits * case.repeat, way
        for _, _, _, headers, _ in outcome.seen:
            agents = [value for name, value in headers if name == "user-agent"]
            own = {k.lower(): v for k, v in case.settings.get("headers", {}).items()}
            assert agents == [own.get("user-agent", USER_AGENT)], way
    first, *others = outcomes
    for way in others:
        assert outcomes[way].seen == outcomes[first].seen, f"{way} sent other requests than {first}"
