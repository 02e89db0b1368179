"""Load benchmark: the real Agent probing N local HTTP targets.

A local HTTP server runs in separate process(es) (its CPU is not the agent's), the agent runs
in this process on uvloop when importable, and over a steady-state window (everything after
the first interval) we measure probes per agent CPU-second, probes per wall second, schedule
lateness quantiles from raw samples, failures, peak RSS and CPU % of one core.

    python bench/http_targets.py --targets 10000 --interval 10s --duration 40
    python bench/http_targets.py --targets 1000 --json
    python bench/http_targets.py --targets 10000 --profile

Only repo-public objects are touched: the bench wraps the scheduler's probe callback and
``Agent.apply_result`` on the instance to collect raw samples; no repo file is changed.
See bench/README.md for how to read the output.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import io
import json
import logging
import os
import pstats
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

GOALS = {
    "targets": 10_000,
    "interval_seconds": 10.0,
    "lateness_p99_seconds": 0.250,
    "peak_rss_mb": 300.0,
    "probes_per_cpu_second": 2000.0,
}

# ---------------------------------------------------------------------------------------------
# The target server (runs in its own process: `http_targets.py _serve ...`)
# ---------------------------------------------------------------------------------------------

_BODY = b"ok"
_RESPONSE_CLOSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n"
    b"Connection: close\r\n\r\n" + _BODY
)
_RESPONSE_KEEP = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n"
    b"Connection: keep-alive\r\n\r\n" + _BODY
)


@dataclass
class _ServerStats:
    connections: int = 0
    requests: int = 0
    bad_paths: int = 0


class _RawHttp(asyncio.Protocol):
    """A minimal HTTP/1.1 responder: 200 "ok" to every GET/HEAD, keep-alive aware."""

    __slots__ = ("buffer", "stats", "transport")

    def __init__(self, stats: _ServerStats) -> None:
        self.stats = stats
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses; they quack the same.
        self.transport = cast(asyncio.Transport, transport)
        self.stats.connections += 1

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        transport = self.transport
        assert transport is not None
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head, self.buffer = self.buffer[:end], self.buffer[end + 4 :]
            self.stats.requests += 1
            if b" /t/" not in head[:32]:
                self.stats.bad_paths += 1
            lower = head.lower()
            close = b"connection: close" in lower or head.split(b"\r\n", 1)[0].endswith(b"/1.0")
            if close:
                transport.write(_RESPONSE_CLOSE)
                transport.close()
                return
            transport.write(_RESPONSE_KEEP)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


async def _serve(port: int, kind: str) -> None:
    stats = _ServerStats()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    cleanup: Callable[[], Awaitable[None]]
    if kind == "raw":
        server = await loop.create_server(
            lambda: _RawHttp(stats), "127.0.0.1", port, backlog=4096, reuse_port=True
        )

        async def close_raw() -> None:
            server.close()
            await server.wait_closed()

        cleanup = close_raw
    else:
        from aiohttp import web

        async def handle(request: web.Request) -> web.Response:
            stats.requests += 1
            return web.Response(text="ok")

        app = web.Application()
        app.router.add_get("/t/{i}", handle)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", port, backlog=4096, reuse_port=True)
        await site.start()
        cleanup = runner.cleanup
    print("READY", flush=True)
    await stop.wait()
    await cleanup()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(
        json.dumps(
            {
                "connections": stats.connections,
                "requests": stats.requests,
                "bad_paths": stats.bad_paths,
                "cpu_seconds": usage.ru_utime + usage.ru_stime,
                "max_rss_mb": usage.ru_maxrss / 1024,
            }
        ),
        flush=True,
    )


def _serve_main(argv: list[str]) -> int:
    port, kind = int(argv[0]), argv[1]
    _raise_nofile()
    _run(_serve(port, kind), use_uvloop=True)
    return 0


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def _raise_nofile() -> tuple[int, int]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def _run(coro: Coroutine[Any, Any, Any], use_uvloop: bool) -> tuple[Any, str]:
    """Run ``coro`` on uvloop if wanted and importable; return (result, loop name)."""
    factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    name = "asyncio"
    if use_uvloop:
        try:
            import uvloop

            factory = uvloop.new_event_loop
            name = f"uvloop {getattr(uvloop, '__version__', '?')}"
        except ImportError:
            pass
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(coro), name


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _parse_seconds(text: str) -> float:
    from monitor.durations import parse_duration

    try:
        return parse_duration(text)
    except Exception:
        return float(text)


def _quantile(ordered: list[float], q: float) -> float | None:
    """Exact quantile of sorted samples, linear interpolation between closest ranks."""
    if not ordered:
        return None
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _cpu_seconds() -> tuple[float, float]:
    """(user, system) CPU seconds of this process, all its threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime


_CLK_TCK = os.sysconf("SC_CLK_TCK")


def _proc_cpu_seconds(pid: int) -> float:
    """utime + stime of another process, from /proc (0.0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def _rss_mb() -> float:
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _open_fds() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return -1


def build_config_text(
    targets: int,
    interval: str,
    timeout: str,
    port: int,
    agent_port: int,
    state_dir: str,
    keep_alive: bool,
    max_concurrent: int | None,
) -> str:
    lines = [
        "[agent]",
        f'listen = "127.0.0.1:{agent_port}"',
        f"state_dir = {json.dumps(state_dir)}",
        'log_level = "warning"',
    ]
    if max_concurrent is not None:
        lines.append(f"max_concurrent_probes = {max_concurrent}")
    lines += [
        "",
        "[defaults]",
        f'interval = "{interval}"',
        f'timeout = "{timeout}"',
        "failure_threshold = 3",
        "recovery_threshold = 2",
        "",
    ]
    keep = "keep_alive = true\n" if keep_alive else ""
    width = len(str(targets))
    for i in range(targets):
        lines.append(
            f'[[targets]]\nname = "t{i:0{width}d}"\nkind = "http"\n'
            f'url = "http://127.0.0.1:{port}/t/{i}"\n{keep}'
        )
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Servers
# ---------------------------------------------------------------------------------------------


class ServerGroup:
    """K server processes sharing one port with SO_REUSEPORT."""

    def __init__(self, workers: int, kind: str) -> None:
        self.port = _free_port()
        self.kind = kind
        self.procs: list[subprocess.Popen[str]] = []
        for _ in range(workers):
            self.procs.append(
                subprocess.Popen(
                    [sys.executable, os.path.abspath(__file__), "_serve", str(self.port), kind],
                    stdout=subprocess.PIPE,
                    text=True,
                )
            )
        for proc in self.procs:
            assert proc.stdout is not None
            line = proc.stdout.readline().strip()
            if line != "READY":
                self.stop()
                raise RuntimeError(f"target server did not start (said {line!r})")

    def cpu_seconds(self) -> float:
        return sum(_proc_cpu_seconds(proc.pid) for proc in self.procs)

    def stop(self) -> list[dict[str, Any]]:
        reports: list[dict[str, Any]] = []
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                out, _ = proc.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, _ = proc.communicate()
            for line in (out or "").splitlines():
                with contextlib.suppress(ValueError):
                    reports.append(json.loads(line))
        return reports


# ---------------------------------------------------------------------------------------------
# The measured run
# ---------------------------------------------------------------------------------------------


@dataclass
class Samples:
    window_start: float = float("inf")  # loop clock
    window_end: float = float("inf")
    lateness: list[float] = field(default_factory=list)  # probes started inside the window
    completed: int = 0  # results applied inside the window
    failures: int = 0  # failing results inside the window
    completed_total: int = 0
    failures_total: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    skipped: int = 0
    max_running: int = 0
    max_fds: int = 0
    max_rss_seen_mb: float = 0.0
    scrape_seconds: list[float] = field(default_factory=list)
    scrape_failures: int = 0
    run_start: float = 0.0  # loop clock when the agent started
    # Per second of the whole run (index = seconds since start): probes started, worst lateness.
    started_per_second: list[int] = field(default_factory=list)
    worst_lateness_per_second: list[float] = field(default_factory=list)
    # Garbage collections inside the window: count per generation, pause seconds.
    gc_counts: list[int] = field(default_factory=lambda: [0, 0, 0])
    gc_pauses: list[float] = field(default_factory=list)


GcCallback = Callable[[str, dict[str, int]], None]


def _watch_gc(samples: Samples, clock: Callable[[], float]) -> GcCallback:
    """A gc callback timing every collection that starts inside the window (the pause the
    event loop sees: nothing else runs while the collector does)."""
    began = [0.0]

    def callback(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            began[0] = time.perf_counter()
            return
        if samples.window_start <= clock() < samples.window_end:
            samples.gc_counts[info["generation"]] += 1
            samples.gc_pauses.append(time.perf_counter() - began[0])

    return callback


def _instrument(agent: Any, samples: Samples) -> None:
    """Wrap the scheduler's probe callback and apply_result on this instance only."""
    loop = asyncio.get_running_loop()
    scheduler = agent.scheduler
    original_run = scheduler._run_probe
    original_apply = agent.apply_result
    original_skip = scheduler._on_skip
    lateness = samples.lateness

    started = samples.started_per_second
    worst = samples.worst_lateness_per_second

    async def timed_run(target: Any, due: float) -> None:
        now = loop.time()
        late = now - due
        if samples.window_start <= now < samples.window_end:
            lateness.append(late)
        second = int(now - samples.run_start)
        if 0 <= second < len(started):
            started[second] += 1
            if late > worst[second]:
                worst[second] = late
        await original_run(target, due)

    async def counted_apply(target: Any, result: Any) -> Any:
        now = loop.time()
        samples.completed_total += 1
        in_window = samples.window_start <= now < samples.window_end
        if in_window:
            samples.completed += 1
        if not result.ok:
            samples.failures_total += 1
            samples.reasons[result.reason] += 1
            if in_window:
                samples.failures += 1
        return await original_apply(target, result)

    def counted_skip(target: Any) -> None:
        samples.skipped += 1
        if original_skip is not None:
            original_skip(target)

    scheduler._run_probe = timed_run
    agent.apply_result = counted_apply
    scheduler._on_skip = counted_skip


async def _watch(agent: Any, samples: Samples, period: float) -> None:
    while True:
        samples.max_running = max(samples.max_running, agent.scheduler.running_probes)
        samples.max_fds = max(samples.max_fds, _open_fds())
        samples.max_rss_seen_mb = max(samples.max_rss_seen_mb, _rss_mb())
        await asyncio.sleep(period)


async def _scrape(port: int, samples: Samples, period: float) -> None:
    """Optional: fetch /metrics like Prometheus would, timing each scrape."""
    import aiohttp

    async with aiohttp.ClientSession() as session:
        while True:
            await asyncio.sleep(period)
            started = time.perf_counter()
            try:
                async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
                    await response.read()
            except (aiohttp.ClientError, TimeoutError):
                samples.scrape_failures += 1
                continue
            samples.scrape_seconds.append(time.perf_counter() - started)


async def bench(args: argparse.Namespace, servers: ServerGroup) -> dict[str, Any]:
    from monitor.agent import Agent
    from monitor.config import parse_config

    loop = asyncio.get_running_loop()
    interval = _parse_seconds(args.interval)
    rss_before_config = _rss_mb()
    with tempfile.TemporaryDirectory(prefix="watchdesk-bench-") as state_dir:
        agent_port = _free_port()
        text = build_config_text(
            args.targets,
            args.interval,
            args.timeout,
            servers.port,
            agent_port,
            state_dir,
            args.keep_alive,
            args.max_concurrent,
        )
        started = time.perf_counter()
        config = parse_config(text, "bench.toml")
        parse_seconds = time.perf_counter() - started
        del text
        agent = Agent(config)
        samples = Samples()
        seconds = int(args.duration) + 30
        samples.started_per_second = [0] * seconds
        samples.worst_lateness_per_second = [0.0] * seconds
        samples.run_start = loop.time()
        _instrument(agent, samples)
        gc_callback = _watch_gc(samples, loop.time)
        gc.callbacks.append(gc_callback)
        started = time.perf_counter()
        await agent.start()
        start_seconds = time.perf_counter() - started
        rss_after_start = _rss_mb()
        t0 = loop.time()
        samples.window_start = t0 + (interval if args.warmup is None else args.warmup)
        samples.window_end = t0 + args.duration
        helpers = [asyncio.create_task(_watch(agent, samples, 0.5))]
        if args.scrape > 0:
            helpers.append(asyncio.create_task(_scrape(agent_port, samples, args.scrape)))

        await asyncio.sleep(max(0.0, samples.window_start - loop.time()))
        profiler = cProfile.Profile() if args.profile else None
        wall0, cpu0, server_cpu0 = time.perf_counter(), _cpu_seconds(), servers.cpu_seconds()
        # A prototype scheduler may count its wake-ups; the repo's need not.
        wakes0 = getattr(agent.scheduler, "wakes", None)
        if profiler is not None:
            profiler.enable()
        await asyncio.sleep(max(0.0, samples.window_end - loop.time()))
        if profiler is not None:
            profiler.disable()
        wall1, cpu1, server_cpu1 = time.perf_counter(), _cpu_seconds(), servers.cpu_seconds()
        wakes1 = getattr(agent.scheduler, "wakes", None)
        samples.window_end = float("-inf")  # stop collecting
        gc.callbacks.remove(gc_callback)

        states = getattr(agent, "states", {})
        down_at_end = sum(1 for state in states.values() if getattr(state, "status", "") == "down")
        for task in helpers:
            task.cancel()
        await asyncio.gather(*helpers, return_exceptions=True)
        started = time.perf_counter()
        await agent.stop()
        stop_seconds = time.perf_counter() - started

    wall = wall1 - wall0
    user, system = cpu1[0] - cpu0[0], cpu1[1] - cpu0[1]
    cpu = user + system
    ordered = sorted(samples.lateness)
    expected = args.targets * wall / interval
    result: dict[str, Any] = {
        "targets": args.targets,
        "interval_seconds": interval,
        "timeout": args.timeout,
        "keep_alive": args.keep_alive,
        "duration_seconds": args.duration,
        "warmup_seconds": interval if args.warmup is None else args.warmup,
        "profiled": args.profile,
        "python": sys.version.split()[0],
        "window_seconds": round(wall, 3),
        "probes_completed": samples.completed,
        "probes_expected": round(expected),
        "probes_per_cpu_second": round(samples.completed / cpu, 1) if cpu > 0 else None,
        "probes_per_wall_second": round(samples.completed / wall, 1) if wall > 0 else None,
        "agent_cpu_seconds": round(cpu, 3),
        "agent_cpu_user_seconds": round(user, 3),
        "agent_cpu_system_seconds": round(system, 3),
        "agent_cpu_percent_of_one_core": round(100 * cpu / wall, 1) if wall > 0 else None,
        "server_cpu_percent_of_one_core": round(100 * (server_cpu1 - server_cpu0) / wall, 1),
        "lateness_samples": len(ordered),
        "lateness_p50_ms": _ms(_quantile(ordered, 0.50)),
        "lateness_p90_ms": _ms(_quantile(ordered, 0.90)),
        "lateness_p99_ms": _ms(_quantile(ordered, 0.99)),
        "lateness_max_ms": _ms(ordered[-1] if ordered else None),
        "failures": samples.failures,
        "failures_total_run": samples.failures_total,
        "failure_reasons": dict(samples.reasons.most_common(5)),
        "probes_completed_total_run": samples.completed_total,
        "probes_skipped": samples.skipped,
        "targets_down_at_end": down_at_end,
        "max_running_probes": samples.max_running,
        "max_open_fds": samples.max_fds,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "rss_before_config_mb": round(rss_before_config, 1),
        "rss_after_start_mb": round(rss_after_start, 1),
        "rss_max_sampled_mb": round(samples.max_rss_seen_mb, 1),
        "config_parse_seconds": round(parse_seconds, 3),
        "agent_start_seconds": round(start_seconds, 3),
        "agent_stop_seconds": round(stop_seconds, 3),
        "gc_collections_by_generation": samples.gc_counts,
        "gc_pause_total_ms": _ms(sum(samples.gc_pauses)),
        "gc_pause_max_ms": _ms(max(samples.gc_pauses, default=0.0)),
        "gc_thresholds": list(gc.get_threshold()),
        "gc_frozen_objects": gc.get_freeze_count(),
    }
    last = max((i for i, n in enumerate(samples.started_per_second) if n), default=-1) + 1
    result["timeline"] = {
        "started_per_second": samples.started_per_second[:last],
        "worst_lateness_ms_per_second": [
            round(x * 1000, 1) for x in samples.worst_lateness_per_second[:last]
        ],
    }
    if isinstance(wakes0, int) and isinstance(wakes1, int) and samples.completed:
        result["scheduler_wakes_per_probe"] = round((wakes1 - wakes0) / samples.completed, 2)
    if samples.scrape_seconds:
        result["metrics_scrapes"] = len(samples.scrape_seconds)
        result["metrics_scrape_max_ms"] = _ms(max(samples.scrape_seconds))
        result["metrics_scrape_failures"] = samples.scrape_failures
    if profiler is not None:
        result["_profile"] = profiler
    return result


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)


def _verdicts(result: dict[str, Any]) -> dict[str, bool | None]:
    """Pass/fail against the goals (only meaningful unprofiled, fresh connections)."""
    p99 = result["lateness_p99_ms"]
    rate = result["probes_per_cpu_second"]
    return {
        "lateness_p99_under_250ms": None if p99 is None else p99 < 250,
        "rss_under_300mb": result["peak_rss_mb"] < GOALS["peak_rss_mb"],
        "at_least_2000_probes_per_cpu_second": None if rate is None else rate >= 2000,
        "no_failures": result["failures_total_run"] == 0 and result["targets_down_at_end"] == 0,
        "all_expected_probes_ran": result["probes_completed"] >= 0.98 * result["probes_expected"],
    }


def _print_table(result: dict[str, Any]) -> None:
    rows: list[tuple[str, str]] = [
        ("loop", str(result["loop"])),
        (
            "targets / interval / timeout",
            f"{result['targets']} / {result['interval_seconds']:g}s / {result['timeout']}"
            + ("  (keep-alive)" if result["keep_alive"] else "  (fresh connection per probe)"),
        ),
        (
            "steady window",
            f"{result['window_seconds']:.1f} s (after {result['warmup_seconds']:g} s warm-up)",
        ),
        (
            "probes completed / expected",
            f"{result['probes_completed']} / {result['probes_expected']}",
        ),
        ("probes per agent CPU-second", str(result["probes_per_cpu_second"])),
        ("probes per wall second", str(result["probes_per_wall_second"])),
        (
            "agent CPU % of one core",
            f"{result['agent_cpu_percent_of_one_core']}  (user {result['agent_cpu_user_seconds']}"
            f" s, system {result['agent_cpu_system_seconds']} s)",
        ),
        ("server CPU % of one core", f"{result['server_cpu_percent_of_one_core']}"),
        (
            "lateness p50 / p90 / p99 / max",
            f"{result['lateness_p50_ms']} / {result['lateness_p90_ms']} / "
            f"{result['lateness_p99_ms']} / {result['lateness_max_ms']} ms"
            f"  (n={result['lateness_samples']})",
        ),
        (
            "failures (window / whole run)",
            f"{result['failures']} / {result['failures_total_run']}",
        ),
        (
            "skipped (still running) / targets down at end",
            f"{result['probes_skipped']} / {result['targets_down_at_end']}",
        ),
        (
            "max running probes / open fds",
            f"{result['max_running_probes']} / {result['max_open_fds']}",
        ),
        (
            "peak RSS (ru_maxrss)",
            f"{result['peak_rss_mb']} MB  (before config {result['rss_before_config_mb']}, "
            f"after start {result['rss_after_start_mb']})",
        ),
        (
            "config parse / start / stop",
            f"{result['config_parse_seconds']} / {result['agent_start_seconds']} / "
            f"{result['agent_stop_seconds']} s",
        ),
    ]
    if "metrics_scrapes" in result:
        rows.append(
            (
                "/metrics scrapes, slowest",
                f"{result['metrics_scrapes']}, {result['metrics_scrape_max_ms']} ms",
            )
        )
    timeline = result["timeline"]
    rows.append(("started/s, by second", " ".join(map(str, timeline["started_per_second"]))))
    rows.append(
        (
            "worst lateness ms, by second",
            " ".join(f"{x:.0f}" for x in timeline["worst_lateness_ms_per_second"]),
        )
    )
    if result["failure_reasons"]:
        rows.append(("top failure reasons", json.dumps(result["failure_reasons"])))
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"{label:<{width}}  {value}")
    print()
    for goal, ok in result["goals"].items():
        mark = "n/a" if ok is None else ("PASS" if ok else "FAIL")
        print(f"  {mark:<4}  {goal}")
    if result["profiled"]:
        print("  (profiled run: CPU and lateness figures are inflated by cProfile)")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_serve":
        return _serve_main(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--targets", type=int, default=1000)
    parser.add_argument("--interval", default="10s", help='probe interval, e.g. "10s"')
    parser.add_argument(
        "--timeout", default=None, help='probe timeout, e.g. "5s" (default: 5s, at most interval)'
    )
    parser.add_argument("--duration", type=float, default=40.0, help="seconds of agent run time")
    parser.add_argument(
        "--warmup",
        type=float,
        default=None,
        help="seconds after start not measured (default: one interval)",
    )
    parser.add_argument("--keep-alive", action="store_true", help="keep_alive = true on targets")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--profile", action="store_true", help="cProfile the steady window")
    parser.add_argument("--profile-top", type=int, default=25)
    parser.add_argument("--profile-out", help="also dump the raw cProfile stats to this file")
    parser.add_argument("--no-uvloop", action="store_true", help="use the stock asyncio loop")
    parser.add_argument("--server", choices=("raw", "aiohttp"), default="raw")
    parser.add_argument("--server-workers", type=int, default=1)
    parser.add_argument("--max-concurrent", type=int, default=None)
    parser.add_argument(
        "--scrape", type=float, default=0.0, help="also GET /metrics every N seconds (0: never)"
    )
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)
    interval = _parse_seconds(args.interval)
    if args.timeout is None:
        args.timeout = "5s" if interval >= 5 else args.interval
    if args.duration <= (interval if args.warmup is None else args.warmup):
        parser.error("--duration must be longer than the warm-up (default: one --interval)")

    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s %(message)s")
    nofile = _raise_nofile()
    servers = ServerGroup(args.server_workers, args.server)
    try:
        result, loop_name = _run(bench(args, servers), use_uvloop=not args.no_uvloop)
    finally:
        server_reports = servers.stop()
    result["loop"] = loop_name
    result["rlimit_nofile"] = list(nofile)
    result["server"] = {
        "kind": args.server,
        "workers": args.server_workers,
        "requests": sum(r.get("requests", 0) for r in server_reports),
        "connections": sum(r.get("connections", 0) for r in server_reports),
        "bad_paths": sum(r.get("bad_paths", 0) for r in server_reports),
    }
    result["goals"] = _verdicts(result)
    profiler: cProfile.Profile | None = result.pop("_profile", None)
    out = sys.stderr if args.json else sys.stdout
    if profiler is not None:
        if args.profile_out:
            profiler.dump_stats(args.profile_out)
        for order in ("cumulative", "tottime"):
            buffer = io.StringIO()
            stats = pstats.Stats(profiler, stream=buffer)
            stats.sort_stats(order).print_stats(args.profile_top)
            print(
                f"==== cProfile, agent process, steady window, top {args.profile_top} by {order}",
                file=out,
            )
            print(buffer.getvalue(), file=out)
    if args.json:
        print(json.dumps(result))
    else:
        _print_table(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
