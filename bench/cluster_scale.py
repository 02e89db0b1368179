"""Scale bench of a cluster: N real agent processes on one PostgreSQL, M local HTTP targets.

    python bench/cluster_scale.py --agents 3 --targets 30000 --interval 60s
    python bench/cluster_scale.py --agents 1 --targets 30000 --interval 60s --json
    python bench/cluster_scale.py --agents 2 --targets 50000 --interval 10s --mix mixed \
        --no-kill --no-rejoin --json
    make bench-cluster

Every agent reads the same config (``[cluster]`` with one vantage; only ``agent.listen`` and
``agent.state_dir`` differ), so the agents split the slots between them by themselves wherever
they can; the bench never tells them. It measures, over a steady window after the warm-up:
slot balance (``watchdesk_cluster_slots_owned``, max/min), duplicate probes cluster-wide (at
the target server: a probe less than half an interval after the previous one of the same
target), p99 schedule lateness (the agents' ``watchdesk_schedule_lateness_seconds``), database
commits per second per agent (``pg_stat_database.xact_commit``), CPU and memory; then kills one
agent with SIGKILL and measures how long its targets go unprobed; then starts it again and
measures how long until the slots are balanced again. ``--mix mixed`` probes issue 13's mix
(bench/cluster_targets.py) instead of plain http; each agent's share of its due probes
completed (``watchdesk_probes_total``) and the box's CPU use (/proc/stat) are measured in
either mix. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT)]  # tests.pg: the throwaway PostgreSQL server of the test suite

import cluster_figures as figures  # noqa: E402
from cluster_procs import PROBES, SLOTS, Agent, Database, box_cpu_ticks, last_probes  # noqa: E402
from cluster_targets import MIXES, Targets  # noqa: E402
from http_targets import _free_port, _parse_seconds, _raise_nofile  # noqa: E402

URL_ENV = "WD_BENCH_DATABASE_URL"
GOALS = {"balance": 1.1, "duplicates": 0.001, "p99": 0.250, "commits": 10.0, "failover": 25.0}
KEPT_UP, RSS_MB = 0.99, 600.0  # issue 13: every due probe run (less the window's edges), memory


def config_text(args: argparse.Namespace, index: int, port: int, targets: str, work: Path) -> str:
    head = f"""[agent]
listen = "127.0.0.1:{port}"
state_dir = "{work / f"agent{index}"}"
log_level = "warning"

[cluster]
database_url_env = "{URL_ENV}"
vantage = "bench"
slots = {args.slots}
lease_ttl = "{args.lease_ttl}"
lease_renew = "{args.lease_renew}"

[defaults]
interval = "{args.interval}"
timeout = "{args.timeout}"
"""
    return head + targets


def _wait(seconds: float) -> None:
    if seconds > 0:
        time.sleep(seconds)


def steady_figures(
    before: list[dict[str, Any]],
    after: list[dict[str, Any]],
    db0: dict[str, float],
    db1: dict[str, float],
    agents: int,
    due: tuple[int, float],
) -> dict[str, Any]:
    """The window's figures from the agents' two snapshots and the database's; ``due`` is
    (targets, interval), what the agents owe."""
    wall = db1["at"] - db0["at"]
    lateness = [
        figures.delta(a["lateness"], b["lateness"]) for a, b in zip(after, before, strict=True)
    ]
    everyone = figures.summed(lateness)
    slots = [a["scalars"][SLOTS] for a in after]
    commits = db1["commits"] - db0["commits"] - 1  # less the bench's own first stats query
    fenced = [a["scalars"]["watchdesk_fenced_writes_total"] for a in after]
    skipped = [
        (a["scalars"]["watchdesk_probes_skipped_total"] or 0.0)
        - (b["scalars"]["watchdesk_probes_skipped_total"] or 0.0)
        for a, b in zip(after, before, strict=True)
    ]
    completed = [
        a["scalars"][PROBES] - b["scalars"][PROBES] for a, b in zip(after, before, strict=True)
    ]
    failed = [a["failures"] - b["failures"] for a, b in zip(after, before, strict=True)]
    each, total = figures.kept_up(
        completed, [a["at"] - b["at"] for a, b in zip(after, before, strict=True)], slots, *due
    )
    return {
        "window_seconds": round(wall, 1),
        "probes_completed": [round(value) for value in completed],
        "probes_failed": [round(value) for value in failed],
        "probes_due": round(due[0] * wall / due[1]),
        "kept_up": _round(total, 4),
        "kept_up_per_agent": [_round(value, 4) for value in each],
        "slots_owned": slots,
        "slot_balance": figures.balance(slots),
        "lateness_p50_ms": _ms(figures.quantile(everyone, 0.5)),
        "lateness_p99_ms": _ms(figures.quantile(everyone, 0.99)),
        "lateness_share_within_250ms": _round(figures.share_within(everyone, 0.25), 5),
        "lateness_p50_ms_per_agent": [_ms(figures.quantile(one, 0.5)) for one in lateness],
        "lateness_p99_ms_per_agent": [_ms(figures.quantile(one, 0.99)) for one in lateness],
        "probes_started": round(everyone.get(float("inf"), 0.0)),
        "probes_skipped": round(sum(skipped)),
        "commits_per_second": round(commits / wall, 2),
        "commits_per_second_per_agent": round(commits / wall / agents, 2),
        "rows_written_per_second": round((db1["rows"] - db0["rows"]) / wall, 1),
        "database_cpu_percent": round(100 * (db1["cpu"] - db0["cpu"]) / wall, 1),
        "agent_cpu_percent": [
            round(100 * (a["cpu"] - b["cpu"]) / wall, 1) for a, b in zip(after, before, strict=True)
        ],
        "agent_rss_peak_mb": [a["rss_peak_mb"] for a in after],
        "fenced_writes": fenced,
        "metrics_scrape_seconds": [a["scrape_seconds"] for a in after],
    }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def follow_failover(
    victim: Agent, server: int, interval: float, deadline: float, tolerance: float = 2.0
) -> tuple[float, float]:
    """Kill the victim; wait until every target whose probe fell due since has been probed
    again (or the deadline). (killed at, waited until), wall clock."""
    before = last_probes(server)
    killed_at = victim.kill()
    while True:
        time.sleep(2.0)
        now = time.time()
        latest = last_probes(server)
        waiting = sum(
            1
            for old, new in zip(before, latest, strict=True)
            if old is not None and new == old and now > old + interval + tolerance
        )
        if (now > killed_at + interval + tolerance and waiting == 0) or now > deadline:
            return killed_at, now


def wait_balanced(agents: list[Agent], slots: int, timeout: float) -> float | None:
    """Seconds until the running agents own every slot within 10 % of each other."""
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        owned = [a.snapshot()["scalars"][SLOTS] for a in agents if a.alive]
        ratio = figures.balance(owned)
        if ratio is not None and ratio <= GOALS["balance"] and sum(v or 0 for v in owned) == slots:
            return round(time.monotonic() - began, 1)
        if ratio is None and all(value is None for value in owned):
            return None  # the agents do not split slots
        time.sleep(0.5)
    return None


def run(args: argparse.Namespace) -> dict[str, Any]:
    interval = _parse_seconds(args.interval)
    ttl, renew = _parse_seconds(args.lease_ttl), _parse_seconds(args.lease_renew)
    work = Path(tempfile.mkdtemp(prefix="watchdesk-cluster-bench-"))
    targets = Targets(args.mix, args.targets, work)
    server_port = targets.port
    db = Database(args.database_url)
    agents: list[Agent] = []
    result: dict[str, Any] = {
        "agents": args.agents,
        "targets": args.targets,
        "mix": args.mix,
        "interval_seconds": interval,
        "lease_ttl_seconds": ttl,
        "lease_renew_seconds": renew,
        "slots": args.slots,
        "cpus": os.cpu_count(),
    }
    killed_at = followed_until = None
    try:
        entries = targets.config_text()
        for index in range(args.agents):
            port = _free_port()
            config = work / f"agent{index}.toml"
            config.write_text(config_text(args, index, port, entries, work))
            agents.append(Agent(index, config, port, {URL_ENV: db.url}))
        began = time.monotonic()
        agents[0].start(migrate=True)
        agents[0].wait_ready(args.start_timeout)
        for agent in agents[1:]:
            agent.start(migrate=False)
        for agent in agents[1:]:
            agent.wait_ready(args.start_timeout)
        result["start_seconds"] = round(time.monotonic() - began, 1)
        warmup = (
            args.warmup if args.warmup is not None else max(1.5 * interval, interval + 2 * renew)
        )
        _wait(warmup)
        before, db0 = [a.snapshot() for a in agents], db.stats()
        window_start = time.time()
        # The box between the scrapes: not this process parsing megabytes of /metrics.
        box0, servers0, quiet = box_cpu_ticks(), targets.cpu_seconds(), time.monotonic()
        _wait(args.window if args.window is not None else 2 * interval)
        box1, servers1 = box_cpu_ticks(), targets.cpu_seconds()
        quiet = time.monotonic() - quiet
        window_end, db1 = time.time(), db.stats()
        after = [a.snapshot() for a in agents]
        result["warmup_seconds"] = warmup
        steady = steady_figures(before, after, db0, db1, len(agents), (args.targets, interval))
        result["steady"] = steady
        box = figures.cpu_share(box0, box1)
        steady["box_cpu_percent"] = _round(None if box is None else 100 * box, 1)
        steady["box_busy_cores"] = _round(None if box is None else box * (os.cpu_count() or 1), 2)
        steady["target_servers_cpu_percent"] = {
            kind: round(100 * (servers1[kind] - servers0[kind]) / quiet, 1)
            for kind in sorted(servers1)
        }
        if len(agents) >= 2 and not args.no_kill:
            deadline = time.time() + ttl + renew + interval + 30
            killed_at, followed_until = follow_failover(agents[-1], server_port, interval, deadline)
            if not args.no_rejoin:
                agents[-1].start(migrate=False)
                ready = agents[-1].wait_ready(args.start_timeout)
                balanced = wait_balanced(agents, args.slots, timeout=4 * renew + 30)
                result["rejoin"] = {
                    "ready_seconds": round(ready, 1),
                    "balanced_seconds_after_ready": balanced,
                }
        result["stop_seconds"] = [agent.stop() for agent in agents]
    finally:
        for agent in agents:
            agent.stop()
        result["server"], times = targets.stop()
        db.close()
    seen = figures.steady(times, window_start, window_end, interval)
    result["steady"].update(
        targets_seen_at_server=len(times),
        probes_at_targets=seen.requests,
        probes_expected=round(seen.expected),
        duplicate_probes=seen.duplicates,
        duplicate_share=round(seen.duplicate_share, 5),
        targets_unprobed=seen.unprobed,
    )
    if killed_at is not None and followed_until is not None:
        result["kill"] = figures.failover(times, killed_at, interval, followed_until).row()
    result["goals"] = verdicts(result)
    if not args.keep:
        for path in sorted(work.rglob("*"), reverse=True):
            path.rmdir() if path.is_dir() else path.unlink()
        work.rmdir()
    else:
        result["workdir"] = str(work)
    return result


def verdicts(result: dict[str, Any]) -> dict[str, bool | None]:
    """The issue's goals; None where this run cannot tell (no slots, no kill)."""
    steady = result["steady"]
    kill = result.get("kill")
    balance = steady["slot_balance"]
    p99 = steady["lateness_p99_ms"]
    failover = None
    if kill is not None:
        failover = kill["never"] == 0 and (
            kill["reprobed_max"] is None or kill["reprobed_max"] <= GOALS["failover"]
        )
    return {
        "slot_balance_at_most_1.1": None if balance is None else balance <= GOALS["balance"],
        "duplicate_probes_under_0.1%": steady["duplicate_share"] < GOALS["duplicates"],
        "lateness_p99_under_250ms": None if p99 is None else p99 < GOALS["p99"] * 1000,
        "commits_under_10_per_second_per_agent": (
            steady["commits_per_second_per_agent"] < GOALS["commits"]
        ),
        "killed_agents_targets_probed_again_within_25s": failover,
        "probes_kept_up_at_least_99%": (
            None if steady["kept_up"] is None else steady["kept_up"] >= KEPT_UP
        ),
        "peak_rss_under_600MB_per_agent": all(
            rss is not None and rss < RSS_MB for rss in steady["agent_rss_peak_mb"]
        ),
    }


def print_table(result: dict[str, Any]) -> None:
    steady = result["steady"]
    rows = [
        ("agents x targets @ interval", f"{result['agents']} x {result['targets']} "
         f"{result['mix']} @ {result['interval_seconds']:g} s ({result['cpus']} CPUs)"),
        ("leases", f"slots {result['slots']}, ttl {result['lease_ttl_seconds']:g} s, renew "
         f"{result['lease_renew_seconds']:g} s"),
        ("start (all ready) / warm-up / window", f"{result['start_seconds']} s / "
         f"{result['warmup_seconds']:g} s / {steady['window_seconds']} s"),
        ("slots owned (balance max/min)", f"{steady['slots_owned']} ({steady['slot_balance']})"),
        ("probes completed per agent / due", f"{steady['probes_completed']} / "
         f"{steady['probes_due']} (failed {steady['probes_failed']})"),
        ("kept up (per agent)", f"{steady['kept_up']} ({steady['kept_up_per_agent']})"),
        ("probes at the server's targets / expected", f"{steady['probes_at_targets']} / "
         f"{steady['probes_expected']} ({steady['targets_seen_at_server']} targets)"),
        ("duplicate probes", f"{steady['duplicate_probes']} ({steady['duplicate_share']:.3%})"),
        ("targets unprobed in the window", str(steady["targets_unprobed"])),
        ("lateness p50 / p99 (share <= 250 ms)", f"{steady['lateness_p50_ms']} / "
         f"{steady['lateness_p99_ms']} ms ({steady['lateness_share_within_250ms']})"),
        ("lateness p50 / p99 per agent", f"{steady['lateness_p50_ms_per_agent']} / "
         f"{steady['lateness_p99_ms_per_agent']} ms"),
        ("commits/s (per agent)", f"{steady['commits_per_second']} "
         f"({steady['commits_per_second_per_agent']})"),
        ("rows written/s", str(steady["rows_written_per_second"])),
        ("CPU % of a core: agents / database", f"{steady['agent_cpu_percent']} / "
         f"{steady['database_cpu_percent']}"),
        ("CPU % of a core: target servers", str(steady["target_servers_cpu_percent"])),
        ("box CPU: % of all / busy cores", f"{steady['box_cpu_percent']} / "
         f"{steady['box_busy_cores']}"),
        ("peak RSS per agent (MB)", str(steady["agent_rss_peak_mb"])),
        ("fenced writes / skipped probes", f"{steady['fenced_writes']} / "
         f"{steady['probes_skipped']}"),
        ("/metrics scrape seconds", str(steady["metrics_scrape_seconds"])),
    ]  # fmt: skip
    if "kill" in result:
        kill = result["kill"]
        rows.append(
            ("after kill -9: orphaned, re-probed p50/max",
             f"{kill['orphaned']}, {kill['reprobed_p50']} / {kill['reprobed_max']} s after the "
             f"kill (worst {kill['late_max']} s past due), never: {kill['never']}")
        )  # fmt: skip
    if "rejoin" in result:
        rejoin = result["rejoin"]
        rows.append(
            ("restarted agent: ready, balanced after",
             f"{rejoin['ready_seconds']} s, {rejoin['balanced_seconds_after_ready']} s")
        )  # fmt: skip
    rows.append(("agents' stop seconds", str(result["stop_seconds"])))
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"{label:<{width}}  {value}")
    if steady["slots_owned"] and all(value is None for value in steady["slots_owned"]):
        print("\n(no watchdesk_cluster_slots_owned: these agents do not split slots, so every")
        print(" agent probes every target; balance and rejoin are n/a)")
    print()
    for goal, ok in result["goals"].items():
        print(f"  {'n/a' if ok is None else ('PASS' if ok else 'FAIL'):<4}  {goal}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--agents", type=int, default=3)
    parser.add_argument("--targets", type=int, default=30000)
    parser.add_argument("--interval", default="60s")
    parser.add_argument(
        "--mix",
        choices=MIXES,
        default="http",
        help="http: every target plain http; mixed: issue 13's 70 %% https, 20 %% http, "
        "10 %% tcp/icmp/dns (duplicates and failover are then read on the http share only)",
    )
    parser.add_argument("--timeout", default="5s")
    parser.add_argument("--slots", type=int, default=1024)
    parser.add_argument("--lease-ttl", default="20s")
    parser.add_argument("--lease-renew", default="5s")
    parser.add_argument(
        "--warmup",
        type=float,
        default=None,
        help="seconds after all agents are ready (default: 1.5 intervals)",
    )
    parser.add_argument(
        "--window", type=float, default=None, help="steady window in seconds (default: 2 intervals)"
    )
    parser.add_argument("--start-timeout", type=float, default=300.0)
    parser.add_argument(
        "--database-url",
        default=None,
        help="an existing database (default: a throwaway server, tests/pg.py)",
    )
    parser.add_argument("--no-kill", action="store_true", help="skip the kill -9 phase")
    parser.add_argument("--no-rejoin", action="store_true", help="do not restart the victim")
    parser.add_argument("--keep", action="store_true", help="keep configs, logs, probe times")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)  # fmt: skip
    _raise_nofile()
    result = run(args)
    if args.json:
        print(json.dumps(result))
    else:
        print_table(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
