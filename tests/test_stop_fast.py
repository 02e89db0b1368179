"""A SIGTERM stops an overloaded agent within 5 s (issue 13).

An agent that has far more probes due than it can run (mixed 20,000 targets at 10 s on two
cores) took 9.4-10.5 s from SIGTERM to exit. Two ordering faults were most of it: the
scheduler went on launching runs after the signal until the stop's turn came round to it
(2.6 s later: the stop first cancelled its timers, one loop turn each, and an overloaded turn
takes most of a second), and the running probes' 2 s of grace began only then. Now the
scheduler halts in the signal's handler, and the grace counts from the signal itself.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

from monitor import signals
from monitor.config import TargetConfig
from monitor.scheduler import Scheduler
from tests.agent_harness import Harness
from tests.test_scheduler import overloaded, tcp_targets


async def _turns(count: int = 20) -> None:
    for _ in range(count):
        await asyncio.sleep(0)


def _overloaded_turn(seconds: float) -> None:
    """Hold the loop, as the turn a signal comes in holds an overloaded agent's: the loop runs
    its handler only after the turn's end."""
    time.sleep(seconds)


async def test_no_run_starts_once_the_stop_is_requested() -> None:
    """Runs that come due between the signal and the stop's turn never start, and the runs
    queued for a slot are cancelled at the signal, before ``stop`` runs."""
    scheduler, started, release = await overloaded("100ms")
    scheduler.halt()
    await _turns()
    assert scheduler.running_probes == 2  # the 48 queued runs are gone already
    release.set()  # the two free their slots: nothing queued may take them
    await asyncio.sleep(0.3)  # three intervals: every target came due again meanwhile
    assert len(started) == 2
    assert scheduler.running_probes == 0
    await scheduler.stop(grace=1.0)
    assert len(started) == 2


async def test_the_grace_counts_from_the_stop_signal_not_from_the_stops_turn() -> None:
    """A stop that reaches the scheduler after the grace has passed cancels the probes still
    running at once, instead of granting them the grace again."""
    cancelled: list[str] = []

    async def hang(target: TargetConfig, due: float) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(target.name)
            raise

    scheduler = Scheduler(hang)
    scheduler.set_targets(tcp_targets(3, "10s"), run_now=True)
    scheduler.start()
    await _turns()
    assert scheduler.running_probes == 3
    scheduler.halt(since=time.monotonic() - 5.0)  # the signal came 5 s ago
    await asyncio.wait_for(scheduler.stop(grace=2.0), 1.0)
    assert sorted(cancelled) == ["t0", "t1", "t2"]
    assert scheduler.running_probes == 0


async def test_a_sigterm_waiting_for_a_busy_loop_still_gets_2_s_from_the_signal(
    tmp_path: Path,
) -> None:
    """The real handlers, the real signal: a probe that hangs (a listener that never answers)
    is given the grace counted from the SIGTERM, though the loop ran its handler only after a
    turn that took 1 s (an overloaded agent's)."""
    accepted = asyncio.Event()
    writers: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        accepted.set()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    h = await Harness.create(
        tmp_path / "state",
        # The start spreads first probes over 5 s by name: this one's comes after 10 ms.
        f'[[targets]]\nname = "tarpit-63"\nkind = "http"\nurl = "http://127.0.0.1:{port}/"\n'
        'interval = "10s"\ntimeout = "5s"\n',
    )
    loop = asyncio.get_running_loop()
    signals.install(loop, h.agent)
    try:
        h.agent.scheduler.start()
        await asyncio.wait_for(accepted.wait(), 5)
        assert h.agent.scheduler.running_probes == 1
        os.kill(os.getpid(), signal.SIGTERM)
        _overloaded_turn(1.0)
        await asyncio.wait_for(h.agent.wait_stopped(), 2)
        stopping = time.monotonic()
        await asyncio.wait_for(h.agent.scheduler.stop(grace=1.2), 3)
        # About 0.2 s of grace was left; counted from the handler's turn it would be 1.2 s.
        assert time.monotonic() - stopping < 0.8
        assert h.agent.scheduler.running_probes == 0
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1):
            loop.remove_signal_handler(signum)
        for writer in writers:
            writer.close()
        server.close()
        await h.agent.clients.close()
        await h.close()
