"""The probe schedule: on time without drift, spread out, never two probes of one target at once."""

from __future__ import annotations

import asyncio
import itertools
import statistics
import time

from monitor.config import TargetConfig, parse_config
from monitor.scheduler import FOLLOW_ON, Scheduler, phase_due, stable_offset


def tcp_targets(count: int, interval: str, timeout: str = "50ms") -> list[TargetConfig]:
    text = "".join(
        f'[[targets]]\nname = "t{i}"\nkind = "tcp"\nhost = "127.0.0.1"\nport = 1\n'
        f'interval = "{interval}"\ntimeout = "{timeout}"\n'
        for i in range(count)
    )
    return list(parse_config(text).targets)


async def test_runs_stay_on_their_grid_without_drift() -> None:
    dues: list[float] = []
    started: list[float] = []
    loop = asyncio.get_running_loop()

    async def run(target: TargetConfig, due: float) -> None:
        dues.append(due)
        started.append(loop.time())
        await asyncio.sleep(0.013)  # work that would shift a naive "sleep(interval)" loop

    scheduler = Scheduler(run)
    scheduler.set_targets(tcp_targets(1, "100ms"))
    scheduler.start()
    await asyncio.sleep(1.6)
    await scheduler.stop()
    steady = dues[1:]
    assert len(steady) >= 12
    gaps = [later - earlier for earlier, later in itertools.pairwise(steady)]
    # Every run is due exactly one interval after the previous one: no accumulated drift.
    assert max(abs(gap - 0.1) for gap in gaps) < 1e-6
    lateness = [start - due for start, due in zip(started, dues, strict=True)]
    assert statistics.median(lateness) < 0.02


async def test_a_slow_probe_is_never_overlapped_and_the_skip_is_counted() -> None:
    running = 0
    most = 0
    skipped: list[str] = []

    async def run(target: TargetConfig, due: float) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.25)
        running -= 1

    scheduler = Scheduler(run, on_skip=lambda target: skipped.append(target.name))
    scheduler.set_targets(tcp_targets(1, "100ms"), run_now=True)
    scheduler.start()
    await asyncio.sleep(1.0)
    await scheduler.stop()
    assert most == 1
    assert skipped


async def test_first_runs_come_soon_and_spread_out() -> None:
    starts: dict[str, float] = {}
    loop = asyncio.get_running_loop()
    begin = loop.time()

    async def run(target: TargetConfig, due: float) -> None:
        starts.setdefault(target.name, loop.time() - begin)

    scheduler = Scheduler(run)
    scheduler.set_targets(tcp_targets(50, "1s"))
    scheduler.start()
    await asyncio.sleep(1.2)
    await scheduler.stop()
    assert len(starts) == 50
    # Spread across the first interval, not all in one instant.
    assert max(starts.values()) - min(starts.values()) > 0.5


async def test_runs_due_close_together_start_in_one_wake_and_never_before_the_window() -> None:
    """200 runs a second, 5 ms apart on average: one wake starts those due within the next
    10 ms (each wake costs more CPU than the runs it starts), none earlier than that. Measured:
    about 3.2 runs a wake; 1.5 with the former 1 ms."""
    runs: list[tuple[float, float]] = []
    loop = asyncio.get_running_loop()

    async def run(target: TargetConfig, due: float) -> None:
        runs.append((due, loop.time()))

    scheduler = Scheduler(run)
    scheduler.set_targets(tcp_targets(100, "500ms"))
    scheduler.start()
    await asyncio.sleep(1.6)
    await scheduler.stop()
    assert len(runs) >= 200
    assert min(started - due for due, started in runs) >= -0.011  # 10 ms + the clock's step
    starts = sorted(started for _, started in runs)
    # the runs one wake starts are a few microseconds apart; wakes are milliseconds apart
    wakes = 1 + sum(later - earlier > 0.001 for earlier, later in itertools.pairwise(starts))
    assert len(runs) / wakes >= 2.2, (len(runs), wakes)


async def test_reload_keeps_the_place_of_unchanged_targets() -> None:
    calls: list[str] = []

    async def run(target: TargetConfig, due: float) -> None:
        calls.append(target.name)

    scheduler = Scheduler(run)
    first = tcp_targets(3, "10s")
    scheduler.set_targets(first, run_now=True)
    scheduler.start()
    await asyncio.sleep(0.2)
    assert sorted(calls) == ["t0", "t1", "t2"]
    # The same targets again, one removed: nobody is probed again early, t2 is gone.
    scheduler.set_targets(first[:2])
    await asyncio.sleep(0.3)
    await scheduler.stop()
    assert sorted(calls) == ["t0", "t1", "t2"]


def test_offsets_are_stable_and_spread() -> None:
    offsets = [stable_offset(f"target-{i}", 10.0) for i in range(2000)]
    assert offsets == [stable_offset(f"target-{i}", 10.0) for i in range(2000)]
    buckets = [0] * 10
    for offset in offsets:
        assert 0 <= offset < 10
        buckets[int(offset)] += 1
    assert max(buckets) < 2 * min(buckets)


def test_phase_is_the_same_across_restarts() -> None:
    # Two agents started at different times put the target on the same wall-clock phase.
    wall_a, wall_b = 1_000_000.0, 1_000_123.4
    due_a = phase_due("web", 30.0, after=5.0, wall_now=wall_a, loop_now=5.0)
    due_b = phase_due("web", 30.0, after=2.0, wall_now=wall_b, loop_now=2.0)
    phase_a = (wall_a + due_a - 5.0) % 30.0
    phase_b = (wall_b + due_b - 2.0) % 30.0
    assert abs(phase_a - phase_b) < 1e-6
    assert abs(phase_a - stable_offset("web", 30.0)) < 1e-6


async def test_targets_taken_over_run_now_only_if_their_phase_passed_unprobed() -> None:
    """A cluster agent takes over the slots of one that died 25 s ago: the targets whose
    phase came round meanwhile (their run was missed) run within a second; the others wait
    for their phase, their last run being less than an interval old."""
    loop = asyncio.get_running_loop()
    started: dict[str, float] = {}

    async def run(target: TargetConfig, due: float) -> None:
        started.setdefault(target.name, loop.time())

    targets = tcp_targets(200, "60s")
    scheduler = Scheduler(run)
    scheduler.set_targets([])
    scheduler.start()
    scheduler.set_targets(targets)
    begin, wall = loop.time(), time.time()
    missed = scheduler.catch_up([t.name for t in targets], wall - 25.0)
    await asyncio.sleep(1.3)
    await scheduler.stop()

    def missed_run(name: str) -> bool:  # its phase lay within the last 25 s
        return (wall - stable_offset(name, 60.0)) % 60.0 <= 25.0

    def phase_came(name: str) -> bool:  # its phase lay within the 1.3 s watched
        return (stable_offset(name, 60.0) - wall) % 60.0 <= 1.4

    expected = {t.name for t in targets if missed_run(t.name)}
    assert missed == len(expected) > 40
    assert expected <= set(started)
    assert all(started[name] - begin < 1.1 for name in expected)
    early = set(started) - expected  # no other target ran before its phase
    assert all(phase_came(name) for name in early), sorted(early)


async def overloaded(interval: str) -> tuple[Scheduler, list[str], asyncio.Event]:
    """50 targets due at once and 2 probe slots: 2 probes run (until the event is set), 48
    runs queue for a slot. The scheduler, the targets whose probe started, the event."""
    release = asyncio.Event()
    started: list[str] = []

    async def run(target: TargetConfig, due: float) -> None:
        started.append(target.name)
        await release.wait()

    scheduler = Scheduler(run, max_concurrent=2)
    scheduler.set_targets(tcp_targets(50, interval), run_now=True)
    scheduler.start()
    for _ in range(20):
        await asyncio.sleep(0)
    assert len(started) == 2
    assert scheduler.running_probes == 50
    return scheduler, started, release


async def test_runs_waiting_for_a_slot_never_start_once_stopping() -> None:
    """An overloaded agent stops without starting the runs queued for a probe slot: the probes
    already running get their grace, the rest is cancelled (issue 13: 40,000 queued runs)."""
    scheduler, started, release = await overloaded("10s")
    stopping = asyncio.ensure_future(scheduler.stop(grace=5.0))
    for _ in range(20):
        await asyncio.sleep(0)
    release.set()  # the two finish within their grace; no queued run takes their slots
    await stopping
    assert len(started) == 2
    assert scheduler.running_probes == 0


async def test_a_run_due_as_the_previous_one_times_out_follows_it_instead_of_skipping() -> None:
    """timeout = interval, and the target hangs: every probe lasts its whole timeout. Each
    next run is due just as the previous one times out; skipped, the target was probed every
    other interval (its incident twice as late); it follows at once, never beside it."""
    running, most = 0, 0
    skipped: list[str] = []
    lateness: list[float] = []
    loop = asyncio.get_running_loop()

    async def run(target: TargetConfig, due: float) -> None:
        nonlocal running, most
        lateness.append(loop.time() - due)
        running += 1
        most = max(most, running)
        await asyncio.sleep(target.timeout)
        running -= 1

    scheduler = Scheduler(run, on_skip=lambda target: skipped.append(target.name))
    scheduler.set_targets(tcp_targets(1, "200ms", timeout="200ms"), run_now=True)
    scheduler.start()
    await asyncio.sleep(2.1)
    await scheduler.stop(grace=0.0)
    assert most == 1
    assert skipped == []
    assert len(lateness) >= 9, len(lateness)
    # A follower starts as the run before it ends: late by as much as that one was (the first
    # due after the start comes half an interval early), plus the loop's turn; never more
    # than the window in which it follows rather than skips.
    assert max(lateness) < FOLLOW_ON[1]
