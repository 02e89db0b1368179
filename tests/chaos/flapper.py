"""TCP targets whose up/down a test controls, with the real toggle times as ground truth.

Each target is a port on 127.0.0.1. Up: a listening socket that accepts and closes every
connection (a TCP probe succeeds). Down: no socket at all (connection refused). The flapper runs
in a thread with its own asyncio loop, plays a schedule of toggles against the wall clock and
records, for every toggle, the ``time.time()`` at which the socket really opened or closed, and
the time of every connection it accepted (the agent's successful probes, for diagnosis).

While a target is down its port stays bound by a *holder* socket that never listens: connections
are still refused, but nothing else (another test's flapper picking ports, say) can take the port
in the meantime. The listening socket shares the port with the holder through SO_REUSEPORT.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Toggle:
    """Target ``target`` goes up or down ``offset`` seconds after the schedule's start."""

    offset: float
    target: str
    up: bool


def pick_ports(count: int, low: int = 20000, high: int = 30000) -> list[int]:
    """Free ports below the ephemeral range (32768-60999 on Linux), so that no outgoing
    connection takes one while its target is down, from a random start (runs side by side
    rarely meet). Probed without SO_REUSEADDR: a port another flapper holds is not free."""
    start = random.SystemRandom().randrange(low, high)
    ports: list[int] = []
    for step in range(high - low):
        port = low + (start - low + step) % (high - low)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        ports.append(port)
        if len(ports) == count:
            return ports
    raise RuntimeError(f"not {count} free ports in {low}-{high}")


def _reusable() -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    return sock


class Flapper:
    def __init__(self, ports: dict[str, int]) -> None:
        self.ports = dict(ports)
        self.toggles: dict[str, list[tuple[float, bool]]] = {name: [] for name in ports}
        self.accepts: dict[str, list[float]] = {name: [] for name in ports}
        # (planned wall time, actual wall time) of every toggle played: the flapper's lag.
        self.lag: list[float] = []
        self.errors: list[str] = []
        self._sockets: dict[str, socket.socket] = {}
        self._holders: dict[str, socket.socket] = {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="flapper", daemon=True)
        self._pending = 0
        self._done = threading.Event()
        self._done.set()

    # --- control (any thread) ---------------------------------------------------------------

    def start(self) -> None:
        """Every port held, every target up, then the loop starts."""
        for name, port in self.ports.items():
            holder = _reusable()
            holder.bind(("127.0.0.1", port))
            self._holders[name] = holder
        for name in self.ports:
            self._up(name)
        self._thread.start()

    def play(self, toggles: Iterable[Toggle], start: float) -> None:
        """Schedule ``toggles`` against the wall clock, ``offset`` seconds after ``start``."""
        items = sorted(toggles, key=lambda t: t.offset)
        self._done.clear()
        self._pending = len(items)
        if not items:
            self._done.set()
            return

        def schedule() -> None:
            loop_now, wall_now = self._loop.time(), time.time()
            for toggle in items:
                planned = start + toggle.offset
                self._loop.call_at(loop_now + (planned - wall_now), self._apply, toggle, planned)

        self._loop.call_soon_threadsafe(schedule)

    def wait_done(self, timeout: float) -> bool:
        return self._done.wait(timeout)

    def all_up(self) -> bool:
        return all(toggles and toggles[-1][1] for toggles in self.toggles.values())

    def stop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
        for name in list(self._sockets):
            self._down(name, record=False)
        for holder in self._holders.values():
            holder.close()
        self._holders.clear()
        self._loop.close()

    def truth(self) -> dict[str, Any]:
        """The ground truth, as JSON-ready data."""
        return {
            "ports": self.ports,
            "toggles": {name: [[t, up] for t, up in items] for name, items in self.toggles.items()},
            "accepts": self.accepts,
            "max_lag": max(self.lag, default=0.0),
            "errors": self.errors,
        }

    # --- the loop's side --------------------------------------------------------------------

    def _apply(self, toggle: Toggle, planned: float) -> None:
        try:
            if toggle.up:
                self._up(toggle.target)
            else:
                self._down(toggle.target)
            self.lag.append(time.time() - planned)
        except OSError as error:
            self.errors.append(f"{toggle}: {error}")
        finally:
            self._pending -= 1
            if self._pending == 0:
                self._done.set()

    def _up(self, name: str) -> None:
        if name in self._sockets:
            return
        sock = _reusable()
        sock.bind(("127.0.0.1", self.ports[name]))
        sock.listen(256)
        sock.setblocking(False)
        self._sockets[name] = sock
        self.toggles[name].append((time.time(), True))
        if self._thread.is_alive():
            self._loop.add_reader(sock.fileno(), self._accept, name, sock)
        else:  # before the loop runs: register from inside it
            self._loop.call_soon(self._loop.add_reader, sock.fileno(), self._accept, name, sock)

    def _down(self, name: str, record: bool = True) -> None:
        sock = self._sockets.pop(name, None)
        if sock is None:
            return
        with contextlib.suppress(Exception):
            self._loop.remove_reader(sock.fileno())
        sock.close()
        if record:
            self.toggles[name].append((time.time(), False))

    def _accept(self, name: str, sock: socket.socket) -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            self.accepts[name].append(time.time())
            conn.close()
