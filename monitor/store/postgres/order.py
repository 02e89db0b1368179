"""Calls that take effect in the order they were made, over a pool of connections.

The agent relies on it (``monitor.store.base``): the batched state flush started after a
transition's transaction must not overtake it, and with several pooled connections nothing
else would stop it. SQLite gets the order from its single writer thread; here each call waits
for the writes started before it, and a write also for the reads started before it. Reads
between two writes run side by side (the web views and the outbox's queries need not queue).

The order is fixed when the calling coroutine reaches the call, before its first await, as a
thread's queue fixes it on submit. A call whose caller is cancelled while it still waits for
its turn never runs; once it has begun it finishes (its transaction commits or rolls back
whole), like a crash, never half of one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")


class CallOrder:
    def __init__(self) -> None:
        self._last_write: asyncio.Future[None] | None = None
        self._reads: set[asyncio.Future[None]] = set()
        self._running: set[asyncio.Task[Any]] = set()

    async def run(self, work: Callable[[], Awaitable[T]], write: bool) -> T:
        turn = _Turn()
        task = self.submit(work, write, turn)
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            turn.cancelled = True  # not begun yet: it never will be
            raise

    def submit(
        self, work: Callable[[], Awaitable[T]], write: bool, turn: _Turn | None = None
    ) -> asyncio.Task[T]:
        """Take the next place in the order now and run ``work`` there, whoever awaits it
        (``run``: its caller; a batch of records: each of its callers)."""
        loop = asyncio.get_running_loop()
        before = [self._last_write] if self._last_write is not None else []
        done: asyncio.Future[None] = loop.create_future()
        if write:
            before += self._reads
            self._last_write = done
            self._reads = set()
        else:
            self._reads.add(done)
            done.add_done_callback(self._reads.discard)
        task = asyncio.ensure_future(self._in_turn(before, work, done, turn or _Turn()))
        self._running.add(task)
        task.add_done_callback(self._finished)
        return task

    @staticmethod
    async def _in_turn(
        before: list[asyncio.Future[None]],
        work: Callable[[], Awaitable[T]],
        done: asyncio.Future[None],
        turn: _Turn,
    ) -> T:
        try:
            for earlier in before:
                await earlier
            if turn.cancelled:
                raise asyncio.CancelledError
            return await work()
        finally:
            done.set_result(None)

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._running.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: a caller that was cancelled no longer reads it

    async def drain(self) -> None:
        """Wait for every call made so far (before the connections close)."""
        while self._running:
            await asyncio.gather(*self._running, return_exceptions=True)


class _Turn:
    __slots__ = ("cancelled",)

    def __init__(self) -> None:
        self.cancelled = False
