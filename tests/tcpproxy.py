"""A TCP proxy the test owns, between an agent and PostgreSQL, that can cut the link and heal it.

SCALEOUT.md's partition cases need the database to vanish for one agent only while the others
keep it. The agent connects to ``127.0.0.1:proxy.port`` (its database URL names the proxy),
the proxy forwards every connection to the real server. Two ways to cut, because networks fail
in two ways and an agent must survive both:

* ``cut("reset")``: every open connection is reset (RST, as when a firewall rejects or the
  server's host reboots) and new connections are refused (the port stays bound by a holder
  socket that never listens, so nothing else takes it in the meantime). The driver notices at
  once.
* ``cut("blackhole")``: nothing moves any more (as when a link or a switch dies): open
  connections stall with their bytes held, new connections are accepted by the kernel but
  never answered. The driver notices only by its own timeouts, which is the case where an agent
  must fence itself on its own clock. ``heal()`` lets the held bytes through in order, as TCP
  would after retransmissions, so a connection that outlived the cut carries on.

``heal()`` reopens the listener on the same port. The proxy runs its own asyncio loop in a
thread, so a synchronous test (and agents in other processes) can use it.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, Literal

CutMode = Literal["reset", "blackhole"]
CHUNK = 65536


@dataclass
class ProxyCounts:
    """What went through the proxy: a test asserts on them (an agent reconnected, ...)."""

    accepted: int = 0  # connections accepted from clients
    refused_upstream: int = 0  # connections whose upstream connect failed
    reset: int = 0  # connections reset by a cut
    bytes_up: int = 0  # client -> server
    bytes_down: int = 0  # server -> client


class TcpProxy:
    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.counts = ProxyCounts()
        self.port = 0
        self.state: Literal["open", "reset", "blackhole"] = "open"
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._holder: socket.socket | None = None
        self._server: asyncio.Server | None = None
        self._flowing: asyncio.Event | None = None
        self._pairs: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._pending: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    # --- control, from any thread ------------------------------------------------------------

    def start(self) -> TcpProxy:
        self._thread.start()
        self._call(self._start())
        return self

    def cut(self, mode: CutMode = "reset") -> None:
        self._call(self._cut(mode))

    def heal(self) -> None:
        self._call(self._heal())

    def close(self) -> None:
        if not self._thread.is_alive():
            return
        self._call(self._close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    @property
    def open_connections(self) -> int:
        return len(self._pairs)

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, coro: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=10)

    # --- inside the proxy's loop -------------------------------------------------------------

    async def _start(self) -> None:
        self._flowing = asyncio.Event()
        self._flowing.set()
        holder = socket.socket()
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        holder.bind(("127.0.0.1", 0))
        self._holder = holder
        self.port = int(holder.getsockname()[1])
        await self._listen()

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(
            self._client, "127.0.0.1", self.port, reuse_address=True, reuse_port=True
        )

    async def _cut(self, mode: CutMode) -> None:
        assert self._flowing is not None
        if mode == "reset":
            self.state = "reset"
            if self._server is not None:
                self._server.close()
                self._server = None
            for client, server in list(self._pairs):
                self.counts.reset += 1
                _reset(client)
                _reset(server)
            self._pairs.clear()
            for client in list(self._pending):
                _reset(client)
            self._pending.clear()
            self._flowing.set()  # nothing is held: let stalled pipes see their sockets gone
        else:
            self.state = "blackhole"
            self._flowing.clear()

    async def _heal(self) -> None:
        assert self._flowing is not None
        if self._server is None:
            await self._listen()
        self.state = "open"
        self._flowing.set()

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for client, server in list(self._pairs):
            client.close()
            server.close()
        for client in list(self._pending):
            client.close()
        # The pipes, and the clients a blackhole holds before their upstream connect: ended
        # here, not destroyed pending when the loop closes.
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)
        if self._holder is not None:
            self._holder.close()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert self._flowing is not None
        self.counts.accepted += 1
        self._pending.add(writer)
        try:
            await self._flowing.wait()  # a blackholed link answers nothing, not even hello
            if self.state == "reset" or writer.is_closing():
                _reset(writer)
                return
            try:
                up_reader, up_writer = await asyncio.open_connection(*self.upstream)
            except OSError:
                self.counts.refused_upstream += 1
                _reset(writer)
                return
        finally:
            self._pending.discard(writer)
        pair = (writer, up_writer)
        self._pairs.add(pair)
        for source, sink, up in ((reader, up_writer, True), (up_reader, writer, False)):
            task = asyncio.create_task(self._pipe(source, sink, up, pair))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(
        self,
        source: asyncio.StreamReader,
        sink: asyncio.StreamWriter,
        up: bool,
        pair: tuple[asyncio.StreamWriter, asyncio.StreamWriter],
    ) -> None:
        assert self._flowing is not None
        try:
            while True:
                await self._flowing.wait()
                data = await source.read(CHUNK)
                # Read during a cut: hold it until the link heals (or is reset meanwhile).
                await self._flowing.wait()
                if not data or pair not in self._pairs:
                    break
                if up:
                    self.counts.bytes_up += len(data)
                else:
                    self.counts.bytes_down += len(data)
                sink.write(data)
                await sink.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            if pair in self._pairs:
                self._pairs.discard(pair)
                for writer in pair:
                    writer.close()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST rather than FIN: what a rejecting firewall or a dead peer's host does."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
