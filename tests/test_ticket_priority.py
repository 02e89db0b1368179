"""A person changes an incident's priority in the helpdesk: the incident takes it, the
requester is told once, and neither a later poll, a restart nor a reload undoes it or tells
them again. On a manual clock with the local helpdesk, and against every helpdesk stand-in
through its real backend."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from monitor.store import Incident
from tests.agent_harness import START, Harness
from tests.fakes.opsgenie import OpsgenieFake
from tests.fakes.pagerduty import PagerDutyFake
from tests.helpdesks import ENV, NAMES, helpdesk
from tests.test_policy import OG_KEY, PD_KEY, policy_config, run
from tests.test_sla_policy import MORE_TARGETS, paged, series
from ticketing.base import TicketRef

POLL = 5 * 60.0  # [escalation] poll_interval of policy_config
CHANGED = "changed the priority of this ticket"
HOUR = 3600.0

Start = Callable[[float], Awaitable[Harness]]


@pytest.fixture
async def stand(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[Start, PagerDutyFake, Callable[[], str]]]:
    """``start(at)``: the agent on one store (again after a restart) with PagerDuty as the
    on-call pager; ``text()``: its config file as it stands."""
    monkeypatch.setenv("PD_TEST_KEY", PD_KEY)
    monkeypatch.setenv("OG_TEST_KEY", OG_KEY)
    async with PagerDutyFake(routing_key=PD_KEY) as pd, OpsgenieFake(api_key=OG_KEY) as og:
        text = policy_config(pd.enqueue_url, og.url) + MORE_TARGETS
        made: list[Harness] = []

        async def start(at: float) -> Harness:
            h = await Harness.create(tmp_path / "state", text, start=at)
            made.append(h)
            return h

        yield start, pd, lambda: text
        for h in made:
            await h.close()


def config_file(h: Harness, text: str, path: Path) -> str:
    """``text`` as the agent's config file (on its store)."""
    state = f'state_dir = "{h.agent.config.agent.state_dir}"\n'
    path.write_text(text.replace("[agent]\n", "[agent]\n" + state, 1))
    return str(path)


async def reload(h: Harness, text: str, path: Path) -> None:
    """SIGHUP with ``text`` as the config file."""
    h.agent.config_path = config_file(h, text, path)
    assert await h.agent.reload()


def told(h: Harness, incident: Incident) -> list[str]:
    """The priority-change notes on the incident's ticket, as the requester sees them."""
    return [
        str(note["body"])
        for note in h.local.notes(str(incident.ticket_id))
        if note["public"] and CHANGED in str(note["body"])
    ]


async def one(h: Harness, target: str) -> Incident:
    (incident,) = [i for i in await h.incidents() if i.target == target]
    return incident


async def poll(h: Harness, times: int = 1) -> None:
    """``times`` poll intervals of the agent's sweeps and deliveries."""
    for _ in range(times):
        h.clock.advance(POLL)
        await run(h)


async def test_a_priority_changed_in_the_helpdesk_is_told_to_the_requester(
    stand: tuple[Start, PagerDutyFake, Callable[[], str]],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    start, pd, text = stand
    h = await start(START)
    await h.fail("vip-web", 3)  # urgent: pages on open
    await run(h)
    opened = await one(h, "vip-web")
    assert opened.priority == "urgent"

    # A person lowers the ticket to high in the helpdesk.
    h.local.change_priority(str(opened.ticket_id), "high")
    with caplog.at_level(logging.INFO, logger="watchdesk.policy"):
        await poll(h)
    incident = await one(h, "vip-web")
    assert incident.priority == "high"
    # Judged against the high SLA from now on: respond in 4 h, resolve in 4 h, working hours.
    assert (incident.response_target, incident.resolution_target) == (4 * HOUR, 4 * HOUR)
    assert incident.sla_clock == "business"
    (note,) = told(h, incident)
    assert "from urgent to high" in note
    assert "Why: changed in the helpdesk." in note
    assert "priority changed in the helpdesk from urgent to high" in caplog.text
    assert series(h, "watchdesk_incidents_open", priority="high") == 1
    assert series(h, "watchdesk_incidents_open", priority="urgent") == 0
    cached = h.agent.incidents.open_incident_of("vip-web")
    assert cached is not None
    assert cached.priority == "high"

    await poll(h, 3)
    h = await start(h.clock.now())  # a restart: the same store, the same helpdesk
    await run(h)
    await poll(h, 2)
    assert len(told(h, incident)) == 1
    assert (await one(h, "vip-web")).priority == "high"

    # A reload of the config as it was keeps what the person chose.
    await reload(h, text(), tmp_path / "same.toml")
    await poll(h)
    assert (await one(h, "vip-web")).priority == "high"
    assert len(told(h, incident)) == 1

    # A reload that changes the target's configured priority applies it, and the helpdesk's
    # unchanged high is no new change of a person.
    changed = text().replace('customer = "bigco"\n', 'customer = "bigco"\npriority = "medium"\n', 1)
    await reload(h, changed, tmp_path / "medium.toml")
    await poll(h, 2)
    incident = await one(h, "vip-web")
    assert incident.priority == "medium"
    notes = told(h, incident)
    assert len(notes) == 2
    assert "from high to medium" in notes[1]
    assert "changed in the helpdesk" not in notes[1]

    # High (which pages nobody by default) raised to urgent in the helpdesk pages now.
    await h.fail("vip-api", 3)
    await run(h)
    api = await one(h, "vip-api")
    assert not any("vip-api" in summary for summary in paged(pd))
    h.local.change_priority(str(api.ticket_id), "urgent")
    await poll(h)
    assert (await one(h, "vip-api")).priority == "urgent"
    assert "[URGENT] vip-api is down" in paged(pd)
    (raised,) = told(h, api)
    assert "from high to urgent" in raised


async def test_a_person_can_set_back_what_a_reload_changed_and_nothing_is_guessed(
    stand: tuple[Start, PagerDutyFake, Callable[[], str]], tmp_path: Path
) -> None:
    """The helpdesk still shows the priority the ticket was created with after a reload
    changed the incident's: no change of a person, so the incident keeps the reload's. A
    person then choosing the incident's own priority tells nobody anything; a value of the
    helpdesk that maps to none of ours is no change either."""
    start, _, text = stand
    h = await start(START)
    await h.fail("vip-api", 3)  # high
    await run(h)
    raised = text().replace('priority = "high"', 'priority = "urgent"')
    await reload(h, raised, tmp_path / "urgent.toml")
    await poll(h, 2)
    incident = await one(h, "vip-api")
    assert incident.priority == "urgent"
    assert incident.ticket_priority == "high"  # what the helpdesk shows: unchanged
    assert len(told(h, incident)) == 1  # the reload's

    h.local.change_priority(str(incident.ticket_id), "urgent")
    await poll(h)
    incident = await one(h, "vip-api")
    assert (incident.priority, incident.ticket_priority) == ("urgent", "urgent")
    h.local.change_priority(str(incident.ticket_id), "critical")  # type: ignore[arg-type]
    await poll(h)
    assert (await one(h, "vip-api")).priority == "urgent"
    assert len(told(h, incident)) == 1


async def test_two_readings_of_one_change_at_once_tell_it_once(
    stand: tuple[Start, PagerDutyFake, Callable[[], str]],
) -> None:
    """Two readings of the ticket that both saw the change (say a sweep, and a deadline's
    forced poll) decide on the same incident as read before: the first takes the change; the
    second reads the incident again under the lock, finds it taken, and tells nobody."""
    start, _, _ = stand
    h = await start(START)
    await h.fail("vip-web", 3)
    await run(h)
    incident = await one(h, "vip-web")
    h.local.change_priority(str(incident.ticket_id), "medium")
    info = await h.agent.integrations.current.backend.get(TicketRef(str(incident.ticket_id)))
    target = h.agent.targets["vip-web"]
    follow = h.agent.policy.reprioritising.follow
    now = h.clock.now()
    first, second = await asyncio.gather(
        follow(incident, target, info, now), follow(incident, target, info, now)
    )
    assert first.priority == second.priority == "medium"
    await run(h)
    assert len(told(h, incident)) == 1


async def test_a_shared_component_stays_urgent_whatever_the_helpdesk_says(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = """
[defaults]
interval = "30s"
failure_threshold = 3

[[targets]]
name = "core"
kind = "tcp"
host = "db.example"
port = 5432
priority = "high"

[[targets]]
name = "alpha-app"
kind = "tcp"
host = "alpha.example"
port = 443
customer = "alpha"
depends_on = ["core"]

[[targets]]
name = "beta-app"
kind = "tcp"
host = "beta.example"
port = 443
customer = "beta"
depends_on = ["core"]

[customers.alpha]
email = "it@alpha.example"

[customers.beta]
email = "it@beta.example"

[escalation]
poll_interval = "1m"
"""
    h = await Harness.create(tmp_path / "state", config)
    try:
        await h.fail("core", 3)
        await run(h)
        incident = await one(h, "core")
        assert incident.priority == "urgent"  # raised: two customers depend on it
        h.local.change_priority(str(incident.ticket_id), "low")
        with caplog.at_level(logging.INFO, logger="watchdesk.policy"):
            for _ in range(3):
                h.clock.advance(60)
                await run(h)
        incident = await one(h, "core")
        assert (incident.priority, incident.ticket_priority) == ("urgent", "low")
        assert "core is a shared component: it stays urgent" in caplog.text
        notes = told(h, incident)
        assert len(notes) == 1  # the raise alone
        assert "from high to urgent" in notes[0]
    finally:
        await h.close()


async def test_a_store_of_schema_8_knows_the_priority_its_tickets_were_created_with(
    stand: tuple[Start, PagerDutyFake, Callable[[], str]], tmp_path: Path
) -> None:
    """A store from before (schema 8: no ticket_priority) whose open incident a reload had
    moved from high to urgent: the ticket's priority is the one it was created with (its
    create action), so the helpdesk's unchanged high reverts nothing, and a change made by a
    person afterwards is taken."""
    start, _, text = stand
    h = await start(START)
    await h.fail("vip-api", 3)
    await run(h)
    await reload(h, text().replace('priority = "high"', 'priority = "urgent"'), tmp_path / "u")
    await run(h)
    incident = await one(h, "vip-api")
    await h.close()
    with sqlite3.connect(tmp_path / "state" / "watchdesk.sqlite3") as db:
        db.execute("ALTER TABLE incidents DROP COLUMN ticket_priority")
        db.execute("PRAGMA user_version = 8")

    h = await start(h.clock.now())
    await run(h)
    await poll(h, 2)
    migrated = await one(h, "vip-api")
    assert (migrated.priority, migrated.ticket_priority) == ("urgent", "high")
    assert len(told(h, migrated)) == 1
    h.local.change_priority(str(incident.ticket_id), "low")
    await poll(h)
    assert (await one(h, "vip-api")).priority == "low"


@pytest.mark.parametrize("name", [n for n in NAMES if n != "local"])
async def test_each_helpdesks_priority_field_is_followed(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the real backend against its stand-in: a person's change in the helpdesk's own
    field reaches the incident and the requester, once."""
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    config = """
[defaults]
interval = "30s"
failure_threshold = 3

[[targets]]
name = "web"
kind = "http"
url = "https://www.acme.example/health"
customer = "acme"

[customers.acme]
email = "it@acme.example"

[escalation]
poll_interval = "1m"
"""
    async with helpdesk(name) as desk:
        h = await Harness.create(tmp_path / "state", config + desk.toml())
        try:
            await h.fail("web", 3)
            await h.deliver()
            incident = await one(h, "web")
            desk.set_priority(str(incident.ticket_id), "medium")
            for _ in range(3):
                h.clock.advance(60)
                await run(h)
            assert (await one(h, "web")).priority == "medium"
            notes = [n for n in desk.notes(str(incident.ticket_id), public=True) if CHANGED in n]
            assert len(notes) == 1, notes
            assert "from urgent to medium" in notes[0]
        finally:
            await h.close()
