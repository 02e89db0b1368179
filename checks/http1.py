"""One HTTP/1.1 exchange over one fresh connection, plain or TLS, as lean as a probe can be.

aiohttp costs about 0.9 ms of CPU per request on a fresh connection, which caps an agent at
roughly a thousand HTTP probes per second per core. A health check needs far less: send one
request with ``Connection: close``, read the status line and headers, and at most the first
MiB of the body. ``checks.http_lean`` uses this for every target without keep-alive (following
redirects itself, one fresh connection per hop; TLS through ``checks.tls_layer``) and aiohttp
for the rest. Both must read a response the same way: informational 1xx heads are skipped, a
body that ends before its Content-Length or last chunk is cut short, header values are UTF-8
(undecodable bytes kept as surrogates), and of repeated headers the first counts.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import cast

import aiohappyeyeballs

from checks.tls_layer import TlsLayer

MAX_HEADER = 64 * 1024
HAPPY_EYEBALLS_DELAY = 0.25  # aiohttp's default


class ServerClosed(Exception):
    """The connection ended before a complete status line and headers arrived."""


class BadResponse(Exception):
    """What came back is not HTTP."""


class CutShort(Exception):
    """The connection ended before the whole body (its Content-Length or last chunk) arrived."""


# Given the status and headers of a response, whether to skip reading its body.
SkipBody = Callable[[int, dict[str, str]], bool]


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: dict[str, str]
    body: bytes
    truncated: bool
    session: ssl.SSLSession | None = None  # the TLS session, to resume on the next probe


@dataclass(frozen=True, slots=True)
class Tls:
    """How to speak TLS to the server: the shared context, the name sent as SNI and verified,
    a session to resume (None: a full handshake), whether to hand the session back (reading it
    costs as much as a fifth of a handshake: only for targets that resume), and where the
    server's leaf certificate (DER) goes once the handshake is done, whatever happens to the
    request after it."""

    context: ssl.SSLContext
    server_hostname: str
    session: ssl.SSLSession | None = None
    certificates: list[bytes] | None = None
    keep_session: bool = False


class _Exchange(asyncio.Protocol):
    def __init__(
        self,
        request: bytes,
        want_body: bool,
        limit: int,
        done: asyncio.Future[Response],
        skip_body: SkipBody | None = None,
        stop_at: bytes | None = None,
    ) -> None:
        self._request = request
        self._stop_at = stop_at
        self._want_body = want_body
        self._skip_body = skip_body
        self._limit = limit
        self._done = done
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None
        self._status = 0
        self._headers: dict[str, str] = {}
        self._body_start = -1
        self._length: int | None = None
        self._chunked = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but behave as one.
        self._transport = cast(asyncio.Transport, transport)
        self._transport.write(self._request)

    def data_received(self, data: bytes) -> None:
        if self._done.done():
            return
        self._buffer += data
        while self._body_start < 0:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > MAX_HEADER or not self._buffer.startswith(
                    b"HTTP/"[: len(self._buffer)]
                ):
                    self._fail(BadResponse("Bad status line"))
                return
            try:
                self._parse_head(bytes(self._buffer[:end]))
            except BadResponse as error:
                self._fail(error)
                return
            if 100 <= self._status < 200 and self._status != 101:
                # informational (100 Continue, 103 Early Hints): the real response follows
                del self._buffer[: end + 4]
                self._headers = {}
                continue
            self._body_start = end + 4
            if not self._want_body or (
                self._skip_body is not None and self._skip_body(self._status, self._headers)
            ):
                self._finish(b"", truncated=False)
                return
        self._maybe_complete()

    def _parse_head(self, head: bytes) -> None:
        lines = head.split(b"\r\n")
        parts = lines[0].split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
            raise BadResponse("Bad status line")
        self._status = int(parts[1])
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep:
                raise BadResponse("Bad header line")
            key = name.strip().lower().decode("utf-8", "surrogateescape")
            self._headers.setdefault(key, value.strip().decode("utf-8", "surrogateescape"))
        length = self._headers.get("content-length")
        self._chunked = "chunked" in self._headers.get("transfer-encoding", "").lower()
        if self._status in (204, 304) or 100 <= self._status < 200:
            self._length = 0
        elif length is not None and length.isdigit() and not self._chunked:
            self._length = int(length)
        else:
            self._length = None

    def _maybe_complete(self) -> None:
        raw = bytes(self._buffer[self._body_start :])
        if self._chunked:
            body, complete = _dechunk(raw)
            if complete or len(body) >= self._limit:
                self._finish(body, truncated=len(body) > self._limit or (not complete))
            elif self._stop_at is not None and self._stop_at in body:
                self._finish(body, truncated=True)
            return
        if self._length is not None and len(raw) >= self._length:
            self._finish(raw[: self._length], truncated=False)
        elif len(raw) >= self._limit:
            self._finish(raw, truncated=True)
        elif self._stop_at is not None and self._stop_at in raw:
            self._finish(raw, truncated=True)  # seen what was looked for: the rest can wait

    def _finish(self, body: bytes, truncated: bool) -> None:
        if truncated:
            body = body[: self._limit]
        if not self._done.done():
            self._done.set_result(Response(self._status, self._headers, body, truncated))
        if self._transport is not None:
            self._transport.close()

    def _fail(self, error: Exception) -> None:
        if not self._done.done():
            self._done.set_exception(error)
        if self._transport is not None:
            self._transport.abort()

    def eof_received(self) -> bool | None:
        self._end()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None and not self._done.done() and self._body_start < 0:
            self._done.set_exception(exc)
            return
        self._end()

    def _end(self) -> None:
        if self._done.done():
            return
        if self._body_start < 0:
            if self._buffer:
                self._fail(BadResponse("Bad status line"))
            else:
                self._fail(ServerClosed())
            return
        raw = bytes(self._buffer[self._body_start :])
        if self._chunked:
            body, complete = _dechunk(raw)
        else:
            body, complete = raw, self._length is None or len(raw) >= self._length
        if not complete and len(body) < self._limit:
            self._fail(CutShort())
            return
        self._finish(body, truncated=len(body) > self._limit)


def _dechunk(raw: bytes) -> tuple[bytes, bool]:
    """Decode as much of a chunked body as has arrived; True once the last chunk was seen."""
    out = bytearray()
    position = 0
    while True:
        line_end = raw.find(b"\r\n", position)
        if line_end < 0:
            return bytes(out), False
        size_text = raw[position:line_end].split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            return bytes(out), True
        if size == 0:
            return bytes(out), True
        start = line_end + 2
        if len(raw) < start + size:
            out += raw[start:]
            return bytes(out), False
        out += raw[start : start + size]
        position = start + size + 2


async def exchange(
    addresses: Sequence[str],
    port: int,
    request: bytes,
    want_body: bool,
    limit: int,
    skip_body: SkipBody | None = None,
    stop_at: bytes | None = None,
    tls: Tls | None = None,
) -> Response:
    """Connect to one of ``addresses`` (tried as aiohttp does: happy eyeballs, 250 ms apart),
    handshake when ``tls`` is given, send ``request``, return the response head (and the first
    ``limit`` bytes of the body when ``want_body``, unless ``skip_body`` says no for this
    response, e.g. a redirect to follow). With ``stop_at``, reading stops as soon as the body
    holds it (``truncated`` is then true). Connection errors are OSError, a failed handshake
    ssl.SSLError; the request is sent once, whatever happens."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[Response] = loop.create_future()
    layer: TlsLayer | None = None

    def protocol() -> asyncio.Protocol:
        nonlocal layer
        inner = _Exchange(request, want_body, limit, done, skip_body, stop_at)
        if tls is None:
            return inner
        layer = TlsLayer(tls.context, tls.server_hostname, inner, tls.session, tls.certificates)
        return layer

    if len(addresses) == 1:
        transport, _ = await loop.create_connection(protocol, addresses[0], port)
    else:
        sock = await aiohappyeyeballs.start_connection(
            [_addr_info(address, port) for address in addresses],
            happy_eyeballs_delay=HAPPY_EYEBALLS_DELAY,
        )
        transport, _ = await loop.create_connection(protocol, sock=sock)
    try:
        response = await done
    finally:
        transport.close()
    if layer is None or tls is None or not tls.keep_session:
        return response
    session = layer.ssl_object.session
    return Response(response.status, response.headers, response.body, response.truncated, session)


def _addr_info(address: str, port: int) -> aiohappyeyeballs.AddrInfoType:
    if ":" in address:
        return (socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, port, 0, 0))
    return (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, port))
