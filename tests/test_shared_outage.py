"""A shared component down: its dependents belong to several customers, so its incident is
raised to urgent and every customer behind it is told once, with the local helpdesk."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from monitor.cli.main import main
from monitor.web.views import incident_rows
from tests.agent_harness import Harness

BASE = """
[defaults]
interval = "30s"
timeout = "5s"
failure_threshold = 3
recovery_threshold = 2

[[targets]]
name = "core-db"
kind = "tcp"
host = "db.internal"
port = 5432
priority = "high"

[[targets]]
name = "alpha-app"
kind = "http"
url = "https://app.alpha.example/health"
customer = "alpha"
depends_on = ["core-db"]

[[targets]]
name = "beta-api"
kind = "http"
url = "https://api.beta.example/health"
customer = "beta"
depends_on = ["core-db"]

[[targets]]
name = "beta-web"
kind = "http"
url = "https://www.beta.example/"
customer = "beta"
depends_on = ["beta-api"]

[[targets]]
name = "delta-portal"
kind = "http"
url = "https://portal.delta.example/"
customer = "delta"
depends_on = ["alpha-app"]

[[targets]]
name = "gamma-cache"
kind = "tcp"
host = "cache.gamma.internal"
port = 6379
priority = "high"
customer = "gamma"

[[targets]]
name = "gamma-app"
kind = "http"
url = "https://app.gamma.example/"
customer = "gamma"
depends_on = ["gamma-cache"]

[customers.alpha]
email = "it@alpha.example"
name = "Alpha IT"

[customers.beta]
email = "ops@beta.example"

[customers.delta]
email = "desk@delta.example"

[customers.gamma]
email = "it@gamma.example"

[pagers.oncall]
type = "log"

[escalation]
page_on_open = ["oncall"]
"""


@pytest.fixture
async def make(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[Harness]]]:
    made: list[Harness] = []

    async def build(extra: str = "", state: str = "state") -> Harness:
        harness = await Harness.create(tmp_path / state, BASE + extra)
        made.append(harness)
        return harness

    yield build
    for harness in made:
        await harness.close()


def by_customer(h: Harness) -> dict[object, dict[str, object]]:
    return {t["customer"]: t for t in h.tickets() if t["target"] == "core-db"}


async def settle(h: Harness) -> None:
    """What the running agent does next: a sweep, and the outbox drained."""
    await h.sweep()
    await h.deliver()


async def test_a_shared_component_down_is_raised_and_every_customer_behind_it_told_once(
    make: Callable[..., Awaitable[Harness]],
) -> None:
    h = await make()
    await h.fail("core-db", 3, reason="connection refused")
    await settle(h)
    await settle(h)  # a second sweep finds everything done: nothing twice

    (incident,) = await h.incidents()
    assert (incident.target, incident.priority) == ("core-db", "urgent")
    tickets = by_customer(h)
    # The component's own ticket (no customer), one per customer behind it: alpha and beta
    # directly, delta through alpha-app; beta once although two of its targets depend on it.
    assert set(tickets) == {None, "alpha", "beta", "delta"}
    (note,) = h.notes(tickets[None]["id"])
    assert "from high to urgent" in note
    assert "Why: core-db is a shared component: services of 3 customers depend on it." in note

    alpha = tickets["alpha"]
    assert alpha["subject"] == "[URGENT] core-db is down: alpha-app affected"
    assert (alpha["priority"], alpha["requester"]) == ("urgent", "it@alpha.example")
    text = str(alpha["description"])
    assert text.startswith("Hello Alpha IT,")
    assert "A shared component that some of your services depend on is down" in text
    assert "Shared component: core-db (TCP connect of db.internal:5432)" in text
    assert "Last error: connection refused" in text
    assert f"Our reference: incident {incident.id} ({incident.dedup_key})" in text
    assert "just reply to this ticket" in text
    assert "Thank you" in text
    assert "beta" not in text  # never another customer's name or targets
    assert "delta" not in text
    beta = tickets["beta"]
    assert beta["requester"] == "ops@beta.example"
    assert "Your services that depend on it: beta-api, beta-web" in str(beta["description"])
    assert "Your services that depend on it: delta-portal" in str(tickets["delta"]["description"])
    assert all(h.notes(tickets[c]["id"]) == [] for c in ("alpha", "beta", "delta"))

    # Raised to urgent, it pages as an urgent issue does (at high it paged nobody).
    pages = [
        a.payload["page"]["summary"]
        for a in await h.agent.store.actions_of(incident.id)
        if a.channel == "pager:oncall"
    ]
    assert pages == ["[URGENT] core-db is down"]


async def test_a_customer_with_an_open_ticket_gets_a_note_and_recovery_reaches_everyone(
    make: Callable[..., Awaitable[Harness]],
) -> None:
    h = await make()
    await h.fail("beta-api", 3, reason="status 502")  # beta's own incident, before the cause
    await h.fail("core-db", 3)
    await settle(h)

    own, shared = await h.incidents()
    assert (own.target, shared.target, shared.priority) == ("beta-api", "core-db", "urgent")
    tickets = by_customer(h)
    assert set(tickets) == {None, "alpha", "delta"}  # beta: no second ticket
    (beta_ticket,) = [t for t in h.tickets() if t["target"] == "beta-api"]
    (note,) = h.notes(beta_ticket["id"])
    assert note.startswith("Hello,")
    assert "a shared component that beta-api, beta-web depend on is down" in note
    assert f"Our reference: incident {shared.id}" in note

    await h.succeed("core-db", 2)
    await settle(h)
    await settle(h)
    tickets = by_customer(h)
    for customer, greeting in (("alpha", "Hello Alpha IT,"), ("delta", "Hello,")):
        (recovered,) = h.notes(tickets[customer]["id"])  # once
        assert recovered.startswith(greeting)
        assert "Good news: core-db has recovered at" in recovered
        assert tickets[customer]["status"] == "pending"  # on_recovery, as any incident's ticket
    # beta's ticket hears that the cause is back; its own incident decides its status.
    (beta_ticket,) = [t for t in h.tickets() if t["target"] == "beta-api"]
    (_, recovered) = h.notes(beta_ticket["id"])
    assert "Good news: core-db has recovered at" in recovered
    assert beta_ticket["status"] == "open"
    assert [i.status for i in await h.incidents()] == ["open", "resolved"]


async def test_a_resolve_by_hand_reaches_every_customer_ticket_with_who_and_how(
    make: Callable[..., Awaitable[Harness]],
) -> None:
    h = await make()
    await h.fail("core-db", 3)
    await settle(h)
    (incident,) = await h.incidents()
    agent = h.agent
    await agent.desk.resolve(incident.id, "dana", "failed over", agent.config, agent.incidents)
    await settle(h)
    for customer in ("alpha", "beta", "delta"):
        ticket = by_customer(h)[customer]
        (note,) = h.notes(ticket["id"])
        assert "How it was resolved: resolved by dana: failed over" in note
        assert ticket["status"] == "pending"


async def test_a_parent_whose_dependents_are_one_customers_is_not_raised(
    make: Callable[..., Awaitable[Harness]],
) -> None:
    h = await make()
    await h.fail("gamma-cache", 3)
    await settle(h)
    (incident,) = await h.incidents()
    assert incident.priority == "high"
    (ticket,) = h.tickets()
    assert ticket["subject"] == "[HIGH] gamma-cache is down"
    assert h.notes(ticket["id"]) == []
    assert await h.agent.store.notices() == []
    # Its failing child is still named on its ticket, as before.
    await h.fail("gamma-app", 3)
    await settle(h)
    (note,) = h.notes(ticket["id"])
    assert "Also affected: gamma-app" in note


async def test_a_restart_before_delivery_sends_nothing_twice(
    make: Callable[..., Awaitable[Harness]],
) -> None:
    h = await make()
    await h.fail("core-db", 3)  # decided and queued, nothing delivered
    await h.agent.book.flush()
    await h.close()
    again = await make()
    again.clock.set(h.clock.now())
    await again.fail("core-db", 1)
    await settle(again)
    await again.agent.book.flush()
    await again.close()
    third = await make()  # and once more, after everything was delivered
    third.clock.set(again.clock.now())
    await third.fail("core-db", 1)
    await settle(third)
    tickets = [t for t in third.tickets() if t["target"] == "core-db"]
    assert sorted(str(t["customer"]) for t in tickets) == ["None", "alpha", "beta", "delta"]
    (parent,) = [t for t in tickets if t["customer"] is None]
    assert len(third.notes(parent["id"])) == 1  # one priority-change note


async def test_a_customer_newly_behind_the_component_after_a_reload_gets_its_ticket_then(
    make: Callable[..., Awaitable[Harness]], tmp_path: Path
) -> None:
    h = await make()
    await h.fail("core-db", 3)
    await settle(h)
    assert set(by_customer(h)) == {None, "alpha", "beta", "delta"}
    added = """
[[targets]]
name = "omega-shop"
kind = "http"
url = "https://shop.omega.example/"
customer = "omega"
depends_on = ["beta-web"]

[customers.omega]
email = "help@omega.example"
"""
    config = tmp_path / "reloaded.toml"
    state = f'[agent]\nstate_dir = "{h.agent.config.agent.state_dir}"\n'
    config.write_text(state + BASE + added)
    h.agent.config_path = str(config)
    assert await h.agent.reload()
    await settle(h)
    tickets = by_customer(h)
    assert set(tickets) == {None, "alpha", "beta", "delta", "omega"}
    assert tickets["omega"]["requester"] == "help@omega.example"
    assert len(h.notes(tickets[None]["id"])) == 1  # still one priority change, still urgent
    (incident,) = await h.incidents()
    assert incident.priority == "urgent"


async def test_the_api_and_the_tickets_command_show_customer_tickets_under_the_incident(
    make: Callable[..., Awaitable[Harness]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    h = await make()
    await h.fail("beta-api", 3)
    await h.fail("core-db", 3)
    await settle(h)
    rows = {row["target"]: row for row in await incident_rows(h.agent.store)}
    shared = rows["core-db"]["customer_tickets"]
    assert [(c["customer"], c["via_incident"]) for c in shared] == [
        ("alpha", None),
        ("beta", rows["beta-api"]["id"]),
        ("delta", None),
    ]
    alpha = by_customer(h)["alpha"]
    assert (shared[0]["ticket_id"], shared[0]["outbox"]) == (str(alpha["id"]), "delivered")
    assert shared[1]["dependents"] == ["beta-api", "beta-web"]
    assert rows["beta-api"]["customer_tickets"] == []

    config = tmp_path / "cli.toml"
    config.write_text(f'[agent]\nstate_dir = "{h.agent.config.agent.state_dir}"\n' + BASE)
    assert main(["tickets", "-c", str(config)]) == 0
    lines = capsys.readouterr().out.splitlines()
    at = next(i for i, line in enumerate(lines) if " core-db " in line)
    assert lines[at + 1 : at + 4] == [
        f"  -> customer alpha: ticket local#{alpha['id']}, outbox delivered",
        f"  -> customer beta: note on incident {rows['beta-api']['id']}",
        f"  -> customer delta: ticket local#{by_customer(h)['delta']['id']}, outbox delivered",
    ]
    assert main(["tickets", "-c", str(config), "--json"]) == 0
    listed = {row["target"]: row for row in json.loads(capsys.readouterr().out)}
    assert len(listed["core-db"]["customer_tickets"]) == 3
