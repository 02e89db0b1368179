"""The cluster bench's processes: an agent (``watchdesk run`` with its log, metrics snapshots,
SIGKILL, SIGTERM) and the database (the test suite's throwaway PostgreSQL, or a given URL, with
its commit counters and CPU), plus the target server's view of the latest probes and the
box's CPU ticks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import cluster_figures as figures
from http_targets import _proc_cpu_seconds

SLOTS = "watchdesk_cluster_slots_owned"
PROBES = "watchdesk_probes_total"
COUNTERS = (SLOTS, PROBES, "watchdesk_fenced_writes_total", "watchdesk_probes_skipped_total")


class Agent:
    def __init__(self, index: int, config: Path, port: int, env: dict[str, str]) -> None:
        self.index, self.config, self.port, self.env = index, config, port, env
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = config.with_suffix(".log")

    def start(self, migrate: bool) -> None:
        command = [sys.executable, "-m", "monitor", "run", "-c", str(self.config)]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                command + (["--migrate"] if migrate else []),
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.env},
            )

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def get(self, path: str, timeout: float = 30.0) -> tuple[int, str]:
        url = f"http://127.0.0.1:{self.port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def wait_ready(self, timeout: float) -> float:
        began = time.monotonic()
        while time.monotonic() - began < timeout:
            if not self.alive:
                raise RuntimeError(f"agent {self.index} exited:\n{self.log.read_text()[-3000:]}")
            try:
                if self.get("/readyz", timeout=5)[0] == 200:
                    return time.monotonic() - began
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"agent {self.index} not ready after {timeout}s")

    def snapshot(self) -> dict[str, Any]:
        began, wall = time.monotonic(), time.time()
        _, text = self.get("/metrics")
        took = time.monotonic() - began
        assert self.proc is not None
        return {
            "at": wall + took / 2,  # the counters are read while the answer is rendered
            "scalars": figures.scalar_metrics(text, COUNTERS),
            "failures": figures.sample_sum(text, PROBES, 'result="failure"'),
            "lateness": figures.histogram(text),
            "cpu": _proc_cpu_seconds(self.proc.pid),
            "rss_peak_mb": _peak_rss_mb(self.proc.pid),
            "scrape_seconds": round(took, 2),
        }

    def kill(self) -> float:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        return time.time()

    def stop(self) -> float | None:
        if not self.alive:
            return None
        assert self.proc is not None
        began = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return round(time.monotonic() - began, 2)


def box_cpu_ticks() -> tuple[int, int]:
    """(busy, all) clock ticks of every CPU of the box since boot, from /proc/stat: what the
    agents, the database, the target servers and anything else running took together."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    idle = fields[3] + fields[4]  # idle, iowait
    return sum(fields) - idle, sum(fields)  # guest time is already inside user


def _peak_rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


class Database:
    """The throwaway server of tests/pg.py (fsync off), or ``--database-url``."""

    def __init__(self, url: str | None) -> None:
        self.server: Any = None
        if url is None:
            from tests.pg import PostgresServer

            found = PostgresServer.find()
            if isinstance(found, str):
                raise SystemExit(f"cluster bench: {found}, or pass --database-url")
            found.start()
            self.server = found
            url = found.tcp_url(found.new_database().split("?")[0].rsplit("/", 1)[-1])
        self.url = url

    def stats(self) -> dict[str, float]:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            row = conn.execute(
                "SELECT xact_commit, xact_rollback, tup_inserted + tup_updated + tup_deleted "
                "FROM pg_stat_database WHERE datname = current_database()"
            ).fetchone()
        assert row is not None
        return {
            "commits": float(row[0]),
            "rollbacks": float(row[1]),
            "rows": float(row[2]),
            "cpu": self._cpu(),
            "at": time.time(),
        }

    def _cpu(self) -> float:
        """CPU seconds of the server's processes (throwaway server only)."""
        if self.server is None:
            return 0.0
        postmaster = int((self.server.data / "postmaster.pid").read_text().split()[0])
        total = _proc_cpu_seconds(postmaster)
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                if int(stat[1]) == postmaster:
                    total += _proc_cpu_seconds(int(entry.name))
        return total

    def close(self) -> None:
        if self.server is not None:
            self.server.stop()


def last_probes(port: int) -> list[float | None]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/_last", timeout=30) as response:
        return list(json.load(response))
