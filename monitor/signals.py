"""The agent's signals: SIGTERM and SIGINT stop it, SIGHUP reloads it, SIGUSR1 dumps its tasks.

The loop runs a signal's handler in a turn of its own, after the turn the signal came in has
run every callback ready in it: an overloaded loop (mixed 20,000 targets, far more probes due
than it can run) took 1.0-1.5 s from a SIGTERM to its handler. A stop gives the running probes
2 s of grace counted from the signal itself, so that the 5 s a stop has are not spent waiting
for the loop's turn: the Python-level handler the loop installs is wrapped to note when the
signal came. CPython runs that handler in the main thread at the next bytecode, long before the
loop's turn; it only notes the time and calls the loop's own (which wakes the loop as before).
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable
from types import FrameType

from monitor.agent import Agent
from monitor.taskdump import dump_tasks

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def install(loop: asyncio.AbstractEventLoop, agent: Agent) -> None:
    """Handle the agent's four signals on ``loop`` (from the main thread, in the loop)."""
    arrived: dict[int, float] = {}
    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, _stopper(agent, signum, arrived))
        _note_arrival(signum, arrived)
    loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(agent.reload()))
    loop.add_signal_handler(signal.SIGUSR1, dump_tasks)


def _stopper(agent: Agent, signum: int, arrived: dict[int, float]) -> Callable[[], None]:
    def stop() -> None:
        agent.request_stop(since=arrived.pop(signum, None))

    return stop


def _note_arrival(signum: int, arrived: dict[int, float]) -> None:
    """Wrap the loop's Python-level handler of ``signum``: note the signal's time, then call it."""
    installed = signal.getsignal(signum)

    def noted(number: int, frame: FrameType | None) -> None:
        arrived.setdefault(number, time.monotonic())
        if callable(installed):
            installed(number, frame)

    signal.signal(signum, noted)
    signal.siginterrupt(signum, False)  # as the loop set it: system calls restart
