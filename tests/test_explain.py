"""``GET /api/targets/{name}`` (what ``watchdesk explain`` prints) says why a target has, or has
no, incident right now: its counters against its thresholds, its incident, and each rule in
effect (maintenance, a mute, a parent down, flapping), with the agent's own verdict."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from monitor.web.server import make_app
from tests.agent_harness import Harness

CONFIG = """
[defaults]
interval = "30s"
failure_threshold = 3
recovery_threshold = 2

[[targets]]
name = "router"
kind = "icmp"
host = "192.0.2.1"

[[targets]]
name = "app"
kind = "tcp"
host = "192.0.2.10"
port = 443
depends_on = ["router"]

[[targets]]
name = "web"
kind = "tcp"
host = "192.0.2.11"
port = 443
tags = ["frontend"]

[[targets]]
name = "db"
kind = "tcp"
host = "192.0.2.12"
port = 5432

[[targets]]
name = "cache"
kind = "tcp"
host = "192.0.2.13"
port = 6379

[[maintenance]]
tags = ["frontend"]
start = "2026-11-24T09:30:00Z"
end = "2026-11-24T12:00:00Z"
reason = "new load balancer"

[escalation]
flap_threshold = 4
"""


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[tuple[Harness, TestClient[Any, Any]]]:
    h = await Harness.create(tmp_path / "state", CONFIG)
    async with TestClient(TestServer(make_app(h.agent))) as test_client:
        yield h, test_client
    await h.close()


async def explain(client: TestClient[Any, Any], target: str) -> dict[str, Any]:
    answer = await client.get(f"/api/targets/{target}")
    assert answer.status == 200
    return dict(await answer.json())


async def test_each_rule_in_effect_is_said(client: tuple[Harness, TestClient[Any, Any]]) -> None:
    h, http = client
    await h.fail("db", 2)
    db = await explain(http, "db")
    assert db["why"] == "no verdict yet (2 of 3 consecutive failures): no incident"
    await h.succeed("db")
    await h.fail("db", 2)
    db = await explain(http, "db")
    assert db["why"] == "up, no incident: 2 of 3 consecutive failures; at 3 it is down"
    assert (db["consecutive_failures"], db["failure_threshold"]) == (2, 3)

    await h.fail("web", 3)
    web = await explain(http, "web")
    assert web["verdict"] == "none"
    assert web["why"] == "down with no incident: it is in a maintenance window (new load balancer)"
    assert web["maintenance"] is True

    await h.agent.desk.mute("db", 3600, "disk swap", "bob")
    await h.fail("db")
    db = await explain(http, "db")
    assert db["why"] == "down with no incident: it is muted (watchdesk mute)"
    assert "muted by bob until 2026-11-24 11:" in db["facts"][0]
    assert db["facts"][0].endswith(": disk swap")

    await h.fail("router", 3)
    await h.fail("app", 3)
    await h.sweep()
    router, app = await explain(http, "router"), await explain(http, "app")
    assert router["incident"]["id"] == (await h.incidents())[0].id
    assert router["why"].startswith(f"incident {router['incident']['id']} is open: router is down")
    assert app["verdict"] == "affected"
    assert app["parent_down"] == "router"
    assert "its parent router is down (depends_on): it is named on router's ticket" in app["why"]


async def test_a_flapping_incident_says_how_long_it_stays_open(
    client: tuple[Harness, TestClient[Any, Any]],
) -> None:
    h, http = client
    for _ in range(3):
        await h.fail("cache", 3)
        await h.succeed("cache", 2)
        await h.sweep()
    cache = await explain(http, "cache")
    assert cache["flapping"] is True
    assert "but flapping, and it stays open until the target has been up for 10m" in cache["why"]
    assert any(f.startswith("it is flapping") for f in cache["facts"])
