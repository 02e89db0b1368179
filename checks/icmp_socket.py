"""One ICMP socket per address family, shared by every ping the agent sends.

A socket per probe (what icmplib does) costs a socket, a reader and a close per probe, and with
raw sockets worse: every raw ICMP socket receives a copy of every ICMP packet the host gets, so
with N probes in flight each reply is read N times (at 1,000 probes/s the agent dropped replies
and reported hosts down that were up). Here one socket per family carries every echo request;
replies are matched to their waiting ping by (source address, sequence number).

Two kinds of socket, the cheaper first: a datagram ICMP socket ("unprivileged ping", allowed by
``net.ipv4.ping_group_range``), for which the kernel writes the identifier (the socket's own
"port") and hands back only the replies to it; and a raw socket (root or CAP_NET_RAW) as the
fallback, which carries a random identifier of ours, has the kernel pass it echo replies only
(ICMP_FILTER / ICMP6_FILTER) and drops replies with another identifier.
"""

from __future__ import annotations

import asyncio
import random
import socket
import struct
import time
from typing import Literal

from checks.base import roomy_receive_buffer

Mode = Literal["datagram", "raw"]

_ECHO_REQUEST = {socket.AF_INET: 8, socket.AF_INET6: 128}
_ECHO_REPLY = {socket.AF_INET: 0, socket.AF_INET6: 129}
_PROTOCOL = {socket.AF_INET: socket.IPPROTO_ICMP, socket.AF_INET6: socket.IPPROTO_ICMPV6}
_SOL_RAW = 255  # Linux <linux/icmp.h>: ICMP_FILTER is an option of the SOL_RAW level
_ICMP_FILTER = 1
_ICMP6_FILTER = 1  # <netinet/icmp6.h>, level IPPROTO_ICMPV6
_PAYLOAD = b"watchdesk".ljust(56, b".")  # 56 bytes, as ping(8) sends
_RECEIVE = 4096


def open_socket(family: socket.AddressFamily, mode: Mode) -> socket.socket:
    """A non-blocking ICMP socket; PermissionError when this process may not have one."""
    kind = socket.SOCK_DGRAM if mode == "datagram" else socket.SOCK_RAW
    sock = socket.socket(family, kind, _PROTOCOL[family])
    try:
        sock.setblocking(False)
        roomy_receive_buffer(sock)
        if mode == "raw":
            _pass_only_echo_replies(sock, family)
    except OSError:
        sock.close()
        raise
    return sock


def _pass_only_echo_replies(sock: socket.socket, family: socket.AddressFamily) -> None:
    """Have the kernel drop every ICMP type but the echo reply before it reaches the socket."""
    if family == socket.AF_INET:
        blocked = 0xFFFFFFFF & ~(1 << _ECHO_REPLY[family])
        sock.setsockopt(_SOL_RAW, _ICMP_FILTER, struct.pack("=I", blocked))
        return
    words = [0xFFFFFFFF] * 8  # a set bit blocks its type
    reply = _ECHO_REPLY[family]
    words[reply >> 5] &= ~(1 << (reply & 31)) & 0xFFFFFFFF
    sock.setsockopt(socket.IPPROTO_ICMPV6, _ICMP6_FILTER, struct.pack("=8I", *words))


_PAYLOAD_SUM: int = sum(struct.unpack(f"!{len(_PAYLOAD) // 2}H", _PAYLOAD))


def _checksum(kind: int, ident: int, sequence: int) -> int:
    """The Internet checksum of an echo request with our payload (only raw IPv4 needs it:
    the kernel writes it for IPv6 and for datagram sockets)."""
    total = _PAYLOAD_SUM + (kind << 8) + ident + sequence
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


class Pinger:
    """Echo requests out of one shared socket, each reply handed to the ping waiting for it."""

    def __init__(self, family: socket.AddressFamily, mode: Mode) -> None:
        self.family = family
        self.mode = mode
        self._sock = open_socket(family, mode)
        self._ident = random.getrandbits(16)  # raw only; the kernel picks it for datagram
        self._sequence = random.getrandbits(16)
        self._waiting: dict[tuple[str, int], asyncio.Future[float | None]] = {}
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._sock.fileno(), self._readable)

    async def echo(self, address: str, wait: float) -> float | None:
        """Send one echo request to ``address`` (canonical text form); the round trip in
        seconds, or None when no reply came within ``wait``. OSError if it cannot be sent."""
        sequence = self._next_sequence(address)
        kind = _ECHO_REQUEST[self.family]
        checksum = _checksum(kind, self._ident, sequence)
        packet = struct.pack("!BBHHH", kind, 0, checksum, self._ident, sequence) + _PAYLOAD
        key = (address, sequence)
        reply: asyncio.Future[float | None] = self._loop.create_future()
        sent = time.perf_counter()
        self._waiting[key] = reply
        try:
            self._sock.sendto(packet, (address, 0))
        except OSError:
            del self._waiting[key]
            raise
        # a timer that answers None, cheaper than cancelling the waiting task
        timer = self._loop.call_later(wait, _no_reply, reply)
        try:
            received = await reply
        finally:
            timer.cancel()
            del self._waiting[key]
        return None if received is None else received - sent

    def _next_sequence(self, address: str) -> int:
        sequence = (self._sequence + 1) & 0xFFFF
        while (address, sequence) in self._waiting:  # 65,536 in flight to one address: no
            sequence = (sequence + 1) & 0xFFFF
        self._sequence = sequence
        return sequence

    def _readable(self) -> None:
        raw_v4 = self.mode == "raw" and self.family == socket.AF_INET
        wanted = _ECHO_REPLY[self.family]
        while True:
            try:
                data, source = self._sock.recvfrom(_RECEIVE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                continue  # an error queued on the socket: nothing to match, read on
            received = time.perf_counter()
            offset = (data[0] & 0x0F) * 4 if raw_v4 and data else 0  # raw IPv4 has the IP header
            if len(data) < offset + 8 or data[offset] != wanted:
                continue
            ident, sequence = struct.unpack_from("!HH", data, offset + 4)
            if self.mode == "raw" and ident != self._ident:
                continue  # another process's ping: a raw socket sees every reply
            address = source[0]
            if "%" in address:  # an IPv6 link-local source names its interface
                address = address.split("%", 1)[0]
            waiting = self._waiting.get((address, sequence))
            if waiting is not None and not waiting.done():
                waiting.set_result(received)

    async def close(self) -> None:
        if self._sock.fileno() >= 0:
            self._loop.remove_reader(self._sock.fileno())
            self._sock.close()
        for reply in self._waiting.values():
            if not reply.done():
                reply.cancel()


def _no_reply(reply: asyncio.Future[float | None]) -> None:
    if not reply.done():
        reply.set_result(None)
