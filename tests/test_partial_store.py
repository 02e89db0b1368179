"""A partial outage at the store, on a real PostgreSQL (``PostgresVerdicts.decide``): its
incident opens once ``partial_after`` has passed, exactly once when several vantages find it
due at the same moment, and is raised exactly once when several vantages meet the quorum
together (the target's advisory lock and the compare-and-set on the incident's kind)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from monitor.actions import Action, AddNote, SendPage
from monitor.store.base import BuildActions
from monitor.store.postgres import PostgresStore
from monitor.store.records import Incident
from monitor.store.verdicts import Decision, PartialPlans, Rules, Tally
from tests.test_confirmation_store import heartbeat
from tests.test_store_parity import PAGE, first_actions, incident_fields

pytestmark = pytest.mark.slow

VANTAGES = ("east", "west", "north")
PARTIAL_AFTER = 300.0


def rules(needed: int) -> Rules:
    return Rules(needed, 60.0, "all_live", 30.0, partial_after=PARTIAL_AFTER)


def opened(target: str, at: float) -> Any:
    def make(tally: Tally) -> tuple[dict[str, Any], BuildActions]:
        return incident_fields(target, at), first_actions(1e12)

    return make


def partial_plans(target: str, at: float) -> PartialPlans:
    def open_plan(tally: Tally) -> tuple[dict[str, Any], BuildActions]:
        fields = {**incident_fields(target, at), "kind": "partial", "priority": "high"}
        fields["last_reason"] = "down from " + ", ".join(v.vantage for v in tally.down)
        return fields, lambda incident_id: (f"partial-{incident_id}", [])

    def raised(
        incident: Incident, tally: Tally, paged: bool
    ) -> tuple[dict[str, Any], list[Action]]:
        actions: list[Action] = [AddNote("raised", public=True)]
        if not paged:
            actions.append(SendPage("oncall", PAGE))
        return {"priority": "urgent"}, actions

    return PartialPlans(open_plan, raised)


@pytest.fixture
async def stores(pg_url: str) -> AsyncIterator[dict[str, PostgresStore]]:
    heartbeat(pg_url, *VANTAGES)
    made = {vantage: PostgresStore(pg_url, vantage) for vantage in VANTAGES}
    for store in made.values():
        await store.open()
    yield made
    for store in made.values():
        await store.close()


async def down(
    store: PostgresStore, target: str, since: float, at: float, needed: int = 2
) -> Decision:
    said = (True, since, at, f"refused from {store.vantage}")
    return await store.decide(
        target, said, rules(needed), (), opened(target, at), partial_plans(target, at)
    )


async def test_the_partial_incident_opens_after_partial_after_once(
    stores: dict[str, PostgresStore],
) -> None:
    east = stores["east"]
    early = await down(east, "web", 1000.0, 1000.0 + PARTIAL_AFTER - 1)
    assert (early.incident, early.how, early.partial) == (None, None, None)
    due = await down(east, "web", 1000.0, 1000.0 + PARTIAL_AFTER)
    assert due.how == "partial"
    assert due.incident is not None
    assert (due.incident.kind, due.incident.priority) == ("partial", "high")
    assert due.incident.last_reason == "down from east"
    again = await down(east, "web", 1000.0, 1000.0 + PARTIAL_AFTER + 20)
    assert (again.incident, again.how, again.partial) == (None, None, due.incident.id)
    assert await east.partials() == {due.incident.id}


async def test_found_due_together_one_partial_incident(stores: dict[str, PostgresStore]) -> None:
    east, west = stores["east"], stores["west"]
    for round_ in range(30):
        target = f"web-{round_}"
        decisions = await asyncio.gather(
            down(east, target, 0.0, PARTIAL_AFTER, needed=3),
            down(west, target, 0.0, PARTIAL_AFTER, needed=3),
        )
        assert [d.how for d in decisions].count("partial") == 1, (round_, decisions)
    assert len(await east.incidents(open_only=True)) == 30


async def test_confirmed_together_raised_once(stores: dict[str, PostgresStore]) -> None:
    east, west, north = stores["east"], stores["west"], stores["north"]
    for round_ in range(30):
        target = f"web-{round_}"
        first = await down(east, target, 0.0, PARTIAL_AFTER, needed=2)
        assert first.incident is not None
        decisions = await asyncio.gather(
            down(west, target, 10.0, PARTIAL_AFTER + 5, needed=2),
            down(north, target, 10.0, PARTIAL_AFTER + 5, needed=2),
        )
        assert [d.how for d in decisions].count("raised") == 1, (round_, decisions)
        stored = await east.incident(first.incident.id)
        assert stored is not None
        assert (stored.kind, stored.priority, stored.status) == ("target", "urgent", "open")
        kinds = [a.operation for a in await east.actions_of(first.incident.id)]
        assert kinds.count("page") == 1
        assert kinds.count("note") == 1
    assert await east.partials() == set()
    assert len(await east.incidents(open_only=True)) == 30
