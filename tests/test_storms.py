"""Storms with the local helpdesk and a real agent on a manual clock: 200 targets of 7
customers going down within 5 s are one incident (7 tickets, 1 page, 1 escalation chain),
targets that recover early are notes, the last one's recovery ends it; a lone failure still
opens its own incident at the usual time; group tags; depends_on wins."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from checks import ProbeResult
from monitor.actions import ResolvePage, SendPage
from monitor.reporting.figures import build_report
from monitor.reporting.timelines import ReportData
from monitor.web.server import make_app
from tests.agent_harness import START, Harness

CUSTOMERS = 7
TARGETS = 200

BASE = """
[defaults]
interval = "10s"
timeout = "5s"
failure_threshold = 2
recovery_threshold = 2

[pagers.oncall]
type = "log"

[escalation]
page_on_open = ["oncall"]
page_on_escalation = ["oncall"]
ack_timeout = "1h"
status_update_interval = "4h"
poll_interval = "1h"
"""


def name(index: int) -> str:
    return f"svc-{index:03d}"


def customer(index: int) -> str:
    return f"c{index % CUSTOMERS}"


def many(count: int = TARGETS) -> str:
    targets = "".join(
        f"""
[[targets]]
name = "{name(i)}"
kind = "tcp"
host = "10.0.{i // 250}.{i % 250 + 1}"
port = 443
customer = "{customer(i)}"
"""
        for i in range(count)
    )
    customers = "".join(
        f'\n[customers.c{c}]\nemail = "it@c{c}.example"\n' for c in range(CUSTOMERS)
    )
    return BASE + targets + customers


@pytest.fixture
async def make(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[Harness]]]:
    made: list[Harness] = []

    async def build(text: str) -> Harness:
        harness = await Harness.create(tmp_path / "state", text)
        made.append(harness)
        return harness

    yield build
    for harness in made:
        await harness.close()


async def probe(h: Harness, target: str, ok: bool) -> None:
    """One result, at the clock's time (the clock does not move)."""
    reason = "status 200" if ok else "connection timed out"
    await h.agent.apply_result(h.agent.targets[target], ProbeResult(ok, 0.01, reason))


async def wave(h: Harness, names: list[str], ok: bool, over: float) -> None:
    """Each of ``names`` probed once, spread evenly over ``over`` seconds."""
    for target in names:
        await probe(h, target, ok)
        h.clock.advance(over / len(names))


async def settle(h: Harness) -> None:
    """What the running agent does next: held targets decided, customers told, delivered."""
    await h.agent.incidents.release_due()
    await h.sweep()
    await h.deliver()


async def pages(h: Harness) -> list[SendPage]:
    found = []
    for incident in await h.incidents():
        for action in await h.agent.store.actions_of(incident.id):
            typed = action.action()
            if isinstance(typed, SendPage):
                found.append(typed)
    return found


async def resolves(h: Harness) -> list[ResolvePage]:
    found = []
    for incident in await h.incidents():
        for action in await h.agent.store.actions_of(incident.id):
            typed = action.action()
            if isinstance(typed, ResolvePage):
                found.append(typed)
    return found


def tickets_of(h: Harness) -> dict[str, dict[str, object]]:
    return {str(t["customer"]): t for t in h.tickets()}


async def test_200_targets_of_7_customers_down_within_5s_are_one_incident(
    make: Callable[..., Awaitable[Harness]],
) -> None:
    h = await make(many())
    names = [name(i) for i in range(TARGETS)]
    await wave(h, names, False, 5.0)  # the first failed probe of each, within 5 s
    h.clock.advance(5.0)
    await wave(h, names, False, 5.0)  # the second: each turns down
    await h.deliver()
    (storm,) = await h.incidents()
    assert storm.kind == "storm"
    assert storm.target == "the outage of many services"
    assert storm.priority == "urgent"  # several customers: a major problem
    assert h.tickets() == []  # held for group_wait: the storm gathers first

    h.clock.advance(10.0)
    await settle(h)
    tickets = tickets_of(h)
    assert sorted(tickets) == [f"c{c}" for c in range(CUSTOMERS)]
    for c, ticket in tickets.items():
        mine = [name(i) for i in range(TARGETS) if customer(i) == c]
        assert all(
            f"- {target}: connection timed out" in str(ticket["description"]) for target in mine
        )
        assert str(ticket["subject"]).startswith("[URGENT] ")
        assert ticket["requester"] == f"it@{c}.example"
    (page,) = await pages(h)
    assert "200 targets of 7 customer(s)" in page.page.summary
    assert "svc-000" in page.page.details
    assert all(h.notes(t["id"]) == [] for t in h.tickets())  # nobody joined after the telling

    # Three recover early: a note on each of their customers' tickets, nothing else.
    early = [name(0), name(1), name(2)]
    await wave(h, early, True, 1.0)
    await wave(h, early, True, 1.0)
    h.clock.advance(10.0)
    await settle(h)
    for index in range(3):
        (note,) = h.notes(tickets[customer(index)]["id"])
        assert f"Recovered:\n- {name(index)}" in note
    assert all(h.notes(tickets[f"c{c}"]["id"]) == [] for c in range(3, CUSTOMERS))
    assert len(await h.incidents()) == 1

    # Nobody works it for an hour: one escalation, for the storm (not one per target).
    h.clock.advance(3600.0)
    await h.agent.policy.sweep()
    await h.deliver()
    escalations = [p for p in await pages(h) if p.page.reason == "escalation"]
    assert len(escalations) == 1
    assert all(
        any("escalated" in note for note in h.notes(t["id"])) for t in h.tickets()
    )  # the requester of every ticket is told

    # The rest recover: each customer's ticket gets the recovery note, the pager one resolve.
    rest = names[3:]
    await wave(h, rest, True, 5.0)
    await wave(h, rest, True, 5.0)
    await settle(h)
    (done,) = await h.incidents()
    assert done.status == "resolved"
    for ticket in h.tickets():
        recovery = [n for n in h.notes(ticket["id"]) if "the incident is over" in n]
        assert len(recovery) == 1, ticket["customer"]
        assert ticket["status"] == "pending"
    assert len(await resolves(h)) == 1
    assert len(await pages(h)) == 2  # the open and the escalation: nothing per target
    # Counted once, at the tier it reached (L2), late on its response target: nobody answered
    # it within the urgent plan's hour.
    metrics = h.agent.metrics.exposition().decode()
    assert 'watchdesk_incidents_resolved_total{customer="",priority="urgent",tier="L2"} 1.0' in (
        metrics
    )
    assert 'watchdesk_sla_breaches_total{customer="",kind="response",priority="urgent"} 1.0' in (
        metrics
    )


async def test_a_storm_is_one_incident_of_each_of_its_targets_in_the_report(
    make: Callable[..., Awaitable[Harness]],
) -> None:
    """Reports count a storm as the incident of every target in it, and judge its SLA and
    count its tier once, in a customer's report too."""
    h = await make(many(20))
    names = [name(i) for i in range(20)]
    await wave(h, names, False, 5.0)
    await wave(h, names, False, 5.0)
    h.clock.advance(10.0)
    await settle(h)
    h.clock.advance(3600.0)
    await h.agent.policy.sweep()  # escalated to L2
    await wave(h, names, True, 5.0)
    await wave(h, names, True, 5.0)
    await settle(h)
    (storm,) = await h.incidents()
    assert storm.status == "resolved"
    data = await ReportData.fetch(h.agent.store)
    report = build_report(data, h.config, START, h.clock.now())
    assert {t.target: t.incidents for t in report.targets} == dict.fromkeys(names, 1)
    (urgent,) = report.sla
    assert (urgent.incidents, urgent.within) == (1, 0)  # nobody answered within the hour
    assert (urgent.resolution_incidents, urgent.resolution_within) == (1, 1)
    assert [(t.tier, t.incidents) for t in report.tiers] == [("L2", 1)]
    theirs = build_report(data, h.config, START, h.clock.now(), customer="c0")
    assert [(t.target, t.incidents) for t in theirs.targets] == [
        ("svc-000", 1),
        ("svc-007", 1),
        ("svc-014", 1),
    ]
    assert [(e.priority, e.incidents) for e in theirs.sla] == [("urgent", 1)]


async def test_a_lone_failure_opens_its_own_incident_at_the_usual_time(
    make: Callable[..., Awaitable[Harness]],
) -> None:
    h = await make(many())
    await probe(h, name(5), False)
    h.clock.advance(10.0)
    await probe(h, name(5), False)
    (incident,) = await h.incidents()
    assert incident.target == name(5)
    assert incident.kind == "target"
    assert incident.opened_at == START + 10.0  # at its threshold: no group_wait for a lone one
    await h.deliver()
    (ticket,) = h.tickets()
    assert ticket["subject"] == f"[URGENT] {name(5)} is down"


async def test_a_failure_next_to_another_failing_target_waits_group_wait_at_most(
    make: Callable[..., Awaitable[Harness]],
) -> None:
    h = await make(many())
    await probe(h, name(7), False)  # another target failing: a storm may be coming
    await probe(h, name(5), False)
    h.clock.advance(10.0)
    await probe(h, name(5), False)
    assert await h.incidents() == []
    h.clock.advance(9.0)
    await settle(h)
    assert await h.incidents() == []
    h.clock.advance(1.0)
    await settle(h)
    (incident,) = await h.incidents()
    assert incident.target == name(5)
    assert incident.opened_at == START + 20.0  # threshold x interval + group_wait


async def test_a_failure_whose_company_recovers_opens_at_once(
    make: Callable[..., Awaitable[Harness]],
) -> None:
    h = await make(many())
    await probe(h, name(7), False)
    await probe(h, name(5), False)
    h.clock.advance(10.0)
    await probe(h, name(5), False)
    assert await h.incidents() == []
    h.clock.advance(2.0)
    await probe(h, name(7), True)  # no storm after all: nothing left to wait for
    await settle(h)
    (incident,) = await h.incidents()
    assert incident.target == name(5)
    assert incident.opened_at == START + 12.0


GROUPS = (
    BASE
    + """
[[targets]]
name = "rack-a"
kind = "tcp"
host = "10.1.0.1"
port = 22
customer = "c1"
group = "rack-7"

[[targets]]
name = "rack-b"
kind = "tcp"
host = "10.1.0.2"
port = 22
customer = "c2"
group = "rack-7"

[[targets]]
name = "rack-c"
kind = "tcp"
host = "10.1.0.3"
port = 22
customer = "c1"
group = "rack-7"

[[targets]]
name = "other"
kind = "tcp"
host = "10.2.0.1"
port = 22
customer = "c1"

[customers.c1]
email = "it@c1.example"

[customers.c2]
email = "it@c2.example"
"""
)


async def test_targets_of_one_group_down_together_are_one_incident(
    make: Callable[..., Awaitable[Harness]],
) -> None:
    h = await make(GROUPS)
    await probe(h, "rack-a", False)
    h.clock.advance(3.0)
    await probe(h, "rack-b", False)
    h.clock.advance(7.0)
    await probe(h, "rack-a", False)  # down: waits for company
    assert await h.incidents() == []
    h.clock.advance(3.0)
    await probe(h, "rack-b", False)  # down too: the group's incident
    (storm,) = await h.incidents()
    assert storm.target == "the outage of group rack-7"
    h.clock.advance(7.0)
    await settle(h)
    tickets = tickets_of(h)
    assert sorted(tickets) == ["c1", "c2"]
    assert "rack-a" in str(tickets["c1"]["description"])
    assert "rack-b" not in str(tickets["c1"]["description"])  # other customers never named
    assert "group rack-7" in str(tickets["c2"]["description"])

    # A third member goes down later: a note on its customer's ticket, no new incident.
    await probe(h, "rack-c", False)
    h.clock.advance(10.0)
    await probe(h, "rack-c", False)
    await settle(h)
    (note,) = h.notes(tickets["c1"]["id"])
    assert "Also down now:\n- rack-c" in note
    assert len(await h.incidents()) == 1

    for target in ("rack-a", "rack-b", "rack-c"):
        await probe(h, target, True)
        await probe(h, target, True)
    await settle(h)
    (done,) = await h.incidents()
    assert done.status == "resolved"
    for ticket in h.tickets():
        assert "the incident is over" in h.notes(ticket["id"])[-1]
    assert len(await resolves(h)) == 1


async def test_a_lone_member_of_a_group_opens_its_own_incident_after_group_wait(
    make: Callable[..., Awaitable[Harness]],
) -> None:
    h = await make(GROUPS)
    await h.fail("rack-a", 2)  # down at START + 10
    assert await h.incidents() == []
    h.clock.set(START + 19.0)
    await settle(h)
    assert await h.incidents() == []
    h.clock.set(START + 20.0)
    await settle(h)
    (incident,) = await h.incidents()
    assert incident.target == "rack-a"
    assert incident.opened_at == START + 20.0


SWITCH = (
    BASE
    + """
[[targets]]
name = "switch"
kind = "icmp"
host = "10.9.0.1"
interval = "30s"
"""
    + "".join(
        f"""
[[targets]]
name = "{name(i)}"
kind = "tcp"
host = "10.9.1.{i + 1}"
port = 443
customer = "{customer(i)}"
depends_on = ["switch"]
"""
        for i in range(15)
    )
    + "".join(f'\n[customers.c{c}]\nemail = "it@c{c}.example"\n' for c in range(CUSTOMERS))
)


async def test_depends_on_wins_over_a_storm(make: Callable[..., Awaitable[Harness]]) -> None:
    """15 targets behind a switch go down before the switch does: they wait for its verdict,
    and are named on its incident, not grouped into a storm of their own."""
    h = await make(SWITCH)
    children = [name(i) for i in range(15)]
    await probe(h, "switch", False)
    await wave(h, children, False, 2.0)
    h.clock.advance(8.0)
    await wave(h, children, False, 2.0)  # all down, the switch not yet
    assert await h.incidents() == []
    h.clock.advance(20.0)
    await probe(h, "switch", False)  # the switch is down
    await settle(h)
    (incident,) = await h.incidents()
    assert incident.target == "switch"
    assert incident.kind == "target"
    assert sorted(incident.affected) == children


async def test_explain_says_why_a_target_has_no_incident_of_its_own(
    make: Callable[..., Awaitable[Harness]],
) -> None:
    h = await make(GROUPS)
    await h.fail("rack-a")
    await probe(h, "rack-a", False)  # down at START + 10
    async with TestClient(TestServer(make_app(h.agent))) as client:
        held = await (await client.get("/api/targets/rack-a")).json()
        assert held["verdict"] == "hold"
        assert held["hold_until"] == START + 20.0
        assert "waiting storm.group_wait (10s) for other targets of group rack-7" in held["why"]
        assert held["group"] == "rack-7"
        await h.fail("rack-b")
        await probe(h, "rack-b", False)
        joined = await (await client.get("/api/targets/rack-b")).json()
        assert joined["storm"]["group"] == "rack-7"
        assert joined["incident"] is None
        assert "it is in storm incident" in joined["why"]
        quiet = await (await client.get("/api/targets/other")).json()
        assert quiet["why"] == "no verdict yet (0 of 2 consecutive failures): no incident"
        missing = await client.get("/api/targets/nope")
        assert missing.status == 404
        status = {row["target"]: row for row in await (await client.get("/api/status")).json()}
        assert status["rack-b"]["incident"] == joined["storm"]["id"]


async def test_a_storm_resolved_by_hand_tells_each_customer_once_and_opens_nothing_more(
    make: Callable[..., Awaitable[Harness]],
) -> None:
    h = await make(GROUPS)
    for target in ("rack-a", "rack-b"):
        await probe(h, target, False)
    h.clock.advance(10.0)
    for target in ("rack-a", "rack-b"):
        await probe(h, target, False)
    h.clock.advance(10.0)
    await settle(h)
    (storm,) = await h.incidents()
    await h.agent.desk.resolve(storm.id, "alice", "switch replaced", h.config, h.agent.incidents)
    h.clock.advance(60.0)
    for target in ("rack-a", "rack-b"):
        await probe(h, target, False)  # still failing: covered by the resolved storm
    await settle(h)
    assert [i.status for i in await h.incidents()] == ["resolved"]
    for ticket in h.tickets():
        (note,) = h.notes(ticket["id"])
        assert "resolved by alice: switch replaced" in note
        assert ticket["status"] == "pending"
    assert len(await resolves(h)) == 1
