"""Prometheus blackbox_exporter as the yardstick of bench/probe_kinds.py.

The exporter runs as its own process with one module per probe kind, pointed at the same local
targets as the agent, and is driven through its ``/probe`` endpoint (what Prometheus does) over
kept-alive connections from this process: at a fixed rate (requests spread evenly, at most
``CONCURRENCY`` in flight) or saturated (``CONCURRENCY`` requests always in flight). Its CPU is
read from /proc; a probe counts when the exporter answered ``probe_success 1``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp

EXECUTABLES = ("prometheus-blackbox-exporter", "blackbox_exporter")
CONCURRENCY = 64
_CLK_TCK = os.sysconf("SC_CLK_TCK")

_MODULES = """modules:
  http:
    prober: http
    timeout: 5s
    http: {{preferred_ip_protocol: ip4, ip_protocol_fallback: false}}
  https:
    prober: http
    timeout: 5s
    http:
      preferred_ip_protocol: ip4
      ip_protocol_fallback: false
      tls_config: {{ca_file: "{ca_file}"}}
  tcp:
    prober: tcp
    timeout: 5s
    tcp: {{preferred_ip_protocol: ip4, ip_protocol_fallback: false}}
  icmp:
    prober: icmp
    timeout: 5s
    icmp: {{preferred_ip_protocol: ip4, ip_protocol_fallback: false}}
  dns:
    prober: dns
    timeout: 5s
    dns:
      query_name: "t0.bench.test"
      query_type: "A"
      transport_protocol: "udp"
      preferred_ip_protocol: ip4
      ip_protocol_fallback: false
"""


def executable() -> str | None:
    for name in EXECUTABLES:
        found = shutil.which(name)
        if found:
            return found
    return None


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Exporter:
    """A blackbox_exporter process with the bench's modules; ``version`` as it reports it."""

    def __init__(self, ca_file: str) -> None:
        path = executable()
        if path is None:
            raise FileNotFoundError("blackbox_exporter is not installed")
        self._directory = tempfile.TemporaryDirectory(prefix="bench-blackbox-")
        config = Path(self._directory.name) / "blackbox.yml"
        config.write_text(_MODULES.format(ca_file=ca_file))
        self.port = free_port()
        self.version = subprocess.run(
            [path, "--version"], capture_output=True, text=True, check=False
        ).stderr.split("\n", 1)[0]
        self.process = subprocess.Popen(
            [
                path,
                f"--config.file={config}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=error",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port)):
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("blackbox_exporter did not start listening")

    def cpu_seconds(self) -> float:
        return proc_cpu_seconds(self.process.pid)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self._directory.cleanup()


@dataclass
class Driven:
    probes: int  # answered in the window
    succeeded: int
    cpu_seconds: float  # the exporter's, in the window
    wall_seconds: float

    def as_dict(self) -> dict[str, float | None]:
        cpu, wall = self.cpu_seconds, self.wall_seconds
        return {
            "probes_per_wall_second": round(self.probes / wall, 1),
            "succeeded_per_cpu_second": round(self.succeeded / cpu, 1) if cpu else None,
            "failures": self.probes - self.succeeded,
            "cpu_percent_of_one_core": round(100 * cpu / wall, 1),
        }


async def drive(
    exporter: Exporter,
    module: str,
    target: str,
    rate: float | None,
    warmup: float,
    duration: float,
) -> Driven:
    """Send /probe requests for ``duration`` seconds (rate per second, or None: saturated) and
    measure the window after ``warmup``."""
    url = f"http://127.0.0.1:{exporter.port}/probe"
    params = {"module": module, "target": target}
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    loop = asyncio.get_running_loop()
    begin = loop.time()
    window = (begin + warmup, begin + warmup + duration)
    counted = [0, 0]
    tickets: asyncio.Queue[None] = asyncio.Queue()

    async def worker(session: aiohttp.ClientSession) -> None:
        while loop.time() < window[1]:
            if rate is not None:
                await tickets.get()
            try:
                async with session.get(url, params=params) as response:
                    body = await response.read()
            except aiohttp.ClientError:
                body = b""
            if window[0] <= loop.time() < window[1]:
                counted[0] += 1
                counted[1] += b"\nprobe_success 1" in body

    async def metronome() -> None:
        assert rate is not None
        sent = 0
        while loop.time() < window[1]:
            due = int((loop.time() - begin) * rate)
            for _ in range(due - sent):
                tickets.put_nowait(None)
            sent = due
            await asyncio.sleep(0.005)

    async with aiohttp.ClientSession(connector=connector) as session:
        tasks = [asyncio.create_task(worker(session)) for _ in range(CONCURRENCY)]
        if rate is not None:
            tasks.append(asyncio.create_task(metronome()))
        await asyncio.sleep(warmup)
        cpu0, wall0 = exporter.cpu_seconds(), time.perf_counter()
        await asyncio.sleep(duration)
        cpu1, wall1 = exporter.cpu_seconds(), time.perf_counter()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return Driven(counted[0], counted[1], cpu1 - cpu0, wall1 - wall0)
