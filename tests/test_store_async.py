"""The agent awaits its store: no SQLite statement runs on the event loop's thread, the calls
run in the order they were made, and decisions that now await stay race-free (a transition and
a sweep never open two incidents, resolve one twice, or store an outage out of order)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from monitor.state import TargetState
from monitor.store import SqliteDatabase, SqliteStore
from monitor.web.server import make_app
from tests.agent_harness import Harness

CONFIG = """
[defaults]
interval = "30s"
timeout = "5s"
failure_threshold = 3
recovery_threshold = 2

[[targets]]
name = "router"
kind = "icmp"
host = "192.0.2.1"

[[targets]]
name = "web"
kind = "http"
url = "https://www.acme.example/health"
customer = "acme"
depends_on = ["router"]

[customers.acme]
email = "it@acme.example"

[pagers.oncall]
type = "log"

[escalation]
page_on_open = ["oncall"]
ack_timeout = { urgent = "1h" }
status_update_interval = "1h"
poll_interval = "5m"
"""


class StatementThreads:
    """Every SQLite statement of every connection opened while it is installed, with the
    thread that ran it (``set_trace_callback`` runs in the thread executing the statement)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.seen: list[tuple[threading.Thread, str]] = []
        original = sqlite3.connect

        def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
            db = original(*args, **kwargs)
            db.set_trace_callback(self._record)
            return db

        monkeypatch.setattr(sqlite3, "connect", connect)

    def _record(self, sql: str) -> None:
        self.seen.append((threading.current_thread(), sql))

    def on(self, thread: threading.Thread) -> list[str]:
        return [sql for ran_in, sql in self.seen if ran_in is thread]

    def threads(self) -> set[str]:
        return {ran_in.name for ran_in, _ in self.seen}


@pytest.fixture
def statements(monkeypatch: pytest.MonkeyPatch) -> StatementThreads:
    return StatementThreads(monkeypatch)


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[Harness]]]:
    made: list[Harness] = []

    async def build(text: str = CONFIG) -> Harness:
        h = await Harness.create(tmp_path / "state", text)
        made.append(h)
        return h

    yield build
    for h in made:
        await h.close()


async def test_no_sqlite_statement_runs_on_the_event_loop(
    statements: StatementThreads,
    harness: Callable[..., Awaitable[Harness]],
    aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]],
) -> None:
    """Start, probe results, a transition, its incident, delivery of the ticket and the page,
    the policy's sweep (a status update), the incident sweep, the recovery, the flush, the
    auto-close and every endpoint that reads the store: not one statement on the loop."""
    loop_thread = threading.current_thread()
    h = await harness()
    await h.succeed("web")
    await h.fail("web", 3)  # the transition opens the incident: one transaction
    (incident,) = await h.incidents()
    assert await h.deliver() == 2  # the ticket's create and the page
    h.clock.advance(3600)
    await h.agent.policy.sweep()  # an hour on: a status update
    await h.sweep()
    await h.deliver()
    await h.succeed("web", 2)  # recovers: a note, the pending status, the page's resolve
    await h.deliver()
    await h.agent.book.flush()
    await h.agent.policy.follow_up.sweep()
    client = await aiohttp_client(make_app(h.agent))
    for path in ("/api/incidents", "/api/incidents?open=1", "/api/status", "/readyz"):
        response = await client.get(path)
        assert response.status == 200, (path, await response.text())
    (row,) = await (await client.get("/api/incidents")).json()
    assert (row["id"], row["status"], row["outbox"]) == (incident.id, "resolved", "delivered")
    await h.close()

    assert statements.on(loop_thread) == []
    sql = " ".join(statement for _, statement in statements.seen)
    for expected in (
        "INSERT INTO incidents",
        "INSERT INTO outbox",
        "UPDATE outbox SET attempts",
        "INSERT INTO transitions",
        "INSERT INTO target_state",
        "INSERT INTO local_tickets",
    ):
        assert expected in sql
    assert "watchdesk-store_0" in statements.threads()
    assert len(h.tickets()) == 1  # read after the check: the test's own look at the helpdesk


async def test_the_check_sees_a_statement_run_on_the_loop(
    statements: StatementThreads, tmp_path: Path
) -> None:
    """The same check against a direct synchronous call: it fails, as it should."""
    loop_thread = threading.current_thread()
    database = SqliteDatabase(tmp_path)
    database.incidents()
    database.close()
    assert "SELECT id, target" in " ".join(statements.on(loop_thread))


async def test_the_agents_connection_refuses_the_loop_thread(tmp_path: Path) -> None:
    """A second guard: SqliteStore opens its connection in its writer thread with
    ``check_same_thread``, so a direct call from the loop cannot slip through."""
    store = SqliteStore(tmp_path)
    await store.open()
    assert await store.incidents() == []
    with pytest.raises(sqlite3.ProgrammingError):
        store._db.incidents()  # type: ignore[union-attr]
    await store.close()


async def test_calls_run_in_the_order_they_were_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write started after another never overtakes it, even when nobody awaited the first
    one before starting the second (the flush started after a transition's transaction)."""
    store = SqliteStore(tmp_path)
    await store.open()
    order: list[str] = []

    def save(self: SqliteDatabase, states: list[Any], *args: Any) -> None:
        # A record is written as a batch of rows (``monitor.store.groupcommit``), slowly here.
        if states:
            threading.Event().wait(0.05)
        order.append("record" if states else "save")

    monkeypatch.setattr(SqliteDatabase, "save", save)
    first = asyncio.ensure_future(store.record(("web", "id", TargetState(), 1)))
    second = asyncio.ensure_future(store.save([]))
    await asyncio.gather(second, first)
    assert order == ["record", "save"]
    await store.close()


# ---- races of the decisions that now await ---------------------------------------------------


def open_calls(h: Harness, monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Record every open_incident call: True when it carried the transition."""
    calls: list[bool] = []
    original = h.agent.store.open_incident

    async def spy(*args: Any, **kwargs: Any) -> Any:
        transition = args[3] if len(args) > 3 else kwargs.get("transition")
        calls.append(transition is not None)
        return await original(*args, **kwargs)

    monkeypatch.setattr(h.agent.store, "open_incident", spy)
    return calls


@pytest.mark.parametrize("sweep_first", [False, True])
async def test_a_transition_and_a_sweep_open_one_incident_with_the_transition(
    harness: Callable[..., Awaitable[Harness]], monkeypatch: pytest.MonkeyPatch, sweep_first: bool
) -> None:
    """The third failure's transition waits for the manager while a sweep is due: whichever
    goes first, one incident opens, and it opens with the transition (one transaction)."""
    h = await harness()
    calls = open_calls(h, monkeypatch)
    await h.fail("web", 2)
    lock = h.agent.incidents.decisions
    await lock.acquire()
    tasks: list[asyncio.Task[None]] = []
    if sweep_first:
        tasks.append(asyncio.ensure_future(h.sweep()))
        await asyncio.sleep(0)
    tasks.append(asyncio.ensure_future(h.fail("web")))
    await asyncio.sleep(0.01)  # the state is down, its transition waits for the lock
    assert h.agent.states["web"].status == "down"
    if not sweep_first:
        tasks.append(asyncio.ensure_future(h.sweep()))
        await asyncio.sleep(0)
    lock.release()
    await asyncio.gather(*tasks)
    await h.sweep()
    assert calls == [True]
    assert len(await h.incidents()) == 1
    assert [t.current for t in await h.agent.store.transitions("web")] == ["down"]


async def test_a_recovery_and_sweeps_resolve_once(
    harness: Callable[..., Awaitable[Harness]],
) -> None:
    h = await harness()
    await h.fail("web", 3)
    await h.deliver()
    await h.fail("web")
    await asyncio.gather(h.succeed("web", 2), h.sweep(), h.sweep(), h.agent.policy.sweep())
    await h.sweep()
    (incident,) = await h.incidents()
    assert incident.status == "resolved"
    actions = await h.agent.store.actions_of(incident.id)
    assert [a.operation for a in actions].count("resolve") == 1
    notes = [a.action() for a in actions if a.operation == "note"]
    assert sum("recovered" in getattr(n, "body", "") for n in notes) == 1


async def test_the_flush_never_stores_a_transition_before_its_transaction(
    harness: Callable[..., Awaitable[Harness]],
) -> None:
    """While a transition waits for the manager, the periodic flush leaves its target alone:
    a crash then finds the last stored state, never a down with no incident behind it."""
    h = await harness()
    await h.fail("web")
    await h.agent.book.flush()
    await h.fail("web")  # touched: the next flush would carry it
    lock = h.agent.incidents.decisions
    await lock.acquire()
    task = asyncio.ensure_future(h.fail("web"))
    await asyncio.sleep(0.01)
    await h.agent.book.flush()
    second = SqliteDatabase(h.agent.state_dir)
    try:
        before = second.load_states()["web"][1]
        assert (before.status, before.consecutive_failures) == ("unknown", 1)
        lock.release()
        await task
        assert second.load_states()["web"][1].status == "down"
        assert [i.status for i in second.incidents()] == ["open"]
    finally:
        second.close()
    await h.agent.book.flush()  # and the flush after it does not undo it
    assert (await h.agent.store.load_states())["web"][1].status == "down"


async def test_no_escalation_for_an_incident_resolved_meanwhile(
    harness: Callable[..., Awaitable[Harness]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The policy asks the helpdesk outside the lock; the incident recovers meanwhile: no
    escalation, no page, no note for a resolved incident."""
    h = await harness()
    await h.fail("web", 3)
    await h.deliver()
    (incident,) = await h.incidents()
    h.clock.set(incident.opened_at + 3601)

    async def recovers_meanwhile(_: Any, __: Any) -> str | None:
        await h.succeed("web", 2)
        return None

    monkeypatch.setattr(h.agent.policy.watch, "worked_by", recovers_meanwhile)
    await h.agent.policy.sweep()
    (after,) = await h.incidents()
    assert (after.status, after.escalated_at) == ("resolved", None)
    operations = [a.operation for a in await h.agent.store.actions_of(incident.id)]
    assert operations.count("page") == 1  # the page on open, no escalation page


async def test_a_probe_cancelled_mid_transition_still_finishes_the_decision(
    harness: Callable[..., Awaitable[Harness]],
) -> None:
    """Stopping cancels running probes; a transition already acted on is finished (not half
    of it stored, and the manager's map agrees with the store)."""
    h = await harness()
    await h.fail("web", 2)
    lock = h.agent.incidents.decisions
    await lock.acquire()
    task = asyncio.ensure_future(h.fail("web"))
    await asyncio.sleep(0.01)
    task.cancel()
    lock.release()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.gather(*h.agent._transitions)
    (incident,) = await h.incidents()
    assert h.agent.incidents.open_incident_of("web") == incident
