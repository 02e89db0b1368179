"""A stop that comes in the same turn of the loop as a wake-up still stops (issue 13).

An agent whose last probe opened an incident while it was stopping never exited: the incident
woke the outbox (``notify``) in the very turn ``Agent.stop`` cancelled it, Python 3.11's
``wait_for`` returned normally instead of raising the cancel, and the outbox ran on while
``stop`` waited for it. The same holds for the incident manager's hold timers.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from monitor.waits import wait_set
from tests.agent_harness import Harness

TARGET = '[[targets]]\nname = "db"\nkind = "tcp"\nhost = "h"\nport = 1\n'


async def _idle(task: asyncio.Task[None]) -> None:
    """Until ``task`` waits for its next wake-up (it has nothing to do)."""
    for _ in range(500):
        names: set[str] = set()
        awaited: object = task.get_coro()
        while awaited is not None:  # the coroutines it awaits, innermost last
            names.add(getattr(awaited, "__qualname__", ""))
            awaited = getattr(awaited, "cr_await", None)
        if names & {"wait_for", "Event.wait"}:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{task.get_name()} never went idle")


async def test_the_outbox_stops_when_woken_in_the_same_turn(tmp_path: Path) -> None:
    h = await Harness.create(tmp_path / "state", TARGET)
    try:
        h.agent.outbox.start()
        task = h.agent.outbox._task
        assert task is not None
        await _idle(task)
        h.agent.outbox.notify()  # a new incident's actions, as Agent.stop cancels the outbox
        await asyncio.wait_for(h.agent.outbox.stop(), 5)
        assert task.cancelled()
    finally:
        await h.close()


async def test_a_wait_cancelled_as_its_event_is_set_raises_the_cancel() -> None:
    event = asyncio.Event()
    waiter = asyncio.create_task(wait_set(event, 60))
    await asyncio.sleep(0)
    event.set()
    waiter.cancel()
    results = await asyncio.gather(waiter, return_exceptions=True)
    assert isinstance(results[0], asyncio.CancelledError)


async def test_wait_set_says_whether_the_event_came() -> None:
    event = asyncio.Event()
    assert await wait_set(event, 0.01) is False
    event.set()
    assert await wait_set(event, 0) is True
