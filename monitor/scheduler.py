"""Runs every target's probe on its interval: no drift, stable spread, never two at once.

One heap of due times and one loop, cheap at 10,000 targets. Each target has a stable phase
inside its interval (from a hash of its name, against the wall clock), so targets do not all
fire together and keep their phase across restarts. A new target is first probed soon (within
``STARTUP_SPREAD`` seconds, spread by the same hash) so a fresh agent has verdicts at once, then
joins its phase; after that runs are due at exactly ``previous due + interval`` on the
monotonic clock, so lateness never accumulates. A probe still running when its next run is due
makes that run skip (and counts it), never overlap; except one that is ending at its timeout
just then (``FOLLOW_ON``): the next run follows it at once instead.
"""

from __future__ import annotations

import asyncio
import functools
import heapq
import itertools
import logging
import time
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from monitor.config import TargetConfig
from monitor.slots import ProbeSlots

log = logging.getLogger("watchdesk.scheduler")

RunProbe = Callable[[TargetConfig, float], Awaitable[None]]


def stable_offset(name: str, interval: float) -> float:
    """Where in each interval this target runs: the same on every start of the agent."""
    return (zlib.crc32(name.encode()) % 1_000_003) / 1_000_003 * interval


STARTUP_SPREAD = 5.0
# First runs are spread so that no more than this many start per second (10,000 targets at
# once would otherwise start at twice the steady rate while the agent is still warming up).
STARTUP_RATE = 500.0
# Runs missed while a target had no owner (its agent died) are caught up at most this fast.
CATCH_UP_RATE = 2000.0
# One wake launches every run due within the next SLACK seconds, up to this much early (their
# due instants, and so the grid, stay as they are). Why not 1 ms (uvloop's clock step, the least
# that avoids waking again and again until the tick comes): each wake costs more than the
# launch. At 500 https probes a second, launches came one per wake, every 2 ms, and each
# probe's handshake then ran alone, on caches the rest of the box had cooled; with 10 ms a
# wake starts about five, whose connects, handshakes and responses then share the loop's
# wakes too: 11 % more probes per CPU-second of the agent (bench/probe_kinds.py, medians of
# four interleaved runs each, 1,257 -> 1,403). Ten milliseconds is 1 % of a one-second
# interval; no run starts later for it (and lateness counts from the due instant, never below 0).
SLACK = 0.01
# A run due while the previous one of its target is at its timeout starts right after it
# instead of being skipped, if that timeout falls within this window around now (seconds
# before, after). With timeout = interval (allowed) and a target whose probes all hang, a skip
# each time halved its probes: its incident opened after twice failure_threshold intervals.
# A previous run past its timeout by more than the window is stuck elsewhere: skipped.
FOLLOW_ON = (0.05, 0.25)


def first_due(name: str, interval: float, loop_now: float, targets: int = 1) -> float:
    """The loop-clock time of a new target's first run: soon, spread by a stable offset."""
    spread = min(interval, max(STARTUP_SPREAD, targets / STARTUP_RATE))
    return loop_now + stable_offset(name, spread)


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def phase_due(name: str, interval: float, after: float, wall_now: float, loop_now: float) -> float:
    """The first loop-clock instant at or after ``after`` that lies on this target's phase."""
    offset = stable_offset(name, interval)
    after_wall = wall_now + (after - loop_now)
    cycles = -((offset - after_wall) // interval)
    return loop_now + (offset + cycles * interval - wall_now)


@dataclass(order=True)
class _Entry:
    due: float
    sequence: int
    target: TargetConfig = field(compare=False)
    generation: int = field(compare=False)
    # False until the run after the first, which moves the target onto its stable phase.
    joined_phase: bool = field(default=False, compare=False)


class Scheduler:
    """Calls ``run_probe(target, due)`` for every target on its schedule."""

    HEARTBEAT = 1.0

    def __init__(
        self,
        run_probe: RunProbe,
        on_skip: Callable[[TargetConfig], None] | None = None,
        max_concurrent: int = 2000,
    ) -> None:
        self._run_probe = run_probe
        self._on_skip = on_skip
        # (due, sequence, entry): tuples compare in C, much faster than dataclass ordering.
        self._heap: list[tuple[float, int, _Entry]] = []
        self._generation: dict[str, int] = {}
        # name -> its live entry (the heap may also hold dead ones: removed or replaced).
        self._entries: dict[str, _Entry] = {}
        self._dead = 0
        self._running: dict[str, asyncio.Task[None]] = {}  # in the order they were launched
        # Those of them holding a probe slot: name -> the run, and when its probe times out.
        self._probing: dict[str, tuple[asyncio.Task[Any] | None, float]] = {}
        self._sequence = itertools.count()
        self._waiter: asyncio.Future[None] | None = None
        self._slots = ProbeSlots(max_concurrent)
        self._loop_task: asyncio.Task[None] | None = None
        self._halted_at: float | None = None  # time.monotonic() of the stop signal
        self.last_beat = time.monotonic()
        self.probes_started = 0

    def set_targets(self, targets: list[TargetConfig], run_now: bool = False) -> None:
        """Schedule exactly these targets; unchanged ones keep their place in the schedule.

        Work in proportion to what changed: an unchanged target (the same object, or an equal
        one) keeps its entry as it is, and the heap is not rebuilt; entries of removed or
        replaced targets are dropped as the loop meets them (compacted once they outnumber
        the live ones). A reload of an unchanged 50,000-target config replaces nothing."""
        loop_now = asyncio.get_running_loop().time()
        wanted = {target.name: target for target in targets}
        for name in [name for name in self._entries if name not in wanted]:
            del self._entries[name]
            del self._generation[name]
            self._dead += 1
        for target in targets:
            existing = self._entries.get(target.name)
            if existing is not None and (existing.target is target or existing.target == target):
                continue
            generation = self._generation.get(target.name, 0) + 1
            self._generation[target.name] = generation
            due = (
                loop_now
                if run_now
                else first_due(target.name, target.interval, loop_now, len(targets))
            )
            entry = _Entry(due, next(self._sequence), target, generation)
            if existing is not None:
                self._dead += 1
                if existing.target.interval == target.interval and not run_now:
                    # Same schedule, new settings: keep its place instead of probing it again now.
                    entry.due, entry.joined_phase = existing.due, existing.joined_phase
            self._entries[target.name] = entry
            heapq.heappush(self._heap, (entry.due, entry.sequence, entry))
        if self._dead > len(self._entries):
            self._heap = [item for item in self._heap if self._live(item[2])]
            heapq.heapify(self._heap)
            self._dead = 0
        if self._waiter is not None:
            _wake(self._waiter)

    def catch_up(self, names: list[str], missed_since: float) -> int:
        """Targets taken over from an agent that stopped probing them (in a cluster): those
        whose phase came round after the wall-clock time ``missed_since`` missed a run, and
        run now (spread at ``CATCH_UP_RATE``, within an interval); the others keep to their
        phase, since their last run is less than an interval old. How many missed a run."""
        loop_now = asyncio.get_running_loop().time()
        wall_now = time.time()
        taken = [entry for name in names if (entry := self._entries.get(name)) is not None]
        missed = []
        for entry in taken:
            interval = entry.target.interval
            next_run = phase_due(entry.target.name, interval, loop_now, wall_now, loop_now)
            entry.due, entry.joined_phase = next_run, True
            if wall_now + (next_run - interval - loop_now) >= missed_since:
                missed.append(entry)
        spread = len(missed) / CATCH_UP_RATE
        for entry in missed:
            within = min(spread, entry.target.interval)
            entry.due = loop_now + stable_offset(entry.target.name, within)
            entry.joined_phase = False
        if taken:
            self._heap = [(e.due, e.sequence, e) for e in self._entries.values()]
            heapq.heapify(self._heap)
            self._dead = 0
            if self._waiter is not None:
                _wake(self._waiter)
        return len(missed)

    def generation(self, name: str) -> int:
        """How many times ``name`` has been (re)scheduled: 1 from its first schedule on, one
        more each time a change of its settings replaced its entry; 0 if not scheduled."""
        return self._generation.get(name, 0)

    def _live(self, entry: _Entry) -> bool:
        return self._entries.get(entry.target.name) is entry

    def start(self) -> None:
        self._loop_task = asyncio.create_task(self._loop(), name="watchdesk-scheduler")

    def halt(self, since: float | None = None) -> None:
        """Stop launching at once, from the signal handler: no new run, and the runs queued for
        a probe slot (an overloaded agent has one per target) never start: cancelled now
        (``monitor.slots``: each costs the same, in any order). The probes already running
        get their grace from ``since`` (the ``time.monotonic()`` of the stop signal; default
        now), not from when ``stop`` gets its turn: an overloaded loop takes most of a second
        per turn, and the stop's other steps cost turns too."""
        if self._halted_at is not None:
            return
        self._halted_at = time.monotonic() if since is None else since
        if self._loop_task is not None:
            self._loop_task.cancel()
        for name, task in self._running.items():
            if name not in self._probing:
                task.cancel()

    async def stop(self, grace: float = 3.0) -> None:
        """Stop scheduling (``halt``); give running probes ``grace`` seconds from the halt,
        then cancel them."""
        self.halt()
        if self._loop_task is not None:
            await asyncio.gather(self._loop_task, return_exceptions=True)
            self._loop_task = None
        running = list(self._running.values())
        if running:
            assert self._halted_at is not None
            left = self._halted_at + grace - time.monotonic()
            _, pending = await asyncio.wait(running, timeout=max(0.0, left))
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def finish(self, names: list[str], wait: float) -> None:
        """Wait (at most ``wait`` seconds) for the running probes of ``names``: a target
        handed over to another agent has its last result applied and stored here first."""
        running = [task for name in names if (task := self._running.get(name)) is not None]
        if running:
            await asyncio.wait(running, timeout=wait)

    @property
    def started(self) -> bool:
        return self._loop_task is not None

    @property
    def running_probes(self) -> int:
        return len(self._running)

    def seconds_since_beat(self) -> float:
        return time.monotonic() - self.last_beat

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self.last_beat = time.monotonic()
            now = loop.time()
            heap = self._heap
            while heap and heap[0][0] <= now + SLACK:
                _, _, entry = heapq.heappop(heap)
                if not self._live(entry):
                    self._dead = max(0, self._dead - 1)
                    continue
                self._launch(entry)
                if entry.joined_phase:
                    entry.due += entry.target.interval
                else:
                    entry.joined_phase = True
                    interval = entry.target.interval
                    entry.due = phase_due(
                        entry.target.name, interval, entry.due + interval / 2, time.time(), now
                    )
                if entry.due <= now:
                    # Far behind (a suspended VM, a stalled loop): skip the missed runs
                    # instead of firing them all at once.
                    missed = (now - entry.due) // entry.target.interval + 1
                    entry.due += missed * entry.target.interval
                heapq.heappush(heap, (entry.due, next(self._sequence), entry))
            deadline = now + self.HEARTBEAT
            if heap and heap[0][0] < deadline:
                deadline = heap[0][0]
            # One timer and one future per wake: cheaper than wait_for() on an Event.
            waiter = loop.create_future()
            self._waiter = waiter
            handle = loop.call_at(deadline, _wake, waiter)
            try:
                await waiter
            finally:
                handle.cancel()
                self._waiter = None

    def _launch(self, entry: _Entry) -> None:
        name = entry.target.name
        previous = self._running.get(name)
        if previous is None:
            task = asyncio.create_task(self._guarded(entry.target, entry.due))
        elif self._ends_now(name, previous):
            task = asyncio.create_task(self._after(previous, entry.target, entry.due))
        else:
            if self._on_skip is not None:
                self._on_skip(entry.target)
            return
        self._running[name] = task
        task.add_done_callback(functools.partial(self._forget, name))

    def _ends_now(self, name: str, previous: asyncio.Task[None]) -> bool:
        """Whether ``previous``, the run of ``name``, is probing and ends at its timeout about
        now (not a run still waiting for a slot or for the run before it)."""
        task, deadline = self._probing.get(name, (None, 0.0))
        if task is not previous:
            return False
        now = time.monotonic()
        return now - FOLLOW_ON[0] <= deadline <= now + FOLLOW_ON[1]

    async def _after(self, previous: asyncio.Task[None], target: TargetConfig, due: float) -> None:
        """The run due as the previous one times out: right after it, never beside it; none
        once the scheduler halts or the target left the schedule (a reload, a hand-over)."""
        try:
            await asyncio.wait({previous})
        except asyncio.CancelledError:
            previous.cancel()
            await asyncio.gather(previous, return_exceptions=True)
            raise
        entry = self._entries.get(target.name)
        if self._halted_at is None and entry is not None and entry.target is target:
            await self._guarded(target, due)

    def _forget(self, name: str, task: asyncio.Task[None]) -> None:
        if self._running.get(name) is task:
            del self._running[name]

    async def _guarded(self, target: TargetConfig, due: float) -> None:
        async with self._slots:
            self.probes_started += 1
            self._probing[target.name] = (
                asyncio.current_task(),
                time.monotonic() + target.timeout,
            )
            try:
                await self._run_probe(target, due)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("probe of %s failed inside the agent (not the target)", target.name)
            finally:
                self._probing.pop(target.name, None)
