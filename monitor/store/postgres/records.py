"""Consecutive ``record`` calls in one transaction (the PostgreSQL store's group commit).

A fresh agent's first round is one transition per target (unknown to up), each a fenced
transaction of its own: six round trips and a commit apiece, one after the other in the call
order, so an agent taking 30,000 targets spent 45-150 s writing first verdicts (issue 13).
Records that queue up behind a write in flight now go as one transaction when their turn
comes, fenced by the leases of all their targets.

As on SQLite (``monitor.store.groupcommit``), only a run of ``record`` calls with nothing else
submitted between them is joined: any other call closes the open batch, so a record may move
to the position of the first record of its run, never after a call made later. A record made
on behalf of other targets (``for_target`` naming another, or the coordinator) goes alone.

A lease lost for one target must not refuse the others' records: when the joined transaction
is fenced, each record is written again on its own, in the same turn, and only those whose
lease is gone are refused. Any other failure (the database away) is every record's. As with a
lone call, a record whose caller is cancelled (a stop) before its batch's turn never runs; once
the turn has begun it commits or not with the batch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from monitor.state import Transition
from monitor.store.fence import Fenced
from monitor.store.schema import StateRow

Record = tuple[StateRow, Transition | None]
# Writes the records in one transaction fenced by all their targets; raises like ``_write``.
WriteAll = Callable[[list[Record]], Awaitable[None]]


@dataclass
class RecordBatch:
    records: list[Record] = field(default_factory=list)
    outcomes: dict[int, BaseException] = field(default_factory=dict)  # by place; none: written
    written: asyncio.Future[RecordBatch] | None = None  # its turn in the call order
    started: bool = False
    withdrawn: set[int] = field(default_factory=set)  # places whose callers were cancelled

    def withdraw(self, index: int) -> bool:
        """The caller of place ``index`` is cancelled: True if its record will not be written
        (the batch's turn has not begun)."""
        if not self.started:
            self.withdrawn.add(index)
        return not self.started


class RecordJoiner:
    def __init__(self) -> None:
        self._open: RecordBatch | None = None

    def join(self, record: Record) -> tuple[RecordBatch, int, bool]:
        """Add ``record`` to the open batch: the batch, the record's place in it, and True
        when it starts a new batch (whose write the caller submits now)."""
        if self._open is not None:
            self._open.records.append(record)
            return self._open, len(self._open.records) - 1, False
        self._open = RecordBatch([record])
        return self._open, 0, True

    def close(self) -> None:
        """Another call is being submitted: later records go in a batch after it."""
        self._open = None

    async def write(self, batch: RecordBatch, write_all: WriteAll) -> RecordBatch:
        """When the batch's turn comes (nothing joins it any more): every record's outcome."""
        if self._open is batch:
            self._open = None
        batch.started = True
        places = [i for i in range(len(batch.records)) if i not in batch.withdrawn]
        if not places:
            return batch
        try:
            await write_all([batch.records[i] for i in places])
        except Fenced as refused:
            if len(places) == 1:
                batch.outcomes[places[0]] = refused
            else:
                for place in places:
                    if (failed := await _alone(write_all, batch.records[place])) is not None:
                        batch.outcomes[place] = failed
        except Exception as failed:
            batch.outcomes.update(dict.fromkeys(places, failed))
        return batch


async def _alone(write_all: WriteAll, record: Record) -> BaseException | None:
    try:
        await write_all([record])
    except Exception as failed:
        return failed
    return None
