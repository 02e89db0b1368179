"""Consecutive ``record`` calls in one transaction (the SQLite store's group commit).

A fresh agent's first round is one transition per target (unknown to up), and each was a
transaction of its own: about 0.18 ms of the writer thread apiece, so 50,000 targets took
9 s of commits before their verdicts were stored, longer than an interval. Records that
queue up while the writer thread is busy now go as one transaction when it gets to them.

Only a run of ``record`` calls with nothing else submitted between them is joined: any other
call closes the open batch, so the writer thread still runs everything in the order it was
submitted (records may only move to the position of the first record of their run, never
after a call submitted later). A batch is all or nothing, like each of its records was; each
caller learns the outcome. Unlike a lone call, a record whose caller is cancelled while it is
queued is still written with its batch.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field

from monitor.state import Transition
from monitor.store.schema import StateRow


@dataclass
class Batch:
    records: list[tuple[StateRow, Transition | None]] = field(default_factory=list)
    done: asyncio.Future[None] | None = None  # the writer thread's job for this batch


class GroupCommit:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: Batch | None = None

    def join(self, state: StateRow, transition: Transition | None) -> tuple[Batch, bool]:
        """Add a record to the open batch; True when it starts a new one (whose job the
        caller submits now)."""
        with self._lock:
            if self._open is not None:
                self._open.records.append((state, transition))
                return self._open, False
            self._open = Batch([(state, transition)])
            return self._open, True

    def close(self) -> None:
        """Another call is being submitted: later records go in a batch after it."""
        with self._lock:
            self._open = None

    def take(self, batch: Batch) -> tuple[list[StateRow], list[tuple[str, Transition]]]:
        """In the writer thread, when the batch's job starts: nothing joins it any more."""
        with self._lock:
            if self._open is batch:
                self._open = None
            records = list(batch.records)
        rows = [state for state, _ in records]
        return rows, [(state[0], t) for state, t in records if t is not None]
