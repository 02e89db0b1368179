"""The database's side of a fenced write (``monitor.store.fence``): what the transaction does
first (it may idle only briefly) and last (the leases it needs are still this agent's).

The last check tells two refusals apart. A lease whose row still names this agent under the
epoch it holds, but which runs out within the margin, refuses the write as "expired": nobody
else can hold it (taking writes the taker's name), and the agent's next renew keeps it. A
lease that names another agent, or a newer epoch, refuses it as "lost": the agent must let
the slot go."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg

from monitor.store.fence import Fence, Fenced

Connection = psycopg.AsyncConnection[tuple[Any, ...]]


async def limit_idling(conn: Connection, seconds: float) -> None:
    """The server ends this transaction if the agent leaves it idle longer than ``seconds``
    (paused, stalled): a write that passed its check cannot commit after the lease moved."""
    await conn.execute(
        "SELECT set_config('idle_in_transaction_session_timeout', %s, true)",
        (f"{max(1, round(seconds * 1000))}ms",),
    )


async def check(conn: Connection, fences: Sequence[Fence], margin: float) -> None:
    """Every lease the write needs is still this agent's, under its epoch, for at least
    ``margin`` more seconds (database time); else ``Fenced``, and the transaction rolls back."""
    found: dict[int | None, tuple[int, bool]] = {}
    slots = [f for f in fences if f.slot is not None]
    if slots:
        cursor = await conn.execute(
            "SELECT slot, epoch, expires_at > clock_timestamp() + make_interval(secs => %s)"
            " FROM shard_lease WHERE vantage = %s AND owner = %s AND slot = ANY(%s)",
            (margin, slots[0].vantage, slots[0].owner, [f.slot for f in slots]),
        )
        found |= {slot: (epoch, live) for slot, epoch, live in await cursor.fetchall()}
    coordinator = [f for f in fences if f.slot is None]
    if coordinator:
        cursor = await conn.execute(
            "SELECT epoch, expires_at > clock_timestamp() + make_interval(secs => %s)"
            " FROM coordinator_lease WHERE id = 1 AND owner = %s",
            (margin, coordinator[0].owner),
        )
        row = await cursor.fetchone()
        if row is not None:
            found[None] = (row[0], row[1])
    lost = [f for f in fences if found.get(f.slot, (None, False))[0] != f.epoch]
    if lost:
        raise Fenced(
            f"write refused: {len(lost)} lease(s) it needs are another agent's now", "lost", lost
        )
    if not all(found[f.slot][1] for f in fences):
        raise Fenced("write refused: its leases run out before it could commit", "expired")
