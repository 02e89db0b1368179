"""The incident lifecycle with the local helpdesk: one outage, one ticket, kept current."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from tests.agent_harness import START, Harness

BASE = """
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
tags = ["frontend"]

[[targets]]
name = "db"
kind = "tcp"
host = "db.internal"
port = 5432
priority = "high"

[customers.acme]
email = "it@acme.example"
"""

Make = Callable[..., Awaitable["Harness"]]


@pytest.fixture
async def make(tmp_path: Path) -> AsyncIterator[Callable[[str], Awaitable[Harness]]]:
    made: list[Harness] = []

    async def build(extra: str = "") -> Harness:
        harness = await Harness.create(tmp_path / f"state{len(made)}", BASE + extra)
        made.append(harness)
        return harness

    yield build
    for harness in made:
        await harness.close()


async def test_an_outage_opens_exactly_one_ticket_with_the_facts(
    make: Callable[[str], Awaitable[Harness]],
) -> None:
    h = await make("")
    await h.fail("web", 2)
    assert (await h.incidents()) == []
    await h.fail("web", 1, reason="status 503")
    await h.deliver()
    await h.fail("web", 5, reason="status 503")
    await h.sweep()
    await h.deliver()
    (incident,) = await h.incidents()
    (ticket,) = h.tickets()
    assert incident.ticket_id == str(ticket["id"])
    assert ticket["subject"] == "[URGENT] web is down"
    assert ticket["priority"] == "urgent"
    assert ticket["requester"] == "it@acme.example"
    assert ticket["status"] == "open"
    assert ticket["dedup_key"] == incident.dedup_key
    stored = h.local.tickets()[0]
    assert stored["target"] == "web"
    description = h.local._run("SELECT description, tags FROM local_tickets")[0]
    text, tags = str(description[0]), str(description[1])
    assert "What failed: HTTP check of https://www.acme.example/health" in text
    assert "Last error: status 503" in text
    assert "Failing since: 2026-11-24 10:00:00 UTC (first failed check)" in text
    assert "Failed checks: 3 in a row" in text
    assert "Customer: acme (it@acme.example)" in text
    assert '"watchdesk"' in tags
    assert incident.dedup_key in tags


async def test_priority_and_default_requester(make: Callable[[str], Awaitable[Harness]]) -> None:
    h = await make("")
    await h.fail("db", 3)
    await h.deliver()
    (ticket,) = h.tickets()
    assert ticket["subject"] == "[HIGH] db is down"
    assert ticket["requester"] is None


@pytest.mark.parametrize(
    ("on_recovery", "status"), [("pending", "pending"), ("resolve", "resolved"), ("note", "open")]
)
async def test_recovery_note_then_the_configured_status(
    make: Callable[[str], Awaitable[Harness]], on_recovery: str, status: str
) -> None:
    h = await make(f'[ticketing]\non_recovery = "{on_recovery}"\n')
    await h.fail("db", 4)
    await h.succeed("db", 1)
    await h.deliver()
    assert (await h.incidents())[0].status == "open"
    await h.succeed("db", 1)
    await h.deliver()
    (incident,) = await h.incidents()
    assert incident.status == "resolved"
    (ticket,) = h.tickets()
    assert ticket["status"] == status
    (note,) = h.notes(ticket["id"])
    assert "db has recovered at 2026-11-24 10:02:30 UTC" in note
    # Down from the first failed check (10:00:00) to the recovery verdict (10:02:30).
    assert "It was down for 2m30s" in note
    assert "4 checks failed" in note


async def test_a_new_outage_after_recovery_is_a_new_incident(
    make: Callable[[str], Awaitable[Harness]],
) -> None:
    h = await make("")
    await h.fail("db", 3)
    await h.succeed("db", 2)
    h.clock.advance(7200)
    await h.fail("db", 3)
    await h.deliver()
    assert [i.status for i in (await h.incidents())] == ["resolved", "open"]
    assert len(h.tickets()) == 2


async def test_a_child_behind_a_down_parent_is_named_on_the_parent_ticket(
    make: Callable[[str], Awaitable[Harness]],
) -> None:
    h = await make("")
    await h.fail("router", 3, reason="0/3 replies")
    await h.fail("web", 3)
    await h.fail("web", 2)
    await h.sweep()
    await h.deliver()
    (incident,) = await h.incidents()
    assert incident.target == "router"
    assert incident.affected == ("web",)
    (ticket,) = h.tickets()
    (note,) = h.notes(ticket["id"])
    assert "Also affected: web (https://www.acme.example/health) is down too" in note
    assert note.startswith("Hello")

    # The router comes back while web is still down: web gets its own incident then.
    await h.succeed("router", 2)
    await h.fail("web", 1)
    await h.deliver()
    assert [(i.target, i.status) for i in (await h.incidents())] == [
        ("router", "resolved"),
        ("web", "open"),
    ]
    assert [t["subject"] for t in h.tickets()] == [
        "[URGENT] router is down",
        "[URGENT] web is down",
    ]


async def test_a_flapping_target_keeps_one_incident(
    make: Callable[[str], Awaitable[Harness]],
) -> None:
    h = await make(
        '[escalation]\nflap_threshold = 4\nflap_window = "1h"\nflap_stable_after = "10m"\n'
    )
    for _ in range(5):
        await h.fail("db", 3)
        await h.succeed("db", 2)
        await h.sweep()
    await h.deliver()
    # The first outage ended cleanly (2 state changes); by the second the target counts as
    # flapping (4 changes in the hour) and from then on one incident stays open: 2 tickets for
    # 5 outages, not 5.
    first, incident = await h.incidents()
    assert first.status == "resolved"
    assert incident.flapping
    assert incident.status == "open"
    ticket = h.tickets()[1]
    assert len(h.tickets()) == 2
    notes = h.notes(ticket["id"])
    flapping = [n for n in notes if "is flapping" in n]
    assert len(flapping) == 1
    assert "stays open until it has been up for 10m" in flapping[0]
    # Stable for 10 minutes: the incident ends with one recovery note.
    await h.succeed("db", 21)
    await h.sweep()
    await h.deliver()
    assert (await h.incidents())[1].status == "resolved"
    assert sum("has recovered" in n for n in h.notes(ticket["id"])) == 1


async def test_no_incident_during_maintenance_and_one_when_it_ends_if_still_down(
    make: Callable[[str], Awaitable[Harness]],
) -> None:
    h = await make(
        '[[maintenance]]\ntags = ["frontend"]\nstart = "2026-11-24T09:30:00Z"\n'
        'end = "2026-11-24T10:10:00Z"\n'
    )
    await h.fail("web", 6)
    await h.sweep()
    await h.deliver()
    assert (await h.incidents()) == []
    assert h.clock.now() < START + 600
    h.clock.set(START + 601)
    await h.fail("web", 1)
    await h.sweep()
    await h.deliver()
    (incident,) = await h.incidents()
    assert incident.target == "web"
    assert len(h.tickets()) == 1


async def test_weekly_maintenance_window(make: Callable[[str], Awaitable[Harness]]) -> None:
    # START is a Tuesday 10:00 UTC.
    h = await make(
        '[[maintenance]]\ntargets = ["db"]\ndays = ["tue"]\nstart = "09:00"\nend = "11:00"\n'
    )
    await h.fail("db", 5)
    await h.deliver()
    assert (await h.incidents()) == []


async def test_state_and_incidents_survive_a_restart_without_duplicates(tmp_path: Path) -> None:
    h = await Harness.create(tmp_path / "state", BASE)
    await h.fail("db", 3)
    await h.agent.book.flush()
    await h.close()
    # Nothing was delivered before the "crash": the create is still in the outbox.
    again = await Harness.create(tmp_path / "state", BASE)
    again.clock.set(h.clock.now())
    await again.fail("db", 2)
    await again.sweep()
    await again.deliver()
    assert len(await again.incidents()) == 1
    assert len(again.tickets()) == 1
    await again.close()


async def test_the_local_backends_own_auto_close_key_still_closes_pending_tickets(
    make: Callable[[str], Awaitable[Harness]],
) -> None:
    """``[ticketing.local] auto_close_after``, where the key first lived, keeps working: the
    pending ticket closes after it (with the closing note), not before."""
    h = await make('[ticketing.local]\nauto_close_after = "3d"\n')
    await h.fail("db", 3)
    await h.succeed("db", 2)
    await h.deliver()
    (ticket,) = h.tickets()
    assert ticket["status"] == "pending"
    h.clock.advance(3 * 86400 - 60)
    await h.agent.policy.follow_up.sweep()
    await h.deliver()
    assert h.tickets()[0]["status"] == "pending"
    h.clock.advance(120)
    await h.agent.policy.follow_up.sweep()
    await h.deliver()
    assert h.tickets()[0]["status"] == "closed"
    assert "closed after 3 days without reply" in h.notes(ticket["id"])[-1]


async def test_incident_metrics(make: Callable[[str], Awaitable[Harness]]) -> None:
    h = await make("")
    await h.fail("db", 3)
    await h.deliver()
    text = h.agent.metrics.exposition().decode()
    assert 'watchdesk_incidents_opened_total{priority="high",target="db"} 1.0' in text
    assert 'watchdesk_incidents_open{priority="high"} 1.0' in text
    assert (
        'watchdesk_ticket_operations_total{backend="local",operation="create",result="success"} 1.0'
        in text
    )
    assert "watchdesk_outbox_pending 0.0" in text
