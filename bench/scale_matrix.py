"""The agent as a user runs it, at 1k to 100k targets: start, first round, steady state,
reload, stop (issue 13).

    python bench/scale_matrix.py --mix mixed --targets 50000 --interval 10s
    python bench/scale_matrix.py --mix http --targets 100000 --interval 30s --window 60
    python bench/scale_matrix.py --mix https,http,tcp --targets 1000,10000 --json

For each (mix, target count): local targets (``probe_servers.py``, one process per kind; icmp
pings 127.0.0.1), a config file, then the real ``watchdesk`` command in a process of its own:

1. ``watchdesk check-config``, timed (process start to exit).
2. ``watchdesk run``: seconds until ``/healthz`` answers 200 (``start``), until every target
   has a probe result in ``/metrics`` (``first_round``, goal: within one interval).
3. After a warm-up (the first round and one more interval) a window of ``--window`` seconds,
   between two ``/metrics`` scrapes: probes completed (``watchdesk_probes_total``) against
   those expected (targets x window / interval), skipped runs, the schedule lateness
   histogram's delta (p50/p99 interpolated inside a bucket as ``histogram_quantile`` does; the
   share started within 250 ms is exact, a bucket bound), CPU of the agent process, probes per
   CPU-second, failures.
4. SIGHUP with the file unchanged: the agent's own log line gives the reload's read (parse in
   a worker thread) and apply (on the event loop) seconds; the lateness histogram over the
   interval after it gives the worst delay of a probe by the reload (its bucket's bound).
5. SIGTERM: seconds to exit, and the target states in the store file afterwards.

``peak_rss_mb`` is the agent's VmHWM. Mixes: a kind (http, https, tcp, icmp, dns), or
``mixed``: 70 % https, 20 % http, 10 % tcp/icmp/dns (icmp needs root, CAP_NET_RAW or a ping
group). Exit status 0 whatever the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import blackbox
from http_targets import _parse_seconds, _raise_nofile
from probe_kinds import Server, target_text

WATCHDESK = [sys.executable, "-m", "monitor"]
REPO = Path(__file__).resolve().parent.parent
BUCKET = re.compile(r'^watchdesk_schedule_lateness_seconds_bucket\{le="([^"]+)"\} (\S+)$')


def kinds_of(mix: str, count: int) -> list[str]:
    """The kind of each target, interleaved so that every part of the config holds all."""
    if mix != "mixed":
        return [mix] * count
    shares = (("https", 70), ("http", 20), ("tcp", 4), ("icmp", 3), ("dns", 3))
    pattern = [kind for kind, share in shares for _ in range(share)]
    return [pattern[(i * 37) % 100] for i in range(count)]


def config_text(kinds: list[str], ports: dict[str, int], ca: str, state: str, args: Any) -> str:
    head = (
        f'[agent]\nlisten = "127.0.0.1:{args.port}"\nstate_dir = {json.dumps(state)}\n'
        f'log_level = "info"\nmax_concurrent_probes = {args.max_concurrent}\n'
        f'[defaults]\ninterval = "{args.interval}"\ntimeout = "{args.timeout}"\n\n'
    )
    return head + "".join(
        target_text(kind, i, ports.get(kind, 0), ca, args.tls_session_reuse)
        for i, kind in enumerate(kinds)
    )


def scrape(port: int) -> dict[str, Any]:
    """What the bench reads of ``/metrics``: a full scrape, as Prometheus makes it."""
    started = time.monotonic()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=60) as answer:
        body = answer.read().decode()
    took = time.monotonic() - started
    probed: set[str] = set()
    totals = {"success": 0.0, "failure": 0.0}
    skipped = 0.0
    buckets: list[tuple[float, float]] = []
    for line in body.splitlines():
        if line.startswith("watchdesk_probes_total{"):
            value = float(line.rpartition(" ")[2])
            result = "success" if 'result="success"' in line else "failure"
            totals[result] += value
            if value > 0:
                probed.add(line[line.index('target="') :])
        elif line.startswith("watchdesk_probes_skipped_total{"):
            skipped += float(line.rpartition(" ")[2])
        elif match := BUCKET.match(line):
            buckets.append((float(match.group(1)), float(match.group(2))))
    return {
        "at": time.monotonic(),
        "scrape_seconds": took,
        "probed": len(probed),
        "success": totals["success"],
        "failure": totals["failure"],
        "skipped": skipped,
        "buckets": buckets,
    }


def quantile(q: float, before: list[tuple[float, float]], after: list[tuple[float, float]]) -> Any:
    """``histogram_quantile`` over the delta of two cumulative bucket lists."""
    delta = [(le, b - a) for (le, b), (_, a) in zip(after, before, strict=True)]
    total = delta[-1][1] if delta else 0
    if total <= 0:
        return None
    rank, lower, below = q * total, 0.0, 0.0
    for le, count in delta:
        if count >= rank:
            if le == float("inf"):
                return lower
            return lower + (le - lower) * ((rank - below) / max(count - below, 1e-9))
        lower, below = le, count
    return None


def share_within(bound: float, before: Any, after: Any) -> Any:
    delta = {le: b - a for (le, b), (_, a) in zip(after, before, strict=True)}
    total = delta.get(float("inf"), 0)
    return round(delta[bound] / total, 5) if total else None


def worst_bucket(before: Any, after: Any) -> Any:
    """The smallest bucket bound that holds every probe started between the two scrapes."""
    delta = [(le, b - a) for (le, b), (_, a) in zip(after, before, strict=True)]
    total = delta[-1][1] if delta else 0
    return next((le for le, count in delta if count >= total), None) if total else None


def cpu_seconds(pid: int) -> float:
    return blackbox.proc_cpu_seconds(pid)


def rss_mb(pid: int, field: str = "VmHWM") -> float:
    """The process's peak (VmHWM) or current (VmRSS) resident memory."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return round(int(line.split()[1]) / 1024)
    return 0.0


def wait_for(predicate: Any, timeout: float, period: float = 0.05) -> float | None:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return time.monotonic() - started
        time.sleep(period)
    return None


def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def run_one(mix: str, count: int, args: Any) -> dict[str, Any]:
    interval = _parse_seconds(args.interval)
    kinds = kinds_of(mix, count)
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as work:
        servers = {kind: Server(kind, work) for kind in sorted(set(kinds))}
        args.port = blackbox.free_port()
        path = Path(work, "config.toml")
        state = str(Path(work, "state"))
        path.write_text(
            config_text(kinds, {k: s.port for k, s in servers.items()}, ca(work), state, args)
        )
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        out: dict[str, Any] = {"mix": mix, "targets": count, "interval_s": interval}
        started = time.monotonic()
        checked = subprocess.run(
            [*WATCHDESK, "check-config", "-c", str(path)],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        out["check_config_s"] = round(time.monotonic() - started, 2)
        out["check_config_ok"] = checked.returncode == 0
        log_path = Path(work, "agent.log")
        with log_path.open("w") as log:
            spawned = time.monotonic()
            agent = subprocess.Popen(
                [*WATCHDESK, "run", "-c", str(path)], env=env, stdout=log, stderr=log
            )
            try:
                out.update(measure(agent, args, count, interval, spawned, log_path))
            finally:
                if agent.poll() is None:
                    agent.kill()
                    agent.wait()
                for server in servers.values():
                    server.stop()
        out["states_saved"] = saved_states(Path(state))
        if args.keep_log:
            Path(args.keep_log).write_text(log_path.read_text())
        return out


def measure(
    agent: Any, args: Any, count: int, interval: float, spawned: float, log: Path
) -> dict[str, Any]:
    port, out = args.port, {}
    up = wait_for(lambda: healthy(port), 120)
    out["start_s"] = round(time.monotonic() - spawned, 2) if up is not None else None
    out["rss_mb_at_start"] = rss_mb(agent.pid, "VmRSS") if up is not None else None
    if up is None:
        return {**out, "agent_exit_status": agent.poll()}
    first: dict[str, Any] = {}

    def all_probed() -> bool:
        try:
            first.update(scrape(port))
        except OSError:
            return False
        return bool(first["probed"] >= count)

    done = wait_for(all_probed, 10 * interval + 60, period=1.0)
    out["first_round_s"] = round(time.monotonic() - spawned, 1) if done is not None else None
    out["rss_mb_after_first_round"] = rss_mb(agent.pid, "VmRSS")
    time.sleep(max(0.0, interval - (time.monotonic() - first.get("at", 0.0))) + args.settle)
    a, cpu_a = scrape(port), cpu_seconds(agent.pid)
    time.sleep(args.window)
    b, cpu_b = scrape(port), cpu_seconds(agent.pid)
    window = b["at"] - a["at"]
    done_probes = (b["success"] + b["failure"]) - (a["success"] + a["failure"])
    cpu = cpu_b - cpu_a
    out.update(
        probes_completed=int(done_probes),
        probes_expected=int(count * window / interval),
        kept_up=round(done_probes / (count * window / interval), 4),
        failures=int(b["failure"] - a["failure"]),
        skipped=int(b["skipped"] - a["skipped"]),
        probes_per_cpu_second=round(done_probes / cpu) if cpu else None,
        agent_cpu_percent=round(100 * cpu / window, 1),
        lateness_p50_ms=ms(quantile(0.5, a["buckets"], b["buckets"])),
        lateness_p99_ms=ms(quantile(0.99, a["buckets"], b["buckets"])),
        share_within_250ms=share_within(0.25, a["buckets"], b["buckets"]),
        metrics_scrape_s=round(b["scrape_seconds"], 2),
    )
    out["rss_mb_before_reload"] = rss_mb(agent.pid, "VmRSS")
    before_reload = scrape(port)
    agent.send_signal(signal.SIGHUP)
    line = wait_for(lambda: "config reloaded" in log.read_text(), 120, period=0.2)
    text = log.read_text()
    found = re.search(r"config reloaded: .*read in ([\d.]+) s, applied in ([\d.]+) s", text)
    if line is not None and found:
        out["reload_read_s"], out["reload_apply_s"] = float(found.group(1)), float(found.group(2))
        out["reload_changes"] = re.search(r"config reloaded: \d+ targets \(([^)]*)\)", text).group(
            1
        )  # type: ignore[union-attr]
    time.sleep(interval)
    after_reload = scrape(port)
    out["reload_worst_lateness_bucket_s"] = worst_bucket(
        before_reload["buckets"], after_reload["buckets"]
    )
    out["reload_lateness_p99_ms"] = ms(
        quantile(0.99, before_reload["buckets"], after_reload["buckets"])
    )
    out["probes_total_kept"] = after_reload["success"] >= before_reload["success"]
    out["rss_mb_after_reload"] = rss_mb(agent.pid, "VmRSS")
    out["peak_rss_mb"] = rss_mb(agent.pid)
    stopping = time.monotonic()
    agent.send_signal(signal.SIGTERM)
    try:
        agent.wait(timeout=60)
        out["stop_s"] = round(time.monotonic() - stopping, 2)
    except subprocess.TimeoutExpired:
        out["stop_s"] = None
    return out


def saved_states(state_dir: Path) -> int | None:
    """Target states in the store file after the agent exited."""
    path = state_dir / "watchdesk.sqlite3"
    if not path.exists():
        return None
    with sqlite3.connect(path) as db:
        return int(db.execute("SELECT count(*) FROM target_state").fetchone()[0])


def ca(work: str) -> str:
    return str(Path(work, "ca.pem"))


def ms(seconds: Any) -> Any:
    return None if seconds is None else round(seconds * 1000, 1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--mix", default="mixed", help="comma-separated: http,https,tcp,icmp,dns,mixed"
    )
    parser.add_argument("--targets", default="1000", help="comma-separated counts")
    parser.add_argument("--interval", default="10s")
    parser.add_argument("--timeout", default="5s")
    parser.add_argument("--window", type=float, default=30.0, help="seconds measured")
    parser.add_argument("--settle", type=float, default=5.0, help="extra warm-up seconds")
    parser.add_argument("--max-concurrent", type=int, default=4000)
    parser.add_argument(
        "--tls-session-reuse",
        action="store_true",
        help="https targets opt into tls_session_reuse (abbreviated handshakes)",
    )
    parser.add_argument("--keep-log", metavar="FILE", help="copy the agent's log there")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    _raise_nofile()
    results = []
    for mix in args.mix.split(","):
        for count in (int(c) for c in args.targets.split(",")):
            result = run_one(mix, count, args)
            results.append(result)
            print(json.dumps(result) if args.json else table_row(result), flush=True)
    return 0


def table_row(result: dict[str, Any]) -> str:
    return " ".join(f"{key}={value}" for key, value in result.items())


if __name__ == "__main__":
    sys.exit(main())
