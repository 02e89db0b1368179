"""Probe-kind bench: probes per CPU-second of the prober, watchdesk against blackbox_exporter.

For each kind (http, https, tcp, icmp, dns) a local target runs in its own process
(bench/probe_servers.py; icmp pings 127.0.0.1), then:

1. the real Agent runs in this process with ``rate x interval`` targets of that kind (a fresh
   connection per probe, icmp ``packets = 1``, like the exporter's one echo), and the window
   after the warm-up is measured: probes applied, the ones that succeeded, and this process's
   CPU (user + system, all threads);
2. blackbox_exporter, when installed, is driven through ``/probe`` at the same rate
   (bench/blackbox.py) and its CPU read from /proc;
3. with ``--saturated``, both again flat out: the exporter with 64 requests always in flight
   (it spreads them over both cores), the agent (one event loop: one core at most) offered
   90 % of the probes per CPU-second it reached in step 1 (``--saturated-rate`` to choose),
   which keeps one core nearly busy, with a 2 s interval (``--saturated-interval``) so that
   the rate takes a few thousand targets, not tens of thousands. Offering it far more than it
   can run, or tens of thousands of targets, measures its overload and scale handling (issue
   13's other items) instead of its probes.

    python bench/probe_kinds.py                      # every kind, 500/s, one run each
    python bench/probe_kinds.py --kinds https --saturated --repeat 3
    python bench/probe_kinds.py --kinds https --profile      # + cProfile of the agent's window

The figure compared is succeeded probes per CPU-second; ``ratio`` is watchdesk's over the
exporter's. See bench/README.md for the recorded figures.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import platform
import pstats
import resource
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import blackbox

KINDS = ("http", "https", "tcp", "icmp", "dns")
SERVERS = Path(__file__).resolve().parent / "probe_servers.py"


def target_text(kind: str, index: int, port: int, ca_file: str, resume: bool = False) -> str:
    """One ``[[targets]]`` entry; ``resume``: https targets opt into ``tls_session_reuse``."""
    head = f'[[targets]]\nname = "{kind}-{index}"\n'
    if kind == "http":
        return head + f'kind = "http"\nurl = "http://127.0.0.1:{port}/t/{index}"\n'
    if kind == "https":
        url = f"https://127.0.0.1:{port}/t/{index}"
        reuse = "tls_session_reuse = true\n" if resume else ""
        return head + f'kind = "http"\nurl = "{url}"\nca_file = "{ca_file}"\n{reuse}'
    if kind == "tcp":
        return head + f'kind = "tcp"\nhost = "127.0.0.1"\nport = {port}\n'
    if kind == "icmp":
        return head + 'kind = "icmp"\nhost = "127.0.0.1"\npackets = 1\n'
    return (
        head + f'kind = "dns"\nhost = "t{index}.bench.test"\nnameserver = "127.0.0.1"\n'
        f"nameserver_port = {port}\n"
    )


def blackbox_target(kind: str, port: int) -> str:
    return {
        "http": f"http://127.0.0.1:{port}/t/0",
        "https": f"https://127.0.0.1:{port}/t/0",
        "tcp": f"127.0.0.1:{port}",
        "icmp": "127.0.0.1",
        "dns": f"127.0.0.1:{port}",
    }[kind]


class Server:
    """One bench/probe_servers.py process (none for icmp: the kernel answers)."""

    def __init__(self, kind: str, directory: str) -> None:
        self.port = blackbox.free_port()
        self.process: subprocess.Popen[str] | None = None
        if kind == "icmp":
            return
        command = [sys.executable, str(SERVERS), kind, str(self.port), directory]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        if self.process.stdout.readline().strip() != "READY":
            raise RuntimeError(f"the {kind} server did not start")

    def cpu_seconds(self) -> float:
        return blackbox.proc_cpu_seconds(self.process.pid) if self.process else 0.0

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.communicate(timeout=10)


async def run_agent(
    kind: str, port: int, ca_file: str, rate: float, interval: float, args: argparse.Namespace
) -> dict[str, Any]:
    """The real Agent with ``rate x interval`` targets; the window after the warm-up (and
    the first two rounds, which bring every target from unknown to up)."""
    from monitor.agent import Agent
    from monitor.config import parse_config

    targets = max(1, round(rate * interval))
    with tempfile.TemporaryDirectory(prefix="bench-agent-") as state_dir:
        text = "\n".join(
            [
                "[agent]",
                f'listen = "127.0.0.1:{blackbox.free_port()}"',
                f"state_dir = {json.dumps(state_dir)}",
                'log_level = "error"',
                "max_concurrent_probes = 4000",
                "[defaults]",
                f'interval = "{interval}s"',
                f'timeout = "{min(5.0, interval)}s"',
                "",
                *(target_text(kind, i, port, ca_file) for i in range(targets)),
            ]
        )
        agent = Agent(parse_config(text, "bench.toml"))
        loop = asyncio.get_running_loop()
        window = [float("inf"), float("inf")]
        counted = {"probes": 0, "succeeded": 0}
        reasons: dict[str, int] = {}
        apply = agent.apply_result

        async def counting(target: Any, result: Any) -> Any:
            if window[0] <= loop.time() < window[1]:
                counted["probes"] += 1
                counted["succeeded"] += result.ok
                if not result.ok:
                    reasons[result.reason] = reasons.get(result.reason, 0) + 1
            return await apply(target, result)

        agent.apply_result = counting  # type: ignore[method-assign]
        await agent.start()
        await asyncio.sleep(args.warmup + 2 * interval)
        profiler = cProfile.Profile() if args.profile else None
        usage0, wall0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        window[:] = [loop.time(), loop.time() + args.duration]
        if profiler is not None:
            profiler.enable()
        await asyncio.sleep(args.duration)
        if profiler is not None:
            profiler.disable()
        usage1, wall1 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        window[1] = float("-inf")
        await agent.stop()
    cpu = usage1.ru_utime + usage1.ru_stime - usage0.ru_utime - usage0.ru_stime
    wall = wall1 - wall0
    if profiler is not None:
        if args.profile_out:
            profiler.dump_stats(args.profile_out)
        stats = pstats.Stats(profiler, stream=sys.stderr)
        stats.sort_stats("tottime").print_stats(25)
    return {
        "targets": targets,
        "probes_per_wall_second": round(counted["probes"] / wall, 1),
        "succeeded_per_cpu_second": round(counted["succeeded"] / cpu, 1) if cpu else None,
        "failures": counted["probes"] - counted["succeeded"],
        "failure_reasons": dict(sorted(reasons.items(), key=lambda item: -item[1])[:3]),
        "cpu_percent_of_one_core": round(100 * cpu / wall, 1),
    }


async def bench_kind(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-targets-") as directory:
        server = Server(kind, directory)
        ca_file = str(Path(directory) / "ca.pem")
        loads = ["rate"] + ["saturated"] * args.saturated
        result: dict[str, Any] = {"kind": kind}
        try:
            for load in loads:
                rate, interval = args.rate, args.interval
                if load == "saturated":
                    reached = result["rate"]["watchdesk"]["succeeded_per_cpu_second"]
                    rate = args.saturated_rate or round(0.9 * reached)
                    interval = args.saturated_interval
                cpu0 = server.cpu_seconds()
                ours = await run_agent(kind, server.port, ca_file, rate, interval, args)
                ours["server_cpu_seconds"] = round(server.cpu_seconds() - cpu0, 2)
                row: dict[str, Any] = {"offered_per_second": rate, "watchdesk": ours}
                if args.blackbox and blackbox.executable():
                    exporter = blackbox.Exporter(ca_file)
                    try:
                        driven = await blackbox.drive(
                            exporter,
                            kind,
                            blackbox_target(kind, server.port),
                            rate if load == "rate" else None,
                            args.warmup,
                            args.duration,
                        )
                    finally:
                        exporter.stop()
                    row["blackbox"] = driven.as_dict()
                    row["blackbox_version"] = exporter.version
                    theirs = row["blackbox"]["succeeded_per_cpu_second"]
                    mine = ours["succeeded_per_cpu_second"]
                    row["ratio"] = round(mine / theirs, 2) if mine and theirs else None
                result[load] = row
        finally:
            server.stop()
    return result


def machine() -> dict[str, Any]:
    model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    try:
        import uvloop

        loop = f"uvloop {uvloop.__version__}"
    except ImportError:
        loop = "asyncio"
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "loop": loop,
        "openssl": ssl.OPENSSL_VERSION,
        "load_average": Path("/proc/loadavg").read_text().split()[:3],
    }


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run whose ratio (else watchdesk figure) is the median, per load."""
    chosen = dict(runs[0])
    for load in ("rate", "saturated"):
        rows = [run[load] for run in runs if load in run]
        if rows:
            key = "ratio" if rows[0].get("ratio") is not None else None
            rows.sort(key=lambda r: r[key] if key else r["watchdesk"]["succeeded_per_cpu_second"])
            chosen[load] = rows[len(rows) // 2]
            chosen[load]["runs"] = [r.get("ratio") for r in rows]
    return chosen


def print_table(results: list[dict[str, Any]], info: dict[str, Any]) -> None:
    print(f"# {info['cpu']}, {info['cores']} cores, Python {info['python']}, {info['loop']}")
    print(f"# {info['openssl']}, Linux {info['kernel']}")
    print(f"# load average at start {' '.join(info['load_average'])}, at end {info['load_end']}")
    print(
        "kind   load       offered/s | watchdesk done/s ok/CPU-s  CPU%  fail "
        "| blackbox done/s ok/CPU-s  CPU%  fail | ratio"
    )
    for result in results:
        for load in ("rate", "saturated"):
            row = result.get(load)
            if row is None:
                continue
            ours, theirs = row["watchdesk"], row.get("blackbox", {})
            print(
                f"{result['kind']:6} {load:9} {row['offered_per_second']:>10} | "
                f"{ours['probes_per_wall_second']:>16} {ours['succeeded_per_cpu_second']!s:>8} "
                f"{ours['cpu_percent_of_one_core']:>5} {ours['failures']:>5} | "
                f"{theirs.get('probes_per_wall_second', '-')!s:>15} "
                f"{theirs.get('succeeded_per_cpu_second', '-')!s:>8} "
                f"{theirs.get('cpu_percent_of_one_core', '-')!s:>5} "
                f"{theirs.get('failures', '-')!s:>5} | {row.get('ratio', '-')}"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--rate", type=float, default=500.0, help="offered probes per second")
    parser.add_argument("--interval", type=float, default=5.0, help="targets' interval, s")
    parser.add_argument("--warmup", type=float, default=3.0, help="after the first round, s")
    parser.add_argument("--duration", type=float, default=15.0, help="measured window, s")
    parser.add_argument("--saturated", action="store_true", help="also flat out")
    parser.add_argument(
        "--saturated-rate", type=float, default=None, help="default: 90%% of step 1's figure"
    )
    parser.add_argument(
        "--saturated-interval",
        type=float,
        default=2.0,
        help="targets' interval when saturated: fewer targets for the same rate, so what is "
        "measured is probes, not the agent's handling of tens of thousands of targets",
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs per kind; the median shown")
    parser.add_argument("--no-blackbox", dest="blackbox", action="store_false")
    parser.add_argument("--profile", action="store_true", help="cProfile the agent (stderr)")
    parser.add_argument("--profile-out", help="also write the cProfile stats to this file")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    info = machine()
    results = []
    for kind in args.kinds.split(","):
        runs = [runner(bench_kind(kind, args)) for _ in range(args.repeat)]
        results.append(median_of(runs))
        if not args.json:
            print(f"{kind}: done", file=sys.stderr)
    info["load_end"] = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    if args.json:
        print(json.dumps({"machine": info, "results": results}, indent=1))
    else:
        print_table(results, info)
    return 0


if __name__ == "__main__":
    sys.exit(main())
