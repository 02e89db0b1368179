"""Typed, versioned outbox actions, and stores made by older watchdesks (0.1: schema 1, actions
without a version; schema 4, before customer notices, tiers and the ticket follow-up; schema 6,
before storms; schema 7, before the follow-up; schema 8, before storms' incident kinds) opened
and drained by this one, their pending tickets followed from when their status was delivered."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from monitor import actions
from monitor.actions import AddNote, CreateTicket, ResolvePage, SendPage, SetStatus
from monitor.reporting.figures import build_report
from monitor.reporting.timelines import ReportData
from monitor.store import SCHEMA_VERSION
from tests.agent_harness import START, Harness
from ticketing.base import TicketDraft
from ticketing.pagers.base import Page

DATA = Path(__file__).parent / "data" / "store-v1.sqlite3"
# Made by watchdesk at commit 505f57f (schema 4) with DATA_CONFIG: web and db down, their
# tickets and pages queued, nothing delivered.
DATA_V4 = Path(__file__).parent / "data" / "store-v4.sqlite3"
# Made by watchdesk at 505f57f (schema 4, see V4_CONFIG): incident 1 of web escalated twice
# (L2, L3) and resolved, incident 2 open.
DATA_V4_ESCALATED = Path(__file__).parent / "data" / "store-v4-escalated.sqlite3"
# Made by e2fd579 (schema 6) with DATA_CONFIG: web down (open), db down and back (resolved).
DATA_V6 = Path(__file__).parent / "data" / "store-v6.sqlite3"

DRAFT = TicketDraft(
    dedup_key="watchdesk-7-abc",
    subject="[URGENT] web is down",
    description="web is down.\nLast error: status 503",
    priority="urgent",
    requester_email="it@acme.example",
    target="web",
    customer="acme",
    tags=("watchdesk", "watchdesk-7-abc"),
)
PAGE = Page(
    dedup_key="watchdesk-7-abc",
    summary="[URGENT] web is down",
    details="web is down: status 503",
    priority="urgent",
    reason="open",
    target="web",
    customer="acme",
)
EVERY_KIND: list[actions.Action] = [
    CreateTicket(DRAFT),
    AddNote("web has recovered", public=True),
    AddNote("escalated", public=False),
    SetStatus("pending"),
    SetStatus("open"),
    SetStatus("closed"),
    SendPage("oncall", PAGE),
    SendPage("ops", PAGE, not_before=1_800_000_000.0),
    ResolvePage("oncall", "web recovered after 5m"),
    CreateTicket(DRAFT, notice="globex"),
    AddNote("the shared component is back", public=True, notice="globex"),
    SetStatus("resolved", notice="globex"),
]


@pytest.mark.parametrize(
    "action",
    EVERY_KIND,
    ids=lambda a: type(a).__name__ + ("-notice" if getattr(a, "notice", None) else ""),
)
def test_every_action_survives_its_stored_form(action: actions.Action) -> None:
    stored = actions.to_json(action)
    assert stored["v"] == actions.VERSION
    assert actions.from_json(action.channel, action.operation, stored) == action


def test_a_payload_of_the_first_release_reads_as_the_same_action() -> None:
    legacy = {"draft": {**actions.to_json(CreateTicket(DRAFT))["draft"]}}
    assert actions.from_json("ticket", "create", legacy) == CreateTicket(DRAFT)
    assert actions.from_json("pager:oncall", "resolve", {"summary": "over"}) == ResolvePage(
        "oncall", "over"
    )


def test_a_note_of_version_1_is_for_the_incidents_own_ticket() -> None:
    note = actions.from_json("ticket", "note", {"v": 1, "body": "x", "public": True})
    assert note == AddNote("x", public=True)
    assert note.notice is None


def test_unknown_fields_in_a_stored_action_do_not_break_it() -> None:
    stored = actions.to_json(CreateTicket(DRAFT))
    stored["draft"]["some_field_a_later_release_added"] = 1
    assert actions.from_json("ticket", "create", stored) == CreateTicket(DRAFT)


def test_an_action_from_a_newer_watchdesk_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="newer watchdesk"):
        actions.from_json("ticket", "note", {"v": actions.VERSION + 1, "body": "x"})


async def test_a_store_of_the_first_release_is_migrated_and_its_queue_delivered(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    shutil.copy(DATA, state / "watchdesk.sqlite3")
    with sqlite3.connect(state / "watchdesk.sqlite3") as db:
        assert db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone() == ("1",)
        queued = db.execute("SELECT COUNT(*) FROM outbox WHERE state = 'pending'").fetchone()[0]
    assert queued == 7

    h = await Harness.create(state, DATA_CONFIG)
    try:
        with sqlite3.connect(state / "watchdesk.sqlite3") as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]
        assert version == SCHEMA_VERSION
        h.clock.advance(600)  # the file's actions were queued a few minutes after START
        await h.deliver()
        tickets = {t["subject"]: t for t in h.tickets()}
        assert set(tickets) == {"[URGENT] web is down", "[URGENT] db is down"}
        db_ticket = tickets["[URGENT] db is down"]
        assert db_ticket["status"] == "pending"
        assert any("db has recovered" in note for note in h.notes(db_ticket["id"]))
        assert await h.agent.store.outbox_counts() == {"done": 7}
    finally:
        await h.close()


async def test_a_store_of_schema_4_is_migrated_and_its_queue_delivered(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    shutil.copy(DATA_V4, state / "watchdesk.sqlite3")
    with sqlite3.connect(state / "watchdesk.sqlite3") as db:
        assert db.execute("PRAGMA user_version").fetchone() == (4,)
        columns = {row[1] for row in db.execute("PRAGMA table_info(outbox)")}
        assert "notice" not in columns

    h = await Harness.create(state, DATA_CONFIG)
    try:
        with sqlite3.connect(state / "watchdesk.sqlite3") as db:
            assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
            columns = {row[1] for row in db.execute("PRAGMA table_info(outbox)")}
            assert "notice" in columns
        assert await h.agent.store.notices() == []
        h.clock.advance(600)
        await h.deliver()
        assert sorted(str(t["subject"]) for t in h.tickets()) == [
            "[URGENT] db is down",
            "[URGENT] web is down",
        ]
        assert await h.agent.store.outbox_counts() == {"done": 4}
    finally:
        await h.close()


async def test_a_store_of_schema_6_is_migrated_and_its_queue_delivered(tmp_path: Path) -> None:
    """Schema 9 adds what an incident stands for (a target, a storm, the agent) and the
    members of storms; the incidents and queue of schema 6 (e2fd579) carry over."""
    state = tmp_path / "state"
    state.mkdir()
    shutil.copy(DATA_V6, state / "watchdesk.sqlite3")
    with sqlite3.connect(state / "watchdesk.sqlite3") as db:
        assert db.execute("PRAGMA user_version").fetchone() == (6,)
        columns = {row[1] for row in db.execute("PRAGMA table_info(incidents)")}
        assert "kind" not in columns

    h = await Harness.create(state, DATA_CONFIG)
    try:
        with sqlite3.connect(state / "watchdesk.sqlite3") as db:
            assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        incidents = await h.incidents()
        assert [(i.target, i.status, i.kind) for i in incidents] == [
            ("web", "open", "target"),
            ("db", "resolved", "target"),
        ]
        assert await h.agent.store.storm_members() == []
        assert h.agent.incidents.open_incident_of("web") == incidents[0]
        h.clock.advance(600)
        await h.deliver()
        tickets = {str(t["subject"]): t for t in h.tickets()}
        assert set(tickets) == {"[URGENT] web is down", "[URGENT] db is down"}
        assert tickets["[URGENT] db is down"]["status"] == "pending"
        assert await h.agent.store.outbox_counts() == {"done": 7}
    finally:
        await h.close()


# The config the files in tests/data were made with (watchdesk 0.1, commit 497a8ba).
DATA_CONFIG = """
[defaults]
interval = "30s"
failure_threshold = 2
recovery_threshold = 1

[[targets]]
name = "web"
kind = "tcp"
host = "127.0.0.1"
port = 9
customer = "acme"

[[targets]]
name = "db"
kind = "tcp"
host = "127.0.0.1"
port = 9

[customers.acme]
email = "it@acme.example"

[pagers.oncall]
type = "log"

[escalation]
page_on_open = ["oncall"]
"""


async def test_a_page_no_watchdesk_can_read_is_refused_not_crashed_on(tmp_path: Path) -> None:
    """A queued page from a newer watchdesk: refused once, kept, and the outbox goes on."""
    h = await Harness.create(tmp_path / "state", DATA_CONFIG)
    try:
        await h.fail("web", 2)
        with sqlite3.connect(tmp_path / "state" / "watchdesk.sqlite3") as db:
            db.execute(
                "UPDATE outbox SET payload = ? WHERE channel = 'pager:oncall'",
                ('{"v": 99, "page": {}}',),
            )
        await h.deliver()
        (incident,) = await h.incidents()
        states = {a.channel: a for a in await h.agent.store.actions_of(incident.id)}
        assert states["ticket"].state == "done"
        assert states["pager:oncall"].state == "failed"
        assert "cannot read the stored action" in str(states["pager:oncall"].last_error)
    finally:
        await h.close()


V4_CONFIG = """
[defaults]
interval = "30s"
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

[pagers.oncall]
type = "log"

[escalation]
page_on_open = ["oncall"]
chain = [
  { tier = "L2", role = "senior engineer", after = "30m", page = ["oncall"] },
  { tier = "L3", role = "IT head", after = "30m", page = ["oncall"] },
]
"""


async def test_a_store_of_schema_4_gets_the_tiers_reached_and_judges_old_incidents_by_today(
    tmp_path: Path,
) -> None:
    """Version 7 adds the tier and the SLA targets to incidents: the tier of an old incident
    follows from the levels it fired; it has no stored targets, so reports judge it against
    the config of the day."""
    state = tmp_path / "state"
    state.mkdir()
    shutil.copy(DATA_V4_ESCALATED, state / "watchdesk.sqlite3")
    h = await Harness.create(state, V4_CONFIG, start=START + 4 * 3600)
    try:
        with sqlite3.connect(state / "watchdesk.sqlite3") as db:
            assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        first, second = await h.incidents()
        assert (first.escalation_level, first.tier, second.tier) == (2, "L3", "L1")
        # Version 8: its pending status, delivered 65 minutes after START, starts its wait.
        assert (first.ticket_state, first.pending_since) == ("pending", 1795518300.0)
        assert first.response_target is None
        assert first.resolution_target is None
        await h.succeed("web", 2)  # the open incident recovers under this watchdesk
        await h.sweep()
        assert (
            'watchdesk_incidents_resolved_total{customer="acme",priority="urgent",tier="L1"} 1.0'
            in h.agent.metrics.exposition().decode()
        )
        data = await ReportData.fetch(h.agent.store)
        report = build_report(data, h.config, START, h.clock.now())
        (urgent,) = report.sla
        # Today's urgent targets: respond within 1h, resolve within 2h.
        assert (urgent.response_targets, urgent.resolution_targets) == ([3600], [7200])
        # Both answered only by their recovery: incident 1 after 63 minutes (late, resolved in
        # time), incident 2 after about 3 hours (late twice).
        assert (urgent.incidents, urgent.within) == (2, 0)
        assert (urgent.resolution_incidents, urgent.resolution_within) == (2, 1)
        assert [(t.tier, t.incidents) for t in report.tiers] == [("L1", 1), ("L3", 1)]
    finally:
        await h.close()


async def test_a_schema_7_store_follows_the_tickets_it_had_set_pending(tmp_path: Path) -> None:
    """A store from before the follow-up (schema 7, today's main: no ticket_state, no pauses):
    its resolved incident whose pending status was delivered waits on the customer from that
    delivery (not from a later status of a customer's notice ticket), and is closed 7 days
    after it."""
    state = tmp_path / "state"
    h = await Harness.create(state, DATA_CONFIG)
    await h.fail("web", 2)
    await h.succeed("web")
    await h.deliver()
    (resolved,) = await h.incidents()
    assert resolved.ticket_state == "pending"
    delivered_at = h.clock.now()
    await h.close()
    with sqlite3.connect(state / "watchdesk.sqlite3") as db:  # back to what schema 7 wrote
        for column in (
            "ticket_state",
            "pending_since",
            "reopened_at",
            "reopens",
            "reopen_worked_at",
            "closed_at",
        ):
            db.execute(f"ALTER TABLE incidents DROP COLUMN {column}")
        db.execute("ALTER TABLE incidents DROP COLUMN kind")  # schema 10's, as storm_members
        db.execute("DROP TABLE sla_pauses")
        db.execute("DROP TABLE storm_members")
        db.execute(
            "INSERT INTO outbox (incident_id, channel, operation, payload, state,"
            " next_attempt_at, created_at, done_at, notice) VALUES"
            " (?, 'ticket', 'status', '{\"v\": 2, \"status\": \"resolved\"}', 'done', ?, ?, ?,"
            " 'globex')",
            (resolved.id, delivered_at, delivered_at, delivered_at + 300),
        )
        db.execute("PRAGMA user_version = 7")

    again = await Harness.create(state, DATA_CONFIG, start=delivered_at + 7 * 86400 + 60)
    try:
        with sqlite3.connect(state / "watchdesk.sqlite3") as db:
            assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        (migrated,) = await again.incidents()
        assert (migrated.ticket_state, migrated.pending_since) == ("pending", delivered_at)
        assert migrated.pauses == ()
        await again.agent.policy.follow_up.sweep()
        await again.deliver()
        (ticket,) = again.tickets()
        assert ticket["status"] == "closed"
        assert "closed after 7 days without reply" in again.notes(ticket["id"])[-1]
    finally:
        await again.close()


async def test_a_schema_9_store_gets_incident_kinds_and_keeps_its_follow_up(
    tmp_path: Path,
) -> None:
    """A store of schema 9 (main before storms: the follow-up and the ticket priority, no incident
    kinds): step 10 adds
    the kind (every stored incident is a target's) and the storm members' table, and leaves
    the follow-up as it was. Run again on a store that has them already, it changes nothing
    (each of its changes is skipped where it was made)."""
    state = tmp_path / "state"
    h = await Harness.create(state, DATA_CONFIG)
    await h.fail("web", 2)
    await h.succeed("web")
    await h.fail("db", 2)
    await h.deliver()
    web, db = await h.incidents()
    assert (web.status, web.ticket_state, db.status) == ("resolved", "pending", "open")
    await h.close()
    with sqlite3.connect(state / "watchdesk.sqlite3") as conn:  # back to what schema 9 wrote
        conn.execute("ALTER TABLE incidents DROP COLUMN kind")
        conn.execute("DROP TABLE storm_members")
        conn.execute("PRAGMA user_version = 9")

    again = await Harness.create(state, DATA_CONFIG, start=h.clock.now())
    try:
        with sqlite3.connect(state / "watchdesk.sqlite3") as conn:
            assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 10
        migrated = await again.incidents()
        assert [(i.target, i.kind, i.ticket_state) for i in migrated] == [
            ("web", "target", "pending"),
            ("db", "target", "open"),
        ]
        assert migrated[0].pending_since == web.pending_since
        assert await again.agent.store.storm_members() == []
        assert again.agent.incidents.open_incident_of("db") == migrated[1]
    finally:
        await again.close()
    with sqlite3.connect(state / "watchdesk.sqlite3") as conn:  # kind there, version 9
        conn.execute("PRAGMA user_version = 9")
    twice = await Harness.create(state, DATA_CONFIG, start=h.clock.now())
    try:
        assert [i.kind for i in await twice.incidents()] == ["target", "target"]
    finally:
        await twice.close()
