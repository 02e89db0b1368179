"""The cluster bench's target server: N HTTP targets on one port that remember when each was
probed.

``GET /t/{i}`` answers ``200 ok`` (honouring ``Connection: close``, as the single-agent bench's
raw server does) and appends ``time.time()`` to target i's list. Which agent sent a probe does
not matter: "each target probed once per interval cluster-wide" and "a dead agent's targets
are probed again" are both read from these times. ``GET /_last`` answers a JSON list of every
target's latest probe time (null: never), for the bench to follow a failover while it runs.

    python bench/probe_log_server.py PORT TARGETS OUT.json

prints ``READY``, serves until SIGTERM, then writes ``{"times": [[t, ...], ...]}`` to OUT.json
and prints one JSON line of totals. Runs in a process of its own, so its CPU is not the
agents'.
"""

from __future__ import annotations

import asyncio
import json
import resource
import signal
import sys
import time
from pathlib import Path
from typing import cast

_OK_CLOSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n"
    b"Connection: close\r\n\r\nok"
)
_OK_KEEP = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n"
    b"Connection: keep-alive\r\n\r\nok"
)


class Log:
    def __init__(self, targets: int) -> None:
        self.times: list[list[float]] = [[] for _ in range(targets)]
        self.requests = 0
        self.bad_paths = 0

    def last(self) -> bytes:
        latest = [round(times[-1], 3) if times else None for times in self.times]
        return json.dumps(latest).encode()


class Handler(asyncio.Protocol):
    __slots__ = ("buffer", "log", "transport")

    def __init__(self, log: Log) -> None:
        self.log = log
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        transport = self.transport
        assert transport is not None
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head, self.buffer = self.buffer[:end], self.buffer[end + 4 :]
            line = head.split(b"\r\n", 1)[0].split(b" ")
            path = line[1] if len(line) > 1 else b""
            close = b"connection: close" in head.lower() or line[-1] == b"HTTP/1.0"
            if path == b"/_last":
                body = self.log.last()
                transport.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)
                )
                transport.close()
                return
            self._record(path)
            if close:
                transport.write(_OK_CLOSE)
                transport.close()
                return
            transport.write(_OK_KEEP)

    def _record(self, path: bytes) -> None:
        self.log.requests += 1
        if path.startswith(b"/t/"):
            try:
                self.log.times[int(path[3:])].append(time.time())
                return
            except (ValueError, IndexError):
                pass
        self.log.bad_paths += 1


async def serve(port: int, log: Log) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    server = await loop.create_server(lambda: Handler(log), "127.0.0.1", port, backlog=4096)
    print("READY", flush=True)
    await stop.wait()
    server.close()


def main(argv: list[str]) -> int:
    port, targets, out = int(argv[0]), int(argv[1]), argv[2]
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:
        runner = asyncio.Runner()
    log = Log(targets)
    with runner:
        runner.run(serve(port, log))
    Path(out).write_text(json.dumps({"times": log.times}))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    summary = {
        "requests": log.requests,
        "bad_paths": log.bad_paths,
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2),
    }
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
