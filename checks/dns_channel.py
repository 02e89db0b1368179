"""One UDP socket per set of nameservers (and address family), shared by every dns probe that
asks them, and the resolver's loop over the servers, as dnspython's resolver runs it.

dnspython's resolver opens a socket, builds a resolution and parses the whole response with
its general parser for each query: about 0.2 ms of CPU per probe. Here a probe costs a send,
one receive on the shared socket (matched by server, query ID and question) and the few bytes
``checks.dns_wire`` reads. What a probe concludes is what dnspython's resolver concludes: each
server gets ``ATTEMPT`` seconds a try and the servers are tried in turn, with dnspython's
backoff between rounds, until the probe's own deadline; a truncated answer is asked again over
TCP; NXDOMAIN ends the resolution; another error code, an unreadable response or a refused TCP
connection takes that server out of the round, and when none is left the resolution fails with
the last server's error.
"""

from __future__ import annotations

import asyncio
import ipaddress
import secrets
import socket

from checks import dns_wire
from checks.base import roomy_receive_buffer

ATTEMPT = 2.0  # dnspython's Resolver.timeout: one server's time for one try
_BACKOFF = (0.1, 2.0)  # dnspython's pause after a round with no answer: doubling to a cap

Server = tuple[str, int]


class NxDomain(Exception):
    """The name does not exist."""


class NoNameservers(Exception):
    """Every server failed; ``errors`` is (server, what it answered) for each, last one last."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        super().__init__(errors)
        self.errors = errors


class Channel(asyncio.DatagramProtocol):
    """The shared sockets of one nameserver set and the queries waiting on them."""

    def __init__(self, servers: tuple[Server, ...], attempt: float = ATTEMPT) -> None:
        self.attempt = attempt
        self.servers = tuple(
            (ipaddress.ip_address(host).compressed, port) for host, port in servers
        )
        self._transports: dict[int, asyncio.Future[asyncio.DatagramTransport]] = {}
        self._waiting: dict[tuple[str, int, int], tuple[asyncio.Future[bytes | None], bytes]] = {}

    async def resolve(self, qname: bytes, rdtype: int) -> dns_wire.Reply:
        """The answer to (qname, rdtype) of the first server with one; the caller bounds the
        time (no answer at all: this keeps asking)."""
        sent = dns_wire.query(qname, rdtype)
        servers = list(self.servers)
        errors: list[tuple[str, str]] = []
        backoff = _BACKOFF[0]
        while True:
            for server in tuple(servers):
                try:
                    reply = await self._ask(server, sent, qname, rdtype)
                except (OSError, EOFError, dns_wire.BadResponse) as exc:
                    errors.append((server[0], str(exc) or type(exc).__name__))
                    servers.remove(server)
                    continue
                if reply is None:
                    continue  # no reply in time: the next server, and this one next round
                if reply.rcode == dns_wire.NOERROR:
                    return reply
                if reply.rcode == dns_wire.NXDOMAIN:
                    raise NxDomain()
                errors.append((server[0], dns_wire.RCODES.get(reply.rcode, str(reply.rcode))))
                servers.remove(server)
            if not servers:
                raise NoNameservers(errors)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, _BACKOFF[1])

    async def _ask(
        self, server: Server, sent: bytes, qname: bytes, rdtype: int
    ) -> dns_wire.Reply | None:
        data = await self._udp(server, sent)
        if data is None:
            return None
        reply = dns_wire.parse(data, qname, rdtype)
        if not reply.truncated:
            return reply
        try:
            async with asyncio.timeout(self.attempt):
                data = await _tcp(server, sent)
        except TimeoutError:
            return None
        reply = dns_wire.parse(data, qname, rdtype)
        if reply.truncated:
            raise dns_wire.BadResponse("truncated over TCP")
        return reply

    async def _udp(self, server: Server, sent: bytes) -> bytes | None:
        transport = await self._transport(socket.AF_INET6 if ":" in server[0] else socket.AF_INET)
        loop = asyncio.get_running_loop()
        ident = secrets.randbits(16)
        while (*server, ident) in self._waiting:
            ident = secrets.randbits(16)
        key = (*server, ident)
        reply: asyncio.Future[bytes | None] = loop.create_future()
        self._waiting[key] = (reply, sent)
        transport.sendto(ident.to_bytes(2, "big") + sent, server)
        timer = loop.call_later(self.attempt, _no_reply, reply)
        try:
            return await reply
        finally:
            timer.cancel()
            del self._waiting[key]

    async def _transport(self, family: int) -> asyncio.DatagramTransport:
        made = self._transports.get(family)
        if made is None:
            made = asyncio.get_running_loop().create_future()
            self._transports[family] = made
            try:
                sock = socket.socket(family, socket.SOCK_DGRAM)
                try:
                    sock.setblocking(False)
                    roomy_receive_buffer(sock)
                    sock.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", 0))
                except OSError:
                    sock.close()
                    raise
                transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
                    lambda: self, sock=sock
                )
            except OSError as exc:
                del self._transports[family]
                made.set_exception(exc)
                made.exception()  # retrieved: the waiters see it, nobody else needs to
                raise
            made.set_result(transport)
        return await asyncio.shield(made)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        if len(data) < 12:
            return
        waiting = self._waiting.get((str(addr[0]), int(addr[1]), int.from_bytes(data[:2], "big")))
        if waiting is None:
            return
        reply, sent = waiting
        if not reply.done() and dns_wire.is_response_to(data, sent):
            reply.set_result(data)

    def error_received(self, exc: Exception) -> None:
        """An ICMP error for some earlier datagram: the query it belongs to times out."""

    async def close(self) -> None:
        for made in self._transports.values():
            if made.done() and not made.cancelled() and made.exception() is None:
                made.result().close()
        self._transports.clear()
        for reply, _ in self._waiting.values():
            if not reply.done():
                reply.cancel()


def _no_reply(reply: asyncio.Future[bytes | None]) -> None:
    if not reply.done():
        reply.set_result(None)


async def _tcp(server: Server, sent: bytes) -> bytes:
    """One query over TCP (for a truncated UDP answer), with a fresh ID."""
    reader, writer = await asyncio.open_connection(*server)
    try:
        message = secrets.randbits(16).to_bytes(2, "big") + sent
        writer.write(len(message).to_bytes(2, "big") + message)
        length = int.from_bytes(await reader.readexactly(2), "big")
        data = await reader.readexactly(length)
    finally:
        writer.close()
    if data[:2] != message[:2] or not dns_wire.is_response_to(data, sent):
        raise dns_wire.BadResponse("the TCP answer is not to our question")
    return data
