"""The cluster bench (bench/cluster_scale.py) computes its figures right, and runs.

Its verdicts go into the README and the issue's note, so each figure is checked on made-up
probe times and metrics text where the answer is known; and a small run of the real bench (two
agents on PostgreSQL, a few seconds) must produce every figure it promises.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import cluster_figures as figures  # noqa: E402

METRICS = """# HELP watchdesk_schedule_lateness_seconds How late probes start
# TYPE watchdesk_schedule_lateness_seconds histogram
watchdesk_schedule_lateness_seconds_bucket{le="0.01"} 90.0
watchdesk_schedule_lateness_seconds_bucket{le="0.25"} 99.0
watchdesk_schedule_lateness_seconds_bucket{le="0.5"} 100.0
watchdesk_schedule_lateness_seconds_bucket{le="+Inf"} 100.0
watchdesk_schedule_lateness_seconds_count 100.0
# TYPE watchdesk_cluster_slots_owned gauge
watchdesk_cluster_slots_owned 341.0
watchdesk_fenced_writes_total{kind="state"} 2.0
watchdesk_fenced_writes_total{kind="outbox"} 1.0
"""


def test_lateness_quantiles_from_the_histogram() -> None:
    buckets = figures.histogram(METRICS)
    assert buckets == {0.01: 90, 0.25: 99, 0.5: 100, math.inf: 100}
    assert figures.quantile(buckets, 0.5) == pytest.approx(0.01 * 50 / 90)
    assert figures.quantile(buckets, 0.99) == pytest.approx(0.25)
    assert figures.quantile(buckets, 0.995) == pytest.approx(0.375)
    assert figures.share_within(buckets, 0.25) == 0.99
    later = {le: count * 3 for le, count in buckets.items()}
    assert figures.delta(later, buckets) == {le: count * 2 for le, count in buckets.items()}
    assert figures.summed([buckets, buckets])[0.25] == 198
    assert figures.quantile({}, 0.99) is None


def test_scalars_sum_their_samples_and_miss_as_none() -> None:
    found = figures.scalar_metrics(
        METRICS, ["watchdesk_cluster_slots_owned", "watchdesk_fenced_writes_total", "nope"]
    )
    assert found == {
        "watchdesk_cluster_slots_owned": 341.0,
        "watchdesk_fenced_writes_total": 3.0,
        "nope": None,
    }


def test_duplicates_are_probes_closer_than_half_an_interval() -> None:
    interval = 10.0
    times = [
        [1.0, 11.0, 21.0, 31.0],  # once per interval
        [2.0, 12.0, 12.5, 22.0, 22.1],  # twice in two intervals: 2 duplicates
        [3.0],  # nothing in the window
    ]
    seen = figures.steady(times, start=10.0, end=30.0, interval=interval)
    assert seen.requests == 2 + 4
    assert seen.duplicates == 2
    assert seen.unprobed == 1
    assert seen.expected == 6
    assert seen.duplicate_share == pytest.approx(2 / 6)
    # The probe just before the window counts as "previous" for the first inside it.
    assert figures.steady([[9.9, 10.1]], 10.0, 20.0, interval).duplicates == 1


def test_failover_measures_the_targets_left_without_an_owner() -> None:
    interval = 60.0
    killed = 1000.0
    times = [
        [950.0, 1010.0],  # the survivor's: on time
        [960.0, 1022.0],  # the victim's, due at 1020, taken over at 1022: within tolerance
        [970.0, 1024.0],  # due 1030, probed early by the new owner: not late at all
        [990.0, 1071.0],  # due 1050, probed 21 s late, 71 s after the kill
        [985.0, 1020.5],  # due 1045, probed early
        [940.0],  # due 1000, never again
        [],  # never probed at all
    ]
    result = figures.failover(times, killed, interval, until=1100.0)
    assert result.orphaned == 2
    assert result.never == 1
    assert result.reprobed_max == pytest.approx(71.0)
    assert result.late_max == pytest.approx(21.0)


def test_balance_is_max_over_min_of_every_agent() -> None:
    assert figures.balance([342, 341, 341]) == pytest.approx(342 / 341)
    assert figures.balance([None, None]) is None
    assert figures.balance([1024, None]) is None
    assert figures.balance([1024, 0]) is None


def test_failed_probes_are_summed_over_every_target_and_kind() -> None:
    text = (
        'watchdesk_probes_total{kind="http",result="success",target="a"} 7.0\n'
        'watchdesk_probes_total{kind="http",result="failure",target="a"} 2.0\n'
        'watchdesk_probes_total{kind="icmp",result="failure",target="b"} 3.0\n'
        'watchdesk_probes_skipped_total{result="failure",target="b"} 5.0\n'
    )
    assert figures.sample_sum(text, "watchdesk_probes_total", 'result="failure"') == 5.0
    assert figures.scalar_metrics(text, ["watchdesk_probes_total"]) == {
        "watchdesk_probes_total": 12.0
    }


def test_kept_up_is_each_agents_probes_against_its_share_of_the_slots() -> None:
    # 1,000 targets at 10 s: 100 probes due a second. Agent 0 owns 3/4 of the slots and ran
    # 75/s over its 20 s window: all of its share; agent 1 ran 10/s of its 25/s.
    each, total = figures.kept_up([1500, 200], [20.0, 20.0], [768, 256], 1000, 10.0)
    assert each == [pytest.approx(1.0), pytest.approx(0.4)]
    assert total == pytest.approx(0.85)
    # Agents that split nothing each owe every target.
    each, total = figures.kept_up([2000, 1000], [20.0, 20.0], [None, None], 1000, 10.0)
    assert each == [pytest.approx(1.0), pytest.approx(0.5)]
    assert total == pytest.approx(0.75)
    # A window measured longer for one agent (a slow scrape) is its own rate's divisor.
    assert figures.kept_up([1000], [10.0], [1024], 1000, 10.0)[0] == [pytest.approx(1.0)]


def test_box_cpu_share_is_busy_over_all_ticks() -> None:
    assert figures.cpu_share((100, 1000), (250, 1200)) == pytest.approx(0.75)
    assert figures.cpu_share((100, 1000), (100, 1000)) is None


@pytest.mark.slow
@pytest.mark.cluster
def test_the_bench_runs_two_agents_and_reports_every_figure(tmp_path: Path) -> None:
    from tests.pg import PostgresServer

    if isinstance(PostgresServer.find(), str):
        pytest.skip("PostgreSQL is not installed")
    command = [
        sys.executable, str(ROOT / "bench" / "cluster_scale.py"), "--agents", "2",
        "--targets", "200", "--interval", "1s", "--timeout", "500ms", "--lease-ttl", "1500ms",
        "--lease-renew", "500ms", "--warmup", "2", "--window", "3", "--json",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    steady = result["steady"]
    assert steady["probes_at_targets"] > 0
    assert steady["lateness_p99_ms"] is not None
    assert steady["commits_per_second_per_agent"] > 0
    assert steady["targets_unprobed"] == 0
    assert set(result["kill"]) == {"orphaned", "reprobed_p50", "reprobed_max", "late_max", "never"}
    assert result["kill"]["never"] == 0, "a survivor must probe the victim's targets"
    assert set(result["goals"]) == {
        "slot_balance_at_most_1.1",
        "duplicate_probes_under_0.1%",
        "lateness_p99_under_250ms",
        "commits_under_10_per_second_per_agent",
        "killed_agents_targets_probed_again_within_25s",
        "probes_kept_up_at_least_99%",
        "peak_rss_under_600MB_per_agent",
    }
    assert result["server"]["bad_paths"] == 0
    assert len(result["stop_seconds"]) == 2


@pytest.mark.slow
@pytest.mark.cluster
def test_the_mixed_bench_probes_every_kind_and_reports_what_the_agents_kept_up(
    tmp_path: Path,
) -> None:
    from tests.pg import PostgresServer

    if isinstance(PostgresServer.find(), str):
        pytest.skip("PostgreSQL is not installed")
    command = [
        sys.executable, str(ROOT / "bench" / "cluster_scale.py"), "--agents", "2",
        "--targets", "200", "--interval", "1s", "--timeout", "500ms", "--lease-ttl", "1500ms",
        "--lease-renew", "500ms", "--warmup", "3", "--window", "3", "--mix", "mixed",
        "--no-kill", "--no-rejoin", "--json",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    steady = result["steady"]
    assert result["mix"] == "mixed"
    # Every kind had a server of its own (icmp: the kernel) and its CPU was read.
    assert set(steady["target_servers_cpu_percent"]) == {"http", "https", "tcp", "icmp", "dns"}
    assert steady["target_servers_cpu_percent"]["https"] > 0
    # 20 % http: the probe log server saw those targets only, each probed in the window.
    assert steady["targets_seen_at_server"] == 40
    assert steady["targets_unprobed"] == 0
    # Both agents probed (the slots split), the https targets verified against the CA file:
    # no failures where ICMP is allowed (root here).
    assert all(done > 0 for done in steady["probes_completed"])
    if os.geteuid() == 0:
        assert steady["probes_failed"] == [0, 0]
    assert 0.8 < steady["kept_up"] < 1.2
    assert all(share is not None for share in steady["kept_up_per_agent"])
    assert 0 < steady["box_cpu_percent"] <= 100
    assert steady["lateness_p50_ms_per_agent"][0] is not None
    assert "kill" not in result
    assert "rejoin" not in result
