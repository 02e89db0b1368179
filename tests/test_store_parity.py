"""The two stores answer alike: every call of the ``Store`` interface, made in the same order on
the SQLite store and on the PostgreSQL store, gives the same answer. Then the agent itself,
driven through an outage with the manual clock, leaves the same incidents and outbox in both.

What PostgreSQL adds is checked where it differs: the transition, its incident and its first
actions become visible to another connection together or not at all, and calls keep their
order over a pool of connections."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import psycopg
import pytest

from monitor.actions import Action, AddNote, CreateTicket, ResolvePage, SendPage, SetStatus
from monitor.state import TargetState, Transition
from monitor.store import SqliteStore, Store, StormMember
from monitor.store.postgres import PostgresStore
from tests import test_storms as storms
from tests.agent_harness import START, Harness
from tests.samples import DRAFT
from tests.test_store_async import CONFIG
from ticketing.pagers.base import Page

PAGE = Page(
    dedup_key="watchdesk-web-17",
    summary="[URGENT] web is down",
    details="web is down: status 503",
    priority="urgent",
    reason="open",
    target="web",
    customer="acme",
)
DOWN = TargetState(
    status="down",
    consecutive_failures=3,
    consecutive_successes=0,
    first_failure_at=START,
    since=START + 60,
    last_checked_at=START + 60,
    last_ok=False,
    last_reason="status 503",
    last_duration=0.25,
)
TO_DOWN = Transition("unknown", "down", START + 60, START, 3, "status 503")


def incident_fields(target: str, at: float) -> dict[str, Any]:
    return {
        "target": target,
        "status": "open",
        "priority": "urgent",
        "customer": "acme",
        "backend": "local",
        "opened_at": at,
        "first_failure_at": at - 60,
        "failed_checks": 3,
        "last_reason": "status 503",
        "last_update_at": at,
    }


def member(target: str, customer: str, at: float) -> StormMember:
    return StormMember(0, target, customer, at, at - 30, "status 503")


def first_actions(held_until: float) -> Callable[[int], tuple[str, list[Action]]]:
    def build(incident_id: int) -> tuple[str, list[Action]]:
        key = f"watchdesk-{incident_id}-parity"
        return key, [
            CreateTicket(replace(DRAFT, dedup_key=key)),
            SendPage("oncall", PAGE),
            SendPage("ops", PAGE, not_before=held_until),
        ]

    return build


class Both:
    """Makes each call on both stores and insists on one answer."""

    def __init__(self, sqlite: Store, postgres: Store) -> None:
        self.stores = (sqlite, postgres)

    async def __call__(self, method: str, *args: Any, **kwargs: Any) -> Any:
        answers = [await getattr(store, method)(*args, **kwargs) for store in self.stores]
        assert answers[0] == answers[1], (method, args, answers)
        return answers[0]


@pytest.fixture
async def both(tmp_path: Path, pg_url: str) -> AsyncIterator[Both]:
    sqlite, postgres = SqliteStore(tmp_path), PostgresStore(pg_url, "test")
    await sqlite.open()
    await postgres.open()
    yield Both(sqlite, postgres)
    await sqlite.close()
    await postgres.close()


async def test_every_call_answers_the_same_on_both_stores(both: Both) -> None:
    now = START + 60
    assert await both("writable") is True
    assert await both("last_seq") == 0
    assert await both("load_states") == {}

    # State rows: a newer seq wins, an older one is ignored; transitions kept in order.
    await both("save", [("web", "http:a", TargetState(), 1), ("db", "tcp:b", TargetState(), 2)])
    await both("record", ("web", "http:a", DOWN, 5), TO_DOWN)
    await both("save", [("web", "http:a", TargetState(), 3)])  # older than 5: ignored
    states = await both("load_states")
    assert states["web"] == ("http:a", DOWN)
    assert await both("last_seq") == 5
    await both("transitions")
    assert len(await both("transitions", "web", START)) == 1
    assert await both("transitions", "web", now + 1) == []

    # Mutes, the targets seen and forgetting one.
    await both("set_mute", "db", now + 3600, "migration", "ann", now)
    assert await both("mutes") == {"db": (now + 3600, "migration", "ann")}
    await both("set_mute", "db", now + 7200, "longer", "bob", now)
    await both("mutes")
    await both("set_mute", "db", None, "", "bob", now)
    assert await both("mutes") == {}
    await both("mark_seen", ["web", "db"], now)
    await both("mark_seen", ["web"], now + 30)
    await both("forget", ["db"], now + 40)
    assert await both("targets_seen") == {"web": (now, now + 30), "db": (now, now + 40)}
    assert set(await both("load_states")) == {"web"}

    # An incident opens with its state, transition and first actions; a second one for the same
    # target does not open, though its state is written.
    opened = await both(
        "open_incident",
        incident_fields("web", now),
        first_actions(now + 7200),
        ("web", "http:a", DOWN, 6),
        TO_DOWN,
    )
    assert opened is not None
    assert opened.dedup_key == f"watchdesk-{opened.id}-parity"
    again = await both(
        "open_incident",
        incident_fields("web", now + 1),
        first_actions(now),
        ("web", "http:a", replace(DOWN, consecutive_failures=4), 7),
    )
    assert again is None
    assert (await both("load_states"))["web"][1].consecutive_failures == 4
    other = await both("open_incident", incident_fields("db", now), first_actions(now + 7200))
    assert other is not None

    # The outbox: due heads only, backing-off channels skipped, held pages counted.
    due = await both("due_actions", now)
    assert [(a.incident_id, a.channel) for a in due] == [
        (opened.id, "ticket"),
        (opened.id, "pager:oncall"),
        (other.id, "ticket"),
        (other.id, "pager:oncall"),
    ]
    assert len(await both("due_actions", now, 1)) == 1
    assert {a.channel for a in await both("due_actions", now, 50, ["ticket"])} == {"pager:oncall"}
    assert await both("next_action_time") == now
    assert await both("next_action_time", ["ticket", "pager:oncall"]) == now + 7200
    assert await both("outbox_counts", now) == {"pending": 6, "held": 2}
    create = due[0]
    assert await both("begin_attempt", create.id, now + 1) == 1
    await both("set_sent", create.id, now + 1)
    await both("retry_action", create.id, now + 30, "outcome unknown: timeout")
    assert await both("begin_attempt", create.id, now + 31) == 2
    await both("finish_action", create.id, now + 32, {"ticket_id": "17", "ticket_url": "u/17"})
    await both("set_sent", create.id, None)
    assert (await both("incident", opened.id)).ticket_id == "17"
    await both("finish_action", due[1].id, now + 33, None, "incident over")
    await both("fail_action", due[2].id, "400 invalid_field")
    assert [a.id for a in await both("failed_actions")] == [due[2].id]
    await both("retry_action", due[3].id, now + 900, "channel removed from the config")
    assert [a.id for a in await both("pending_with_error", "channel removed")] == [due[3].id]
    assert await both("release_channel", "pager:oncall", now + 40) == 1  # the held one stays
    assert await both("requeue_failed", now + 50) == 1
    await both("outbox_counts")
    await both("actions_of", opened.id)

    # The incident changes with its next actions and the state that caused them.
    await both(
        "update_incident",
        opened.id,
        {"affected": ("api",), "flapping": 1},
        [AddNote("api is down behind web", public=True)],
        now + 60,
    )
    # Its ticket waits on the customer: the SLA clocks stop once, run again, stop again.
    assert await both("pause_clocks", opened.id, now + 61) is True
    assert await both("pause_clocks", opened.id, now + 62) is False
    assert await both("resume_clocks", opened.id, now + 70) is True
    assert await both("resume_clocks", opened.id, now + 71) is False
    assert await both("pause_clocks", opened.id, now + 80) is True
    assert (await both("incident", opened.id)).pauses == ((now + 61, now + 70), (now + 80, None))
    assert (await both("incident", other.id)).pauses == ()
    up = replace(DOWN, status="up", consecutive_failures=0, consecutive_successes=2, last_ok=True)
    await both(
        "update_incident",
        opened.id,
        {"status": "resolved", "resolved_at": now + 120},
        [
            AddNote("web has recovered", public=True),
            SetStatus("pending"),
            ResolvePage("oncall", "web recovered"),
        ],
        now + 120,
        ("web", "http:a", up, 8),
        Transition("down", "up", now + 120, None, 0, "status 200"),
    )
    resolved = await both("incident", opened.id)
    assert (resolved.status, resolved.affected, resolved.flapping) == ("resolved", ("api",), True)
    # Resolving it ended the pause that lasted.
    assert resolved.pauses == ((now + 61, now + 70), (now + 80, now + 120))
    assert await both("last_resolved") == {"web": now + 120}
    assert [i.id for i in await both("incidents", True)] == [other.id]
    assert len(await both("incidents", False, 1)) == 1
    await both("incidents")
    assert await both("incident", 999) is None
    assert [a.operation for a in await both("actions_of", opened.id)][-3:] == [
        "note",
        "status",
        "resolve",
    ]
    assert [t.current for t in await both("transitions", "web")] == ["down", "down", "up"]

    # After recovery: the delivered pending status starts the wait for the customer; a reply
    # reopens the ticket (a new round of the clocks); closed, it is no longer followed.
    (status,) = [a for a in await both("actions_of", opened.id) if a.operation == "status"]
    waiting = {"ticket_state": "pending", "pending_since": now + 125}
    await both("finish_action", status.id, now + 125, waiting)
    assert [i.id for i in await both("watched_incidents")] == [other.id, opened.id]
    reopen = {"ticket_state": "reopened", "reopened_at": now + 130, "reopens": 1}
    await both("update_incident", opened.id, {**reopen, "pending_since": None}, [], now + 130)
    reopened = await both("incident", opened.id)
    assert (reopened.reopened, reopened.clock_start, reopened.reopens) == (True, now + 130, 1)
    await both("update_incident", opened.id, {"reopen_worked_at": now + 131}, [], now + 131)
    assert (await both("incident", opened.id)).responded_at == now + 131
    closing = {"ticket_state": "closed", "closed_at": now + 140}
    await both("update_incident", opened.id, closing, [SetStatus("closed")], now + 140)
    assert [i.id for i in await both("watched_incidents")] == [other.id]

    # A shared component's customer notices: opened once per customer with its actions, on
    # their own queue; the ticket id lands on the notice; closed once.
    notice_actions: list[Action] = [
        CreateTicket(replace(DRAFT, dedup_key="watchdesk-shared-beta"), notice="beta")
    ]
    opened_notice = ("open_notice", other.id, "beta", "watchdesk-shared-beta", ["api"], None)
    assert await both(*opened_notice, notice_actions, now + 130) is True
    assert await both(*opened_notice, notice_actions, now + 131) is False
    assert await both("open_notice", other.id, "gamma", "k-gamma", [], other.id, [], now) is True
    (notice_create,) = [a for a in await both("due_actions", now + 200) if a.notice == "beta"]
    await both("finish_action", notice_create.id, now + 140, {"ticket_id": "88"})
    beta = await both("notice", other.id, "beta")
    assert (beta.ticket_id, beta.dependents, beta.status) == ("88", ("api",), "open")
    assert (await both("incident", other.id)).ticket_id is None  # not the incident's own
    assert (
        await both(
            "close_notice", beta.id, [AddNote("back", True, notice="beta")], other.id, now + 150
        )
        is True
    )
    assert await both("close_notice", beta.id, [], other.id, now + 151) is False
    assert [n.customer for n in await both("notices", other.id, True)] == ["gamma"]
    assert len(await both("notices")) == 2
    assert await both("notice", other.id, "delta") is None

    # A storm: one incident for many targets, opened with its first members and the transition
    # that made it; one open per name. Its own-ticket actions go to every customer's ticket
    # (none before a customer was told); members join, leave and join again; the last leaving
    # resolves it. The impairment alert is an incident of kind "agent".
    wave = {**incident_fields("the outage of many services", now + 200), "kind": "storm"}
    members = [member("api", "acme", now + 200), member("db", "beta", now + 200)]
    storm = await both(
        "open_storm",
        {**wave, "customer": None},
        lambda i: (f"watchdesk-{i}-storm", [SendPage("oncall", PAGE)]),
        members,
        ("api", "http:c", DOWN, 9),
        TO_DOWN,
    )
    assert (storm.kind, storm.target) == ("storm", "the outage of many services")
    assert await both("open_storm", wave, lambda i: ("k", []), members) is None
    await both("update_incident", storm.id, {}, [AddNote("no one told yet", False)], now + 201)
    assert [a.operation for a in await both("actions_of", storm.id)] == ["page"]
    for customer, name in (("acme", "api"), ("beta", "db")):
        create = CreateTicket(replace(DRAFT, dedup_key=f"storm-{customer}"), notice=customer)
        told = (storm.id, customer, {name: "down"}, [create], [name], now + 210)
        assert await both("tell_storm", *told, f"storm-{customer}") is True
        assert await both("tell_storm", *told, f"storm-{customer}") is False
    await both("update_incident", storm.id, {}, [AddNote("escalated to L2", False)], now + 220)
    notes = [a for a in await both("actions_of", storm.id) if a.operation == "note"]
    assert [(a.notice, a.payload["body"]) for a in notes] == [
        ("acme", "escalated to L2"),
        ("beta", "escalated to L2"),
    ]
    await both("join_storm", storm.id, [member("web", "acme", now + 230)], ("web", "h", DOWN, 10))
    joined = [AddNote("web is down too", True, notice="acme")]
    told_web = (storm.id, "acme", {"web": "down"}, joined, ["api", "web"], now + 235)
    assert await both("tell_storm", *told_web) is True
    assert (await both("notice", storm.id, "acme")).dependents == ("api", "web")
    await both("leave_storm", storm.id, ["api"], now + 240, {}, [], now + 240)
    await both("join_storm", storm.id, [member("api", "acme", now + 250)])
    (api,) = [m for m in await both("storm_members", storm.id) if m.target == "api"]
    assert (api.joined_at, api.left_at, api.told) == (now + 250, None, "down")
    assert {m.target for m in await both("storm_members")} == {"api", "db", "web"}
    await both(
        "leave_storm",
        storm.id,
        ["api", "db", "web"],
        now + 300,
        {"status": "resolved", "resolved_at": now + 300},
        [AddNote("all back", True), ResolvePage("oncall", "all back")],
        now + 300,
        ("api", "http:c", up, 11),
        Transition("down", "up", now + 300, None, 0, "status 200"),
    )
    assert (await both("incident", storm.id)).status == "resolved"
    assert await both("storm_members") == []
    assert {m.left_at for m in await both("storm_members", storm.id)} == {now + 300}
    last = [(a.operation, a.notice) for a in await both("actions_of", storm.id)][-3:]
    assert last == [("note", "acme"), ("note", "beta"), ("resolve", None)]
    impaired = {**incident_fields("watchdesk:impaired:test", now), "kind": "agent"}
    alert = await both("open_incident", {**impaired, "customer": None}, first_actions(now))
    assert alert.kind == "agent"

    # Scheduled reports: known since the first time, claimed once per period, released on a
    # failed send, settled as "unknown" when a send was cut off.
    assert await both("report_known_since", "monthly", now) == now
    assert await both("report_known_since", "monthly", now + 99) == now
    period = (now - 86400, now)
    assert await both("claim_report", "monthly", period, now, now + 1) is True
    assert await both("claim_report", "monthly", period, now, now + 2) is False
    await both("release_report", "monthly", period)
    assert await both("claim_report", "monthly", period, now, now + 3) is True
    await both("finish_report", "monthly", period, now + 4, ["ops@example.com"])
    assert await both("claim_report", "weekly", period, now, now + 5) is True
    (cut,) = await both("settle_report_claims")
    assert (cut.report, cut.state) == ("weekly", "sending")
    assert [(r.report, r.state) for r in await both("reports_sent")] == [
        ("monthly", "sent"),
        ("weekly", "unknown"),
    ]
    assert len(await both("reports_sent", "monthly")) == 1


async def test_calls_keep_their_order_over_the_pool(pg_url: str) -> None:
    """A flush started after a transition's transaction, without awaiting it, lands after it;
    reads started after a write see it, however many connections the pool lends."""
    store = PostgresStore(pg_url, "test")
    await store.open()
    try:
        writes = [
            asyncio.ensure_future(store.record(("web", "id", replace(DOWN, last_duration=i), i)))
            for i in range(1, 20)
        ]
        stale = asyncio.ensure_future(store.save([("web", "id", TargetState(), 0)]))
        seen = asyncio.ensure_future(store.last_seq())
        await asyncio.gather(*writes, stale)
        assert await seen == 19
        assert (await store.load_states())["web"][1].last_duration == 19
    finally:
        await store.close()


async def test_a_cancelled_call_runs_whole_or_not_at_all(pg_url: str) -> None:
    """Stopping cancels callers: a call already running still commits whole, one still
    waiting for its turn never runs (as with SQLite's writer thread)."""
    store = PostgresStore(pg_url, "test")
    await store.open()
    await store.record(("web", "id", TargetState(), 1))
    with psycopg.connect(pg_url) as blocker:
        blocker.execute("SELECT * FROM target_state FOR UPDATE")  # holds the row
        running = asyncio.ensure_future(store.record(("web", "id", DOWN, 2), TO_DOWN))
        # Made once the first is under way: records made in the same instant would be one
        # call (PostgreSQL's group commit, monitor/store/postgres/records.py).
        await asyncio.sleep(0.2)
        later = replace(DOWN, consecutive_failures=9)
        waiting = asyncio.ensure_future(store.record(("web", "id", later, 3)))
        await asyncio.sleep(0.2)
        running.cancel()
        waiting.cancel()
        blocker.rollback()
    for task in (running, waiting):
        with pytest.raises(asyncio.CancelledError):
            await task
    await store.close()
    reopened = PostgresStore(pg_url, "test")
    await reopened.open()
    assert (await reopened.load_states())["web"][1] == DOWN
    assert [t.current for t in await reopened.transitions()] == ["down"]
    await reopened.close()


async def test_a_transition_its_incident_and_its_actions_commit_together(pg_url: str) -> None:
    """Another connection sees none of them while ``build`` runs inside the transaction, all of
    them after it; when ``build`` fails, none of them ever."""
    store = PostgresStore(pg_url, "test")
    await store.open()
    seen_inside: list[tuple[int, int, int]] = []

    def counts(conn: psycopg.Connection[Any]) -> tuple[int, int, int]:
        return tuple(  # type: ignore[return-value]
            conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]  # type: ignore[index]
            for table in ("target_state", "incidents", "outbox")
        )

    with psycopg.connect(pg_url, autocommit=True) as other:
        build = first_actions(START)

        def watching(incident_id: int) -> tuple[str, list[Action]]:
            seen_inside.append(counts(other))
            return build(incident_id)

        incident = await store.open_incident(
            incident_fields("web", START), watching, ("web", "id", DOWN, 1), TO_DOWN
        )
        assert incident is not None
        assert seen_inside == [(0, 0, 0)]
        assert counts(other) == (1, 1, 3)

        def broken(incident_id: int) -> tuple[str, list[Action]]:
            raise ValueError("no actions today")

        with pytest.raises(ValueError, match="no actions today"):
            await store.open_incident(
                incident_fields("db", START), broken, ("db", "id", DOWN, 2), TO_DOWN
            )
        assert counts(other) == (1, 1, 3)
        states = other.execute("SELECT target FROM target_state").fetchall()
        assert states == [("web",)]
    await store.close()


# ---- the agent on both stores ---------------------------------------------------------------


async def outage(h: Harness) -> list[Any]:
    """An outage from start to end with the manual clock: what the store holds after it."""
    await h.succeed("web")
    await h.fail("web", 3)
    await h.deliver()
    h.clock.advance(3600)
    await h.agent.policy.sweep()
    await h.sweep()
    await h.deliver()
    await h.succeed("web", 2)
    await h.deliver()
    await h.agent.book.flush()
    (incident,) = await h.incidents()
    actions = await h.agent.store.actions_of(incident.id)
    kept = [
        (a.channel, a.operation, a.payload, a.state, a.attempts, a.created_at, a.done_at)
        for a in actions
    ]
    states = await h.agent.store.load_states()
    tickets = [
        {k: v for k, v in ticket.items() if k not in ("created_at", "updated_at")}
        for ticket in h.tickets()
    ]
    return [incident, kept, states, await h.agent.store.transitions(), tickets]


async def test_the_agent_leaves_the_same_record_of_an_outage_in_both_stores(
    tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WD_TEST_DATABASE_URL", pg_url)
    cluster = '[cluster]\ndatabase_url_env = "WD_TEST_DATABASE_URL"\nvantage = "test"\n'
    records = []
    for name, text in (("sqlite", CONFIG), ("postgres", CONFIG + cluster)):
        h = await Harness.create(tmp_path / name, text)
        try:
            assert isinstance(h.agent.store, PostgresStore) == (name == "postgres")
            records.append(await outage(h))
        finally:
            await h.close()
    on_sqlite, on_postgres = records
    assert on_sqlite[0].status == "resolved"
    operations = [row[1] for row in on_sqlite[1]]
    assert operations == ["create", "page", "note", "note", "note", "note", "resolve", "status"]
    assert all(row[3] == "done" for row in on_sqlite[1])
    assert on_postgres == on_sqlite


async def storm(h: Harness) -> list[Any]:
    """A storm from start to end (20 targets of 7 customers down within seconds, escalated
    after an hour, back after it), then eight days of the follow-up: what the store and the
    helpdesk hold. The customers' tickets of a storm are notices: after their recovery note
    and status they are the helpdesk's, never closed or reopened by watchdesk."""
    names = [storms.name(i) for i in range(20)]
    await storms.wave(h, names, False, 5.0)
    h.clock.advance(5.0)
    await storms.wave(h, names, False, 5.0)
    h.clock.advance(10.0)
    await storms.settle(h)
    h.clock.advance(3600.0)
    await h.agent.policy.sweep()
    await h.deliver()
    await storms.wave(h, names, True, 5.0)
    await storms.wave(h, names, True, 5.0)
    await storms.settle(h)
    (incident,) = await h.incidents()
    at_recovery = len(await h.agent.store.actions_of(incident.id))
    for _ in range(3):
        h.clock.advance(3 * 86400.0)
        await h.agent.policy.follow_up.sweep()
        await h.agent.policy.sweep()
        await h.sweep()
        await h.deliver()
    (incident,) = await h.incidents()
    actions = await h.agent.store.actions_of(incident.id)
    assert len(actions) == at_recovery
    kept = [(a.channel, a.operation, a.notice, a.payload, a.state, a.done_at) for a in actions]
    # The customers' creates go out together: the helpdesk numbers them as they arrive, so
    # each ticket is known by its customer here.
    whose = {str(ticket["id"]): ticket["customer"] for ticket in h.tickets()}
    tickets = {
        ticket["customer"]: {
            k: v for k, v in ticket.items() if k not in ("id", "created_at", "updated_at")
        }
        for ticket in h.tickets()
    }
    notes = {ticket["customer"]: h.notes(ticket["id"]) for ticket in h.tickets()}
    notices = [replace(n, ticket_id=whose[n.ticket_id]) for n in await h.agent.store.notices()]
    members = await h.agent.store.storm_members(incident.id)
    watched = await h.agent.store.watched_incidents()
    return [incident, kept, members, notices, tickets, notes, watched]


async def test_the_agent_leaves_the_same_record_of_a_storm_in_both_stores(
    tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WD_TEST_DATABASE_URL", pg_url)
    cluster = '[cluster]\ndatabase_url_env = "WD_TEST_DATABASE_URL"\nvantage = "test"\n'
    records = []
    for name, text in (("sqlite", storms.many(20)), ("postgres", storms.many(20) + cluster)):
        h = await Harness.create(tmp_path / name, text)
        try:
            records.append(await storm(h))
        finally:
            await h.close()
    on_sqlite, on_postgres = records
    incident, kept, members, notices, tickets, notes, watched = on_sqlite
    assert (incident.kind, incident.status, incident.ticket_state) == ("storm", "resolved", "open")
    assert incident.response_target == 3600  # the default urgent plan's, stored at opening
    assert len(members) == 20
    assert all(m.left_at is not None for m in members)
    assert [n.status for n in notices] == ["closed"] * 7
    assert [t["status"] for t in tickets.values()] == ["pending"] * 7
    for ticket_notes in notes.values():  # escalated once, recovered once, nothing after
        assert sum("escalated" in note for note in ticket_notes) == 1
        assert sum("the incident is over" in note for note in ticket_notes) == 1
        assert not any("without reply" in note for note in ticket_notes)
    assert [(op, notice) for _, op, notice, *_ in kept].count(("status", None)) == 0
    assert all(row[4] == "done" for row in kept)
    assert watched == []
    assert on_postgres == on_sqlite


async def test_claims_and_compare_and_set_answer_the_same_on_both_stores(both: Both) -> None:
    """``claim_actions`` hands out the due queue heads with their attempt counted (PostgreSQL
    adds a claim token, which the one worker of a SQLite store has no use for), and an
    ``update_incident`` that expects what is no longer there changes and queues nothing."""
    now = START + 60
    opened = await both("open_incident", incident_fields("web", now), first_actions(now + 3600))
    sqlite, postgres = both.stores
    claimed = [await store.claim_actions(now, 8) for store in (sqlite, postgres)]
    assert [replace(a, claim_token=None) for a in claimed[1]] == claimed[0]
    assert [(a.channel, a.attempts, a.last_error) for a in claimed[0]] == [
        ("ticket", 1, "in flight"),
        ("pager:oncall", 1, "in flight"),
    ]
    assert claimed[0][0].claim_token is None
    assert claimed[1][0].claim_token is not None
    # Claimed is taken: another agent's claim gets nothing of it (SQLite has one worker).
    assert await postgres.claim_actions(now, 8, [], None, "pager:oncall") == []
    create = claimed[1][0]
    for store, action in zip(both.stores, (claimed[0][0], create), strict=True):
        assert await store.finish_action(action.id, now + 1, {"ticket_id": "7"}, None, None)

    escalate = {"escalation_level": 1, "escalated_at": now + 5}
    expect = {"status": "open", "escalation_level": 0, "worked_at": None}
    note = [AddNote("escalated", public=False)]
    assert await both("update_incident", opened.id, escalate, note, now + 5, None, None, expect)
    assert not await both("update_incident", opened.id, escalate, note, now + 6, None, None, expect)
    notes = [a for a in await both("actions_of", opened.id) if a.operation == "note"]
    assert len(notes) == 1  # the second escalation queued nothing
    assert (await both("incident", opened.id)).escalation_level == 1
