"""A transition and what it causes are one fact, and a restarted agent never guesses.

Each test stops an agent without its final flush (what a SIGKILL leaves behind) and opens the
store afresh, or starts a second agent on the same state directory.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from monitor.errors import StoreError
from monitor.state import TargetState, Transition
from monitor.store import SCHEMA_VERSION, SqliteDatabase
from tests.agent_harness import START, Harness

CONFIG = """
[defaults]
interval = "30s"
timeout = "5s"
failure_threshold = 3
recovery_threshold = 2

[[targets]]
name = "web"
kind = "tcp"
host = "127.0.0.1"
port = 9
customer = "acme"

[customers.acme]
email = "it@acme.example"
"""


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[Harness]]]:
    made: list[Harness] = []

    async def build(start: float = START) -> Harness:
        h = await Harness.create(tmp_path / "state", CONFIG, start=start)
        made.append(h)
        return h

    yield build
    for h in made:
        await h.close()


def stored(h: Harness) -> tuple[TargetState, list[str], list[tuple[str, str | None]]]:
    """What a crash right now leaves behind: the state of web, its transitions, its incidents
    (status, resolved_at) -- read through a second connection, nothing flushed."""
    second = SqliteDatabase(h.agent.state_dir)
    try:
        (_, state) = second.load_states()["web"]
        transitions = [t.current for t in second.transitions("web")]
        incidents = [
            (i.status, None if i.resolved_at is None else "set") for i in second.incidents()
        ]
    finally:
        second.close()
    return state, transitions, incidents


async def test_the_down_transition_and_its_incident_are_stored_together(
    harness: Callable[..., Awaitable[Harness]],
) -> None:
    h = await harness()
    await h.succeed("web")
    await h.fail("web", 3)
    state, transitions, incidents = stored(h)
    assert state.status == "down"
    assert transitions == ["up", "down"]
    assert incidents == [("open", None)]
    actions = await h.agent.store.actions_of((await h.incidents())[0].id)
    assert [a.operation for a in actions] == ["create"]


async def test_the_up_transition_and_the_resolve_are_stored_together(
    harness: Callable[..., Awaitable[Harness]],
) -> None:
    h = await harness()
    await h.fail("web", 3)
    await h.succeed("web", 2)
    state, transitions, incidents = stored(h)
    assert state.status == "up"
    assert transitions == ["down", "up"]
    assert incidents == [("resolved", "set")]


async def test_a_failed_transaction_stores_nothing_of_the_transition(
    harness: Callable[..., Awaitable[Harness]],
) -> None:
    h = await harness()
    store = h.agent.store
    before = await store.load_states()

    def broken(incident_id: int) -> tuple[str, list[tuple[str, str, dict[str, object]]]]:
        raise sqlite3.OperationalError("disk I/O error")

    state = TargetState(status="down", consecutive_failures=3, since=START, first_failure_at=START)
    transition = Transition("up", "down", START, START, 3, "refused")
    with pytest.raises(StoreError):
        await store.open_incident(
            {"target": "web", "status": "open", "priority": "urgent", "customer": None,
             "backend": "local", "opened_at": START, "first_failure_at": START,
             "failed_checks": 3, "last_reason": "refused"},
            broken,
            ("web", "x", state, 10**6),
            transition,
        )  # fmt: skip
    assert await store.load_states() == before
    assert await store.transitions("web") == []
    assert await store.incidents() == []


async def test_an_older_flush_never_overwrites_a_newer_state(
    harness: Callable[..., Awaitable[Harness]],
) -> None:
    h = await harness()
    store = h.agent.store
    newer = TargetState(status="down", consecutive_failures=3)
    older = TargetState(status="up", consecutive_successes=9)
    await store.record(("web", "id", newer, 20))
    await store.save([("web", "id", older, 19)])
    assert (await store.load_states())["web"][1] == newer


async def test_a_streak_that_turns_around_is_stored_at_once(
    harness: Callable[..., Awaitable[Harness]],
) -> None:
    """Two failures (flushed), a success (not flushed), a crash: the restarted agent must not
    add the two old failures to the next one and open an incident for a blip."""
    h = await harness()
    await h.succeed("web")
    await h.fail("web", 2)
    await h.agent.book.flush()
    await h.succeed("web")
    state, _, _ = stored(h)
    assert state.consecutive_failures == 0
    assert state.last_ok is True
    await h.close()

    again = await harness(start=h.clock.now())
    await again.fail("web", 2)
    await again.sweep()
    assert (await again.incidents()) == []
    await again.fail("web")
    assert len(await again.incidents()) == 1


async def test_counters_carry_over_a_restart_when_nothing_turned(
    harness: Callable[..., Awaitable[Harness]],
) -> None:
    h = await harness()
    await h.succeed("web")
    await h.fail("web", 2)
    await h.agent.book.flush()
    await h.close()
    again = await harness(start=h.clock.now())
    await again.fail("web")
    assert len(await again.incidents()) == 1


async def test_an_open_incident_is_the_truth_after_a_restart(
    harness: Callable[..., Awaitable[Harness]],
) -> None:
    """A stored 'up' beside an open incident (a store from before this rule, or a state
    reset by a changed probe): the restarted agent starts from down and needs the full
    recovery_threshold of fresh successes."""
    h = await harness()
    await h.fail("web", 3)
    assert len(await h.incidents()) == 1
    await h.agent.store.record(("web", h.agent.identities["web"], TargetState(status="up"), 10**9))
    await h.close()

    again = await harness(start=h.clock.now())
    assert again.agent.states["web"].status == "down"
    await again.sweep()
    await again.succeed("web")
    await again.sweep()
    assert (await again.incidents())[0].status == "open"
    await again.succeed("web")
    (resolved,) = await again.incidents()
    assert resolved.status == "resolved"
    assert resolved.resolved_at is not None
    assert resolved.resolved_at >= resolved.opened_at


async def test_a_stale_down_covered_by_a_resolved_incident_opens_nothing(
    harness: Callable[..., Awaitable[Harness]],
) -> None:
    h = await harness()
    await h.fail("web", 3)
    await h.succeed("web", 2)
    (incident,) = await h.incidents()
    assert incident.status == "resolved"
    # The stored row says down from before the resolve (as a lost write would leave it).
    down = TargetState(status="down", consecutive_failures=3, since=incident.opened_at)
    await h.agent.store.record(("web", h.agent.identities["web"], down, 10**9))
    await h.close()

    again = await harness(start=h.clock.now())
    assert again.agent.states["web"].status == "unknown"
    await again.sweep()
    assert len(await again.incidents()) == 1
    await again.succeed("web")
    assert again.agent.states["web"].status == "up"
    assert len(await again.incidents()) == 1


async def test_a_stored_down_opens_nothing_until_a_fresh_probe_confirms_it(
    harness: Callable[..., Awaitable[Harness]],
) -> None:
    h = await harness()
    down = TargetState(status="down", consecutive_failures=5, since=START, first_failure_at=START)
    await h.agent.store.record(("web", h.agent.identities["web"], down, 10**9))
    await h.close()

    again = await harness(start=START + 300)
    await again.sweep()
    assert (await again.incidents()) == []  # nothing decided on the stored state alone
    await again.succeed("web", 2)
    await again.sweep()
    assert (await again.incidents()) == []  # it was over: no incident for an outage that ended


async def test_no_incident_ends_before_it_opened(
    harness: Callable[..., Awaitable[Harness]],
) -> None:
    h = await harness()
    await h.fail("web", 3)
    # A state whose 'since' predates the incident (a clock step back, a stale row).
    h.agent.states["web"] = TargetState(status="up", consecutive_successes=2, since=START - 3600)
    await h.sweep()
    (resolved,) = await h.incidents()
    assert resolved.resolved_at is not None
    assert resolved.resolved_at >= resolved.opened_at


async def test_a_version_1_store_is_migrated_and_keeps_a_maybe_sent_create(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    db = sqlite3.connect(state_dir / "watchdesk.sqlite3")
    db.executescript(
        """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO meta VALUES ('schema_version', '1');
        CREATE TABLE target_state (target TEXT PRIMARY KEY, identity TEXT NOT NULL,
            status TEXT NOT NULL, consecutive_failures INTEGER NOT NULL,
            consecutive_successes INTEGER NOT NULL, first_failure_at REAL, since REAL,
            last_checked_at REAL, last_ok INTEGER, last_reason TEXT NOT NULL,
            last_duration REAL NOT NULL);
        INSERT INTO target_state VALUES ('web', 'i', 'down', 3, 0, 1.0, 2.0, 3.0, 0, 'x', 0.1);
        CREATE TABLE outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, incident_id INTEGER NOT NULL,
            channel TEXT NOT NULL, operation TEXT NOT NULL, payload TEXT NOT NULL,
            state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at REAL NOT NULL, last_attempt_at REAL, last_error TEXT,
            created_at REAL NOT NULL, done_at REAL);
        INSERT INTO outbox (incident_id, channel, operation, payload, state, attempts,
            next_attempt_at, last_attempt_at, last_error, created_at)
            VALUES (1, 'ticket', 'create', '{}', 'pending', 2, 5.0, 4.0,
                    'outcome unknown: freshdesk: connection lost', 1.0);
        """
    )
    db.close()
    store = SqliteDatabase(state_dir)
    try:
        assert store.load_states()["web"][1].status == "down"
        (action,) = store.due_actions(10.0)
        assert action.sent_at == 4.0
        assert store._db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    finally:
        store.close()


async def test_a_store_from_a_newer_watchdesk_is_refused_with_a_clear_error(
    tmp_path: Path,
) -> None:
    SqliteDatabase(tmp_path).close()
    db = sqlite3.connect(tmp_path / "watchdesk.sqlite3")
    db.execute("PRAGMA user_version = 99")
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="newer watchdesk"):
        SqliteDatabase(tmp_path)
