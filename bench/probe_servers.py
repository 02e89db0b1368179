"""Local targets for bench/probe_kinds.py, one kind per process (their CPU is not the prober's).

    python bench/probe_servers.py KIND PORT DIRECTORY

KIND is ``http`` (HTTP/1.1, 200 "ok", closes after the response: what a prober with a fresh
connection per probe sends ``Connection: close`` for), ``https`` (the same over TLS, a trustme
certificate for 127.0.0.1 whose CA is written to DIRECTORY/ca.pem), ``tcp`` (accepts and
closes) or ``dns`` (UDP: an A record for any name, the wire answer built once per question).
Prints READY once listening; on SIGTERM prints one JSON line of counters and exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import resource
import signal
import socket
import ssl
import sys
from pathlib import Path
from typing import cast

_RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n"
    b"Connection: close\r\n\r\nok"
)
COUNTS = {"connections": 0, "requests": 0}


class _Http(asyncio.Protocol):
    def __init__(self) -> None:
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        COUNTS["connections"] += 1

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if b"\r\n\r\n" in self.buffer and self.transport is not None:
            COUNTS["requests"] += 1
            self.transport.write(_RESPONSE)
            self.transport.close()
            self.transport = None


class _Tcp(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        COUNTS["connections"] += 1
        transport.close()


class _Dns(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.answers: dict[bytes, bytes] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        COUNTS["requests"] += 1
        answer = self.answers.get(data[2:])
        if answer is None:
            answer = self.answers[data[2:]] = _answer(data)[2:]
        assert self.transport is not None
        self.transport.sendto(data[:2] + answer, addr)


def _answer(query: bytes) -> bytes:
    import dns.message
    import dns.rrset

    message = dns.message.from_wire(query)
    response = dns.message.make_response(message)
    name = message.question[0].name
    response.answer.append(dns.rrset.from_text_list(name, 60, "IN", "A", ["192.0.2.10"]))
    wire: bytes = response.to_wire()
    return wire


def _tls_context(directory: Path) -> ssl.SSLContext:
    import trustme

    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(directory / "ca.pem"))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


async def serve(kind: str, port: int, directory: Path) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    closers = []
    if kind == "dns":
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        # room for a burst of queries: the agent sends its due probes all at once
        for option in (33, socket.SO_RCVBUF):  # SO_RCVBUFFORCE (root), else capped
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, option, 8 * 1024 * 1024)
                break
        sock.bind(("127.0.0.1", port))
        transport, _ = await loop.create_datagram_endpoint(_Dns, sock=sock)
        closers.append(transport.close)
    else:
        factory = _Tcp if kind == "tcp" else _Http
        context = _tls_context(directory) if kind == "https" else None
        server = await loop.create_server(
            factory, "127.0.0.1", port, ssl=context, backlog=4096, reuse_port=True
        )
        closers.append(server.close)
    print("READY", flush=True)
    await stop.wait()
    for close in closers:
        close()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({**COUNTS, "cpu_seconds": usage.ru_utime + usage.ru_stime}), flush=True)


def main(argv: list[str]) -> int:
    kind, port, directory = argv[0], int(argv[1]), Path(argv[2])
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(kind, port, directory))
    else:
        uvloop.run(serve(kind, port, directory))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
