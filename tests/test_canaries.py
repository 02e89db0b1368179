"""Canaries with the local helpdesk and a real agent on a manual clock: when every outside
target fails at once the agent is impaired (no customer ticket, one "monitoring is impaired"
page, kept once across a restart); when the canaries are back only what still fails on fresh
probes opens."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from checks import ProbeResult
from monitor.actions import ResolvePage, SendPage
from monitor.policy.canaries import agent_name
from monitor.web.server import make_app
from tests.agent_harness import START, Harness

CONFIG = """
[agent]
canaries = ["dns-a", "dns-b"]

[defaults]
interval = "30s"
timeout = "5s"
failure_threshold = 3
recovery_threshold = 2

[[targets]]
name = "dns-a"
kind = "tcp"
host = "192.0.2.53"
port = 53
interval = "10s"
failure_threshold = 2

[[targets]]
name = "dns-b"
kind = "tcp"
host = "198.51.100.53"
port = 53
interval = "10s"
failure_threshold = 2

[[targets]]
name = "web"
kind = "tcp"
host = "203.0.113.10"
port = 443
customer = "acme"

[[targets]]
name = "api"
kind = "tcp"
host = "203.0.113.11"
port = 443
customer = "acme"

[[targets]]
name = "db"
kind = "tcp"
host = "203.0.113.12"
port = 5432
customer = "acme"

[customers.acme]
email = "it@acme.example"

[pagers.oncall]
type = "log"

[escalation]
page_on_open = ["oncall"]
"""

CANARIES = ("dns-a", "dns-b")
CUSTOMER = ("web", "api", "db")
KEY = f"watchdesk-impaired-{agent_name()}"


@pytest.fixture
async def make(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[Harness]]]:
    made: list[Harness] = []

    async def build(text: str = CONFIG) -> Harness:
        harness = await Harness.create(tmp_path / "state", text)
        made.append(harness)
        return harness

    yield build
    for harness in made:
        await harness.close()


async def probe(h: Harness, targets: tuple[str, ...], ok: bool) -> None:
    """One result each, at the clock's time."""
    for target in targets:
        reason = "status 200" if ok else "no route to host"
        await h.agent.apply_result(h.agent.targets[target], ProbeResult(ok, 0.01, reason))


async def pager_actions(h: Harness) -> list[SendPage | ResolvePage]:
    found: list[SendPage | ResolvePage] = []
    for incident in await h.incidents():
        for action in await h.agent.store.actions_of(incident.id):
            typed = action.action()
            if isinstance(typed, SendPage | ResolvePage):
                found.append(typed)
    return found


async def lose_the_uplink(h: Harness) -> None:
    """Everything outside fails, probed on each target's interval, for a minute."""
    for second in range(0, 61, 10):
        h.clock.set(START + second)
        await probe(h, CANARIES, False)
        if second % 30 == 0:
            await probe(h, CUSTOMER, False)
    await h.sweep()
    await h.deliver()


async def test_canaries_down_mean_no_customer_ticket_and_one_impaired_page(
    make: Callable[..., Awaitable[Harness]],
) -> None:
    h = await make()
    await lose_the_uplink(h)
    assert all(h.agent.states[name].status == "down" for name in (*CANARIES, *CUSTOMER))
    assert h.tickets() == []
    (alert,) = await h.incidents()
    assert alert.kind == "agent"
    assert alert.dedup_key == KEY
    (page,) = await pager_actions(h)
    assert isinstance(page, SendPage)
    assert page.page.dedup_key == KEY
    assert page.page.summary.startswith("[URGENT] monitoring is impaired")
    assert "dns-a: no route to host" in page.page.details
    assert b"watchdesk_agent_impaired 1.0" in h.agent.metrics_text()
    async with TestClient(TestServer(make_app(h.agent))) as client:
        ready = await client.get("/readyz")
        assert ready.status == 503
        assert "monitoring is impaired" in str(await ready.json())
        status = await (await client.get("/api/status")).json()
        assert all(row["impaired"] for row in status)
        web = await (await client.get("/api/targets/web")).json()
        assert web["verdict"] == "none"
        assert "monitoring is impaired: every canary (dns-a, dns-b) is down" in web["why"]

    # Canaries back, two targets really down: exactly those two open, after fresh probes.
    h.clock.set(START + 70)
    await probe(h, CANARIES, True)
    h.clock.set(START + 80)
    await probe(h, CANARIES, True)  # a canary is up: the alert resolves
    await h.deliver()
    assert (await h.incidents())[0].status == "resolved"
    assert isinstance((await pager_actions(h))[-1], ResolvePage)
    assert b"watchdesk_agent_impaired 0.0" in h.agent.metrics_text()
    for second, ok_db in ((90, True), (120, True), (150, True)):
        h.clock.set(START + second)
        await probe(h, ("web", "api"), False)
        await probe(h, ("db",), ok_db)
        await h.sweep()
        opened = [i.target for i in await h.incidents() if i.kind == "target"]
        # Three failed probes started after the canaries came back, not the old counters.
        assert opened == ([] if second < 150 else ["web", "api"]), second
    await h.deliver()
    assert sorted(str(t["subject"]) for t in h.tickets()) == [
        "[URGENT] api is down",
        "[URGENT] web is down",
    ]


async def test_the_impaired_page_goes_once_across_a_restart(
    make: Callable[..., Awaitable[Harness]],
) -> None:
    first = await make()
    await lose_the_uplink(first)
    await first.close()
    again = await make()
    for second in range(70, 131, 10):
        again.clock.set(START + second)
        await probe(again, CANARIES, False)
        await probe(again, CUSTOMER, False)
        await again.sweep()
    await again.deliver()
    assert again.tickets() == []
    assert len(await pager_actions(again)) == 1


async def test_targets_faster_than_the_canaries_wait_for_their_verdict(
    make: Callable[..., Awaitable[Harness]],
) -> None:
    """The customer targets cross their threshold before the canaries do: they wait."""
    h = await make(
        CONFIG.replace('interval = "10s"', 'interval = "20s"').replace(
            'interval = "30s"\ntimeout', 'interval = "5s"\ntimeout'
        )
    )
    for second in range(0, 41, 5):
        h.clock.set(START + second)
        await probe(h, CUSTOMER, False)
        if second % 20 == 0:
            await probe(h, CANARIES, False)
        await h.sweep()
    assert h.agent.states["web"].status == "down"
    await h.deliver()
    assert h.tickets() == []
    assert [i.kind for i in await h.incidents()] == ["agent"]


async def test_one_canary_down_is_an_outage_like_any_other(
    make: Callable[..., Awaitable[Harness]],
) -> None:
    h = await make()
    for second in range(0, 61, 10):
        h.clock.set(START + second)
        await probe(h, ("dns-a",), False)
        await probe(h, ("dns-b",), True)
        if second % 30 == 0:
            await probe(h, ("web",), False)
    await h.sweep()
    await h.deliver()
    assert sorted(str(t["subject"]) for t in h.tickets()) == [
        "[URGENT] dns-a is down",
        "[URGENT] web is down",
    ]
    assert b"watchdesk_agent_impaired 0.0" in h.agent.metrics_text()


async def test_on_a_cluster_each_vantage_pages_its_own_impairment(
    tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With [cluster] the page's dedup key and the alert's target name the vantage (not the
    host): two vantages impaired at once on one database page once each, and one vantage's
    canaries back resolve its own alert only."""
    monkeypatch.setenv("WD_TEST_DATABASE_URL", pg_url)
    made: list[Harness] = []
    try:
        for vantage in ("east", "west"):
            cluster = (
                f'[cluster]\ndatabase_url_env = "WD_TEST_DATABASE_URL"\nvantage = "{vantage}"\n'
            )
            made.append(await Harness.create(tmp_path / vantage, CONFIG + cluster))
        east, west = made
        await lose_the_uplink(east)
        await lose_the_uplink(west)
        alerts = {i.target: i for i in await west.incidents()}
        assert set(alerts) == {"watchdesk:impaired:east", "watchdesk:impaired:west"}
        assert alerts["watchdesk:impaired:west"].dedup_key == "watchdesk-impaired-west"
        assert all(alert.kind == "agent" and alert.status == "open" for alert in alerts.values())
        sent = [p.page.dedup_key for p in await pager_actions(west) if isinstance(p, SendPage)]
        assert sorted(sent) == ["watchdesk-impaired-east", "watchdesk-impaired-west"]
        assert east.tickets() == west.tickets() == []

        for second in (70, 80):  # east's canaries are back
            east.clock.set(START + second)
            await probe(east, CANARIES, True)
        await east.deliver()
        statuses = {i.target: i.status for i in await west.incidents()}
        assert statuses == {
            "watchdesk:impaired:east": "resolved",
            "watchdesk:impaired:west": "open",
        }
        assert west.agent.incidents.canaries.impaired()
        assert not east.agent.incidents.canaries.impaired()
    finally:
        for harness in made:
            await harness.close()
