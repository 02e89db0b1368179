"""Real servers for the probe tests: HTTP(S) apps, TCP listeners, a DNS server, certificates.

Everything listens on 127.0.0.1 on a port the kernel picks.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import ssl
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset
import trustme
from aiohttp import web

# --- certificates --------------------------------------------------------------------------


@dataclass(frozen=True)
class Certs:
    """Server-side SSL contexts for each case, and the CA file a probe trusts."""

    ca_file: str
    valid: ssl.SSLContext  # 127.0.0.1, localhost; expires in 90 days (and 1 hour)
    expiring: ssl.SSLContext  # expires in 3 days (and 1 hour)
    expired: ssl.SSLContext  # expired 2 days (and 1 hour) ago
    self_signed: ssl.SSLContext  # not issued by the trusted CA: its own issuer
    named: ssl.SSLContext  # only for "watchdesk.test", to exercise SNI / server_name
    no_shared_cipher: ssl.SSLContext  # a valid certificate, but no cipher a client offers
    old_tls: ssl.SSLContext  # a valid certificate, but TLS 1.1 at most
    valid_until: dt.datetime
    expiring_until: dt.datetime
    expired_at: dt.datetime


def _server_context(cert: trustme.LeafCert) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    return context


def _no_shared_cipher(cert: trustme.LeafCert) -> ssl.SSLContext:
    """TLS 1.2 with only RSA key exchange, which Python's clients never offer."""
    context = _server_context(cert)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers("AES128-SHA")
    return context


def _old_tls(cert: trustme.LeafCert) -> ssl.SSLContext:
    context = _server_context(cert)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the point of this context
        context.minimum_version = ssl.TLSVersion.TLSv1
        context.maximum_version = ssl.TLSVersion.TLSv1_1
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    return context


def make_certs(directory: Path) -> Certs:
    ca = trustme.CA()
    ca_file = directory / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    hour = dt.timedelta(hours=1)
    valid_until = now + dt.timedelta(days=90) + hour
    expiring_until = now + dt.timedelta(days=3) + hour
    expired_at = now - dt.timedelta(days=2) - hour
    ips = ("127.0.0.1", "localhost")

    rogue = trustme.CA()  # a self-signed certificate: the rogue CA's own one
    rogue_cert = directory / "self-signed.pem"
    rogue_key = directory / "self-signed.key"
    rogue.cert_pem.write_to_path(str(rogue_cert))
    rogue.private_key_pem.write_to_path(str(rogue_key))
    self_signed = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    self_signed.load_cert_chain(rogue_cert, rogue_key)

    return Certs(
        ca_file=str(ca_file),
        valid=_server_context(ca.issue_cert(*ips, not_after=valid_until)),
        expiring=_server_context(ca.issue_cert(*ips, not_after=expiring_until)),
        expired=_server_context(ca.issue_cert(*ips, not_after=expired_at)),
        self_signed=self_signed,
        named=_server_context(ca.issue_cert("watchdesk.test")),
        no_shared_cipher=_no_shared_cipher(ca.issue_cert(*ips, not_after=valid_until)),
        old_tls=_old_tls(ca.issue_cert(*ips, not_after=valid_until)),
        valid_until=valid_until,
        expiring_until=expiring_until,
        expired_at=expired_at,
    )


# --- HTTP ------------------------------------------------------------------------------------


@asynccontextmanager
async def serve_app(
    app: web.Application, ssl_context: ssl.SSLContext | None = None
) -> AsyncIterator[str]:
    """Run ``app``; yield its base URL, e.g. "http://127.0.0.1:40123"."""
    runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    await site.start()
    port = runner.addresses[0][1]
    scheme = "https" if ssl_context else "http"
    try:
        yield f"{scheme}://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


# --- TCP -------------------------------------------------------------------------------------

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def serve_tcp(
    handler: Handler, ssl_context: ssl.SSLContext | None = None, port: int = 0
) -> AsyncIterator[int]:
    """A plain asyncio server (TLS when ``ssl_context`` is given) on ``port`` (0: the kernel
    picks one); yields its port.

    On the way out, every connection still open is closed and its handler awaited.
    """
    tasks: set[asyncio.Task[object]] = set()
    writers: set[asyncio.StreamWriter] = set()

    async def tracked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            tasks.add(task)
        writers.add(writer)
        try:
            await handler(reader, writer)
        except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            pass  # 3.11's start_server logs a cancelled handler as an error: end quietly
        finally:
            writer.close()

    server = await asyncio.start_server(tracked, "127.0.0.1", port, ssl=ssl_context)
    port = server.sockets[0].getsockname()[1]
    try:
        yield port
    finally:
        server.close()
        for writer in writers:
            writer.transport.abort()
        _, pending = await asyncio.wait(tasks, timeout=1) if tasks else (set(), set())
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        with suppress(TimeoutError):
            async with asyncio.timeout(1):
                await server.wait_closed()


def tls_refuser(context: ssl.SSLContext) -> Handler:
    """A serve_tcp handler for a plain listener that speaks TLS with ``context`` until the
    handshake fails, and then sends its alert (asyncio's own TLS servers drop it unsent)."""

    async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = context.wrap_bio(incoming, outgoing, server_side=True)
        while data := await reader.read(65536):
            incoming.write(data)
            try:
                tls.do_handshake()
            except ssl.SSLWantReadError:
                writer.write(outgoing.read())
                continue
            except ssl.SSLError:
                writer.write(outgoing.read())
                await writer.drain()
            return

    return refuse


async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Accept, then never say a word (until the client goes away)."""
    await reader.read()


def refused_port() -> int:
    """A port nothing listens on: bound, read, closed."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@contextmanager
def unaccepted_port() -> Iterator[int]:
    """A listener whose accept queue is full: a new connect is never answered (SYN dropped)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(3):
        filler = socket.socket()
        filler.setblocking(False)
        with suppress(BlockingIOError):
            filler.connect(("127.0.0.1", port))
        fillers.append(filler)
    try:
        yield port
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


# --- DNS -------------------------------------------------------------------------------------


class FakeDns(asyncio.DatagramProtocol):
    """Answers from a table of (name, type) -> record texts, over UDP (and TCP: ``answer``).

    A name in the table with no record of the asked type: its CNAME chain followed in the
    table (as a recursive server does), else NOERROR and no answer. A name not in it:
    NXDOMAIN. Names in ``silent`` get no reply; in ``servfail`` SERVFAIL, in ``refused``
    REFUSED; in ``truncated`` an empty answer with TC set over UDP (the whole one over TCP);
    in ``mismatched`` first an answer to another question with the same ID, then the real one.
    """

    def __init__(
        self,
        records: dict[tuple[str, str], list[str]],
        silent: Iterable[str] = (),
        servfail: Iterable[str] = (),
        refused: Iterable[str] = (),
        truncated: Iterable[str] = (),
        mismatched: Iterable[str] = (),
    ) -> None:
        self.records = {(name.lower().rstrip("."), kind): v for (name, kind), v in records.items()}
        self.names = {name for name, _ in self.records}
        self.silent = {name.lower() for name in silent}
        self.servfail = {name.lower() for name in servfail}
        self.refused = {name.lower() for name in refused}
        self.truncated = {name.lower() for name in truncated}
        self.mismatched = {name.lower() for name in mismatched}
        self.queries = 0
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def answer(self, data: bytes, udp: bool) -> list[bytes]:
        """The messages sent back for the query ``data`` (none: silence)."""
        self.queries += 1
        query = dns.message.from_wire(data)
        question = query.question[0]
        name = question.name.to_text().lower().rstrip(".")
        if name in self.silent:
            return []
        response = dns.message.make_response(query)
        kind = dns.rdatatype.to_text(question.rdtype)
        if name in self.servfail:
            response.set_rcode(dns.rcode.SERVFAIL)
        elif name in self.refused:
            response.set_rcode(dns.rcode.REFUSED)
        elif name not in self.names:
            response.set_rcode(dns.rcode.NXDOMAIN)
        elif udp and name in self.truncated:
            response.flags |= dns.flags.TC
        else:
            owner = question.name
            for _ in range(8):
                key = (owner.to_text().lower().rstrip("."), kind)
                alias = (key[0], "CNAME")
                if values := self.records.get(key):
                    response.answer.append(dns.rrset.from_text_list(owner, 60, "IN", kind, values))
                    break
                if kind == "CNAME" or not (targets := self.records.get(alias)):
                    break
                response.answer.append(dns.rrset.from_text_list(owner, 60, "IN", "CNAME", targets))
                owner = dns.name.from_text(targets[0])
        messages = [response.to_wire()]
        if name in self.mismatched:
            other = dns.message.make_query("other." + name, question.rdtype)
            other.id = query.id
            messages.insert(0, dns.message.make_response(other).to_wire())
        return messages

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        assert self.transport is not None
        for message in self.answer(data, udp=True):
            self.transport.sendto(message, addr)


@asynccontextmanager
async def serve_dns(
    records: dict[tuple[str, str], list[str]],
    silent: Iterable[str] = (),
    servfail: Iterable[str] = (),
    refused: Iterable[str] = (),
    truncated: Iterable[str] = (),
    mismatched: Iterable[str] = (),
) -> AsyncIterator[int]:
    """Run a FakeDns on 127.0.0.1, UDP and TCP on the same port; yield the port."""
    loop = asyncio.get_running_loop()
    fake = FakeDns(records, silent, servfail, refused, truncated, mismatched)

    async def over_tcp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        length = int.from_bytes(await reader.readexactly(2), "big")
        for message in fake.answer(await reader.readexactly(length), udp=False):
            writer.write(len(message).to_bytes(2, "big") + message)
        await writer.drain()

    async with AsyncExitStack() as stack:
        for _ in range(20):  # a free UDP port whose TCP twin is free too
            transport, _ = await loop.create_datagram_endpoint(
                lambda: fake, local_addr=("127.0.0.1", 0)
            )
            stack.callback(transport.close)
            port: int = transport.get_extra_info("sockname")[1]
            try:
                await stack.enter_async_context(serve_tcp(over_tcp, port=port))
            except OSError:
                continue
            break
        yield port


# --- HTTP requests as a server saw them --------------------------------------------------------


@dataclass(frozen=True)
class SeenRequest:
    """One request as it reached a server: what the parity tests compare between clients."""

    server: str  # the name the test gave the server, e.g. "main"
    method: str
    target: str  # path and query, as sent
    headers: tuple[tuple[str, str], ...]  # (lower-case name, value), sorted; values as sent
    body: bytes


def _header_pairs(raw: Iterable[tuple[bytes, bytes]]) -> tuple[tuple[str, str], ...]:
    # UTF-8 with surrogateescape keeps any byte a client sent (latin-1 or UTF-8) comparable
    return tuple(
        sorted(
            (name.decode("ascii").lower(), value.decode("utf-8", "surrogateescape"))
            for name, value in raw
        )
    )


def recording(name: str, seen: list[SeenRequest]) -> Callable[..., Awaitable[web.StreamResponse]]:
    """An aiohttp middleware that appends every request (body included) to ``seen``."""

    @web.middleware
    async def record(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        body = await request.read()
        headers = _header_pairs(request.raw_headers)
        seen.append(SeenRequest(name, request.method, request.raw_path, headers, body))
        return await handler(request)

    return record


def raw_responder(
    name: str, seen: list[SeenRequest], response: bytes, hang_up: bool = True
) -> Handler:
    """A serve_tcp handler: reads one request (head and Content-Length body), records it and
    sends ``response`` as is; then hangs up, or (``hang_up=False``) waits for the client to."""

    async def respond(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head[:-4].split(b"\r\n")
        method, target, _ = lines[0].decode("ascii").split(" ", 2)
        raw = [tuple(line.split(b":", 1)) for line in lines[1:]]
        pairs = [(name_.strip(), value.strip()) for name_, value in raw]
        length = next((int(v) for n, v in pairs if n.lower() == b"content-length"), 0)
        body = await reader.readexactly(length) if length else b""
        seen.append(SeenRequest(name, method, target, _header_pairs(pairs), body))
        writer.write(response)
        await writer.drain()
        if not hang_up:
            await reader.read()

    return respond


async def chunked(request: web.Request) -> web.StreamResponse:
    """A chunked body in three parts: "all systems OK"."""
    response = web.StreamResponse()
    response.enable_chunked_encoding()
    await response.prepare(request)
    for part in (b"all ", b"systems ", b"OK"):
        await response.write(part)
    await response.write_eof()
    return response
