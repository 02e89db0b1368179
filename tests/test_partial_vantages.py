"""Confirmation from several vantages, decided by real agents on one real PostgreSQL, each
driven by hand (``tests.agent_harness``: probe results fed in, the three clocks kept together):

- ``partial = "ticket"``: a target down from one vantage of three (``min_vantages = 2``) for
  ``partial_after`` gets one ticket, a priority lower, saying where it fails and where it
  works, and pages nobody; down from a second vantage, the same incident is raised to the
  target's priority and pages; all up, it resolves with the recovery note. A partial outage
  that ends (every vantage up) resolves too; with ``partial = "ignore"`` nothing opens.
- storms are decided after the quorum: one vantage seeing more than ``storm.threshold``
  targets fail (its own link) opens no storm; a second confirming opens exactly one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import psycopg
import pytest

from checks import ProbeResult
from monitor.actions import Action, AddNote, CreateTicket, SendPage
from monitor.store import Incident
from tests.agent_harness import START, Harness

pytestmark = pytest.mark.slow

HEAD = """
[defaults]
interval = "30s"
timeout = "5s"
failure_threshold = 2
recovery_threshold = 2

[customers.acme]
email = "it@acme.example"

[pagers.oncall]
type = "log"

[escalation]
page_on_open = ["oncall"]
"""
API = """
[[targets]]
name = "api"
kind = "tcp"
host = "203.0.113.11"
port = 443
customer = "acme"
priority = "urgent"
"""
PARTIAL = 'min_vantages = 2\nwindow = "90s"\npartial = "ticket"\npartial_after = "5m"\n'
VANTAGES = ("east", "west", "north")

Make = Callable[[str, str], Awaitable["Vantages"]]


class Vantages:
    """Three agents whose clocks move together, probing each target once per step."""

    def __init__(self, agents: dict[str, Harness], url: str) -> None:
        self.agents = agents
        self.url = url
        self.now = START
        self.down: dict[str, set[str]] = {name: set() for name in agents}

    def fail(self, vantage: str, *targets: str) -> None:
        """From now on ``vantage`` (only) sees these targets down."""
        self.down[vantage] = set(targets)

    async def step(self) -> None:
        """One probe of every target from every vantage, then each sweeps and decides what
        it held; the clocks move on by the interval."""
        for vantage, harness in self.agents.items():
            harness.clock.set(self.now)
            for name, target in harness.agent.targets.items():
                ok = name not in self.down[vantage]
                result = ProbeResult(ok, 0.01, "status 200" if ok else f"refused from {vantage}")
                await harness.agent.apply_result(target, result)
        for harness in self.agents.values():
            await harness.sweep()
            await harness.agent.incidents.release_due()
        self.now += 30.0

    async def die(self, vantage: str) -> None:
        """``vantage``'s agent is gone: it probes and sweeps no more, and its heartbeat is an
        hour old (its store stays open only for the fixture to close)."""
        self.agents.pop(vantage)
        async with await psycopg.AsyncConnection.connect(self.url, autocommit=True) as conn:
            await conn.execute(
                "UPDATE agents SET heartbeat_at = now() - interval '1 hour' WHERE vantage = %s",
                (vantage,),
            )

    async def steps(self, count: int) -> None:
        for _ in range(count):
            await self.step()

    async def incidents(self, open_only: bool = True) -> list[Incident]:
        return await self.agents["north"].agent.store.incidents(open_only=open_only)

    async def actions(self, incident_id: int) -> list[Action]:
        store = self.agents["north"].agent.store
        return [a.action() for a in await store.actions_of(incident_id)]

    async def pages(self) -> list[SendPage]:
        found: list[SendPage] = []
        for incident in await self.incidents(open_only=False):
            found += [a for a in await self.actions(incident.id) if isinstance(a, SendPage)]
        return found


@pytest.fixture
async def make(tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Make]:
    monkeypatch.setenv("WD_TEST_DATABASE_URL", pg_url)
    made: list[Harness] = []

    async def build(confirmation: str, targets: str) -> Vantages:
        agents = {}
        for vantage in VANTAGES:
            cluster = (
                f'[cluster]\ndatabase_url_env = "WD_TEST_DATABASE_URL"\nvantage = "{vantage}"\n'
            )
            text = f"{HEAD}\n[confirmation]\n{confirmation}\n{cluster}\n{targets}"
            agents[vantage] = harness = await Harness.create(tmp_path / vantage, text)
            made.append(harness)
        return Vantages(agents, pg_url)

    yield build
    for harness in made:
        await harness.close()


async def test_a_partial_outage_gets_one_lower_ticket_then_is_raised_and_pages(
    make: Make,
) -> None:
    v = await make(PARTIAL, API)
    v.fail("east", "api")
    await v.steps(10)  # down for 4 min (2 probes to go down): not yet partial_after
    assert await v.incidents() == []
    await v.steps(3)
    (incident,) = await v.incidents()
    assert (incident.kind, incident.priority) == ("partial", "high")
    (create,) = [a for a in await v.actions(incident.id) if isinstance(a, CreateTicket)]
    assert create.draft.subject == "[HIGH] api is down from east"
    assert create.draft.priority == "high"
    assert "Fails from:\n- east: refused from east\nWorks from:\n- north\n- west" in (
        create.draft.description
    )
    assert await v.pages() == []
    await v.steps(10)  # still down from east alone: the same one, still nobody woken
    assert [i.id for i in await v.incidents()] == [incident.id]
    assert await v.pages() == []

    v.fail("west", "api")
    await v.steps(3)
    (raised,) = await v.incidents()
    assert raised.id == incident.id
    assert (raised.kind, raised.priority) == ("target", "urgent")
    actions = await v.actions(incident.id)
    assert len([a for a in actions if isinstance(a, CreateTicket)]) == 1
    (page,) = await v.pages()
    assert page.page.priority == "urgent"
    assert page.page.dedup_key == incident.dedup_key
    notes = [a.body for a in actions if isinstance(a, AddNote)]
    assert any("Seen down from 2 vantages" in n and "- west: refused" in n for n in notes)

    v.fail("east")
    v.fail("west")
    await v.steps(3)
    assert await v.incidents() == []
    (done,) = await v.incidents(open_only=False)
    assert done.status == "resolved"
    notes = [a.body for a in await v.actions(incident.id) if isinstance(a, AddNote)]
    assert "Good news: api has recovered" in notes[-1]
    assert len(await v.pages()) == 1


async def test_a_partial_outage_ends_when_every_vantage_sees_it_up(make: Make) -> None:
    v = await make(PARTIAL, API)
    v.fail("east", "api")
    await v.steps(14)
    (incident,) = await v.incidents()
    assert incident.kind == "partial"
    v.fail("east")
    await v.steps(3)
    assert await v.incidents() == []
    (done,) = await v.incidents(open_only=False)
    assert (done.id, done.status) == (incident.id, "resolved")
    notes = [a.body for a in await v.actions(incident.id) if isinstance(a, AddNote)]
    assert "Good news: api has recovered" in notes[-1]
    assert await v.pages() == []


async def test_a_partial_outage_ends_when_the_only_vantage_seeing_it_down_dies(
    make: Make,
) -> None:
    """Nothing would end it otherwise: the others saw the target up all along (no recovery of
    their own), and the dead one says nothing more. Its last "down" ages out of the window;
    the incident resolves with the recovery note, no later than that last "down" counted."""
    v = await make(PARTIAL, API)
    v.fail("east", "api")
    await v.steps(14)
    (incident,) = await v.incidents()
    assert incident.kind == "partial"
    last_said = v.now - 30.0  # the time of the last step
    await v.die("east")
    await v.steps(6)  # 3 minutes: twice the window
    assert await v.incidents() == []
    (done,) = await v.incidents(open_only=False)
    assert (done.id, done.status) == (incident.id, "resolved")
    assert done.resolved_at == last_said  # east's last probe, which it said down
    notes = [a.body for a in await v.actions(incident.id) if isinstance(a, AddNote)]
    assert "Good news: api has recovered" in notes[-1]
    assert await v.pages() == []


async def test_a_confirmed_outage_ends_when_the_vantages_that_saw_it_die(make: Make) -> None:
    v = await make('min_vantages = 2\nwindow = "90s"\n', API)
    v.fail("east", "api")
    v.fail("west", "api")
    await v.steps(4)
    (incident,) = await v.incidents()
    assert incident.kind == "target"
    await v.die("east")
    await v.die("west")
    await v.steps(4)  # north alone is live, and says up: the majority
    assert await v.incidents() == []
    (done,) = await v.incidents(open_only=False)
    assert (done.id, done.status) == (incident.id, "resolved")


async def test_partial_ignore_opens_nothing(make: Make) -> None:
    v = await make('min_vantages = 2\nwindow = "90s"\n', API)
    v.fail("east", "api")
    await v.steps(24)
    assert await v.incidents(open_only=False) == []


STORM_TARGETS = "".join(
    f'\n[[targets]]\nname = "svc-{n}"\nkind = "tcp"\nhost = "203.0.113.{20 + n}"\nport = 443\n'
    f'customer = "acme"\n'
    for n in range(5)
)
STORM = '\n[storm]\nthreshold = 3\nwindow = "5m"\ngroup_wait = "30s"\n'


async def test_one_vantage_alone_opens_no_storm_two_open_exactly_one(make: Make) -> None:
    v = await make('min_vantages = 2\nwindow = "90s"\n' + STORM, STORM_TARGETS)
    names = [f"svc-{n}" for n in range(5)]
    v.fail("east", *names)  # east's own link: every target fails from east alone
    await v.steps(10)
    assert await v.incidents(open_only=False) == []

    v.fail("west", *names)
    await v.steps(6)
    (storm,) = await v.incidents()
    assert storm.kind == "storm"
    members = await v.agents["east"].agent.store.storm_members(storm.id)
    assert sorted({m.target for m in members}) == names
