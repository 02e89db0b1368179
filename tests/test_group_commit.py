"""A fresh agent's first round stores its verdicts in a few transactions, not one per target
(issue 13: 50,000 first verdicts were 9 s of commits), and a record never passes a store call
made after it."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from checks import ProbeResult
from monitor.state import TargetState
from monitor.store import SqliteStore
from tests.agent_harness import Harness
from tests.test_store_async import StatementThreads

COUNT = 400


def config(count: int) -> str:
    targets = "".join(
        f'\n[[targets]]\nname = "t{i}"\nkind = "tcp"\nhost = "127.0.0.1"\nport = 9\n'
        for i in range(count)
    )
    return '[defaults]\ninterval = "10s"\ntimeout = "5s"\nrecovery_threshold = 1\n' + targets


async def test_a_first_round_is_stored_in_a_few_transactions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    statements = StatementThreads(monkeypatch)
    h = await Harness.create(tmp_path / "state", config(COUNT))
    try:
        writer = {thread for thread, _ in statements.seen} - {threading.current_thread()}
        before = len(statements.seen)
        ok = ProbeResult(True, 0.01, "connected")
        transitions = await asyncio.gather(
            *(h.agent.apply_result(target, ok) for target in h.config.targets)
        )
        assert all(t is not None and t.current == "up" for t in transitions)
        commits = [
            sql for thread, sql in statements.seen[before:] if thread in writer and sql == "COMMIT"
        ]
        assert 1 <= len(commits) <= 3  # the first alone, the rest joined while it ran
        stored = await h.agent.store.load_states()
        assert {name for name, (_, state) in stored.items() if state.status == "up"} == {
            f"t{i}" for i in range(COUNT)
        }
        assert len(await h.agent.store.transitions()) == COUNT
    finally:
        await h.close()


async def test_a_record_never_passes_a_call_made_after_it(tmp_path: Path) -> None:
    """record, forget, record of one target, made together: the second record must come after
    the forget (had it joined the first record's transaction, the forget would delete it)."""
    store = SqliteStore(tmp_path)
    await store.open()
    try:
        first = ("web", "id", TargetState(status="up"), 1)
        second = ("web", "id", TargetState(status="down"), 2)
        await asyncio.gather(store.record(first), store.forget(["web"], 0.0), store.record(second))
        stored = await store.load_states()
        assert stored["web"][1].status == "down"
    finally:
        await store.close()
