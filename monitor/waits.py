"""Waiting for an event with a time limit, without losing a cancel.

Python 3.11's ``asyncio.wait_for(event.wait(), timeout)`` returns normally when the event was
set in the same turn of the loop as the task was cancelled: the cancel is swallowed. A loop
task woken by ``notify()`` just as ``stop()`` cancels it then runs on, and ``stop()`` waits
for it forever (an agent whose last probe opened an incident while it was stopping never
exited). ``asyncio.timeout`` counts cancels, so the stop always wins; it also makes no extra
task per wait.
"""

from __future__ import annotations

import asyncio


async def wait_set(event: asyncio.Event, within: float) -> bool:
    """Until ``event`` is set (True) or ``within`` seconds pass (False); a cancel raises."""
    try:
        async with asyncio.timeout(max(0.0, within)):
            await event.wait()
    except TimeoutError:
        return False
    return True
