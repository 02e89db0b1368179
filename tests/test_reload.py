"""Reload rebuilds the house: pagers, the helpdesk and their settings take effect without a
restart, actions for a removed pager are kept, and reloads that come together run one by one.

The agent is real (``monitor.agent.Agent`` on a config file, a manual clock); the helpdesk and
the pagers are the Freshdesk and PagerDuty stand-ins on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from checks import ProbeResult
from monitor.agent import Agent
from monitor.clock import ManualClock
from monitor.config import load_config
from monitor.web.views import incident_rows
from tests.agent_harness import START
from tests.fakes.freshdesk import FreshdeskFake
from tests.fakes.pagerduty import PagerDutyFake
from tests.helpers import FD_KEY, PD_KEY, STAND_IN_ENV

TARGETS = """
[defaults]
interval = "30s"
failure_threshold = 1
recovery_threshold = 1

[[targets]]
name = "web"
kind = "tcp"
host = "127.0.0.1"
port = 9

[[targets]]
name = "db"
kind = "tcp"
host = "127.0.0.1"
port = 9
"""


def freshdesk(url: str) -> str:
    return (
        f'[ticketing]\nbackend = "freshdesk"\nrequest_timeout = "2s"\n'
        f'[ticketing.freshdesk]\nurl = "{url}"\napi_key_env = "WD_TEST_FD_KEY"\n'
        'requester_email = "monitoring@acme.example"\n'
    )


def pager(name: str, url: str) -> str:
    return (
        f'[pagers.{name}]\ntype = "pagerduty"\nrouting_key_env = "WD_TEST_PD_KEY"\n'
        f'url = "{url}/v2/enqueue"\n'
    )


def escalation(*page_on_open: str) -> str:
    names = ", ".join(f'"{name}"' for name in page_on_open)
    return f"[escalation]\npage_on_open = [{names}]\npage_on_escalation = []\n"


class Live:
    """An agent on a config file that a test rewrites and reloads."""

    def __init__(self, tmp_path: Path, text: str) -> None:
        self.path = tmp_path / "config.toml"
        self.state = tmp_path / "state"
        self.write(text)
        self.clock = ManualClock(START)
        self.agent = Agent(load_config(self.path), config_path=str(self.path), clock=self.clock)

    @classmethod
    async def create(cls, tmp_path: Path, text: str) -> Live:
        live = cls(tmp_path, text)
        await live.agent.prepare()
        return live

    def write(self, text: str) -> None:
        self.path.write_text(f'[agent]\nstate_dir = "{self.state}"\n' + TARGETS + text)

    async def reload(self, text: str) -> None:
        self.write(text)
        assert await self.agent.reload()

    async def down(self, target: str) -> None:
        config = self.agent.targets[target]
        await self.agent.apply_result(config, ProbeResult(False, 0.01, "connection refused"))
        self.clock.advance(30)

    async def deliver(self) -> None:
        await self.agent.outbox.drain()

    async def close(self) -> None:
        await self.agent.integrations.aclose()
        await self.agent.store.close()


@pytest.fixture
async def services(
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[tuple[FreshdeskFake, FreshdeskFake, PagerDutyFake, PagerDutyFake]]:
    for name, value in STAND_IN_ENV.items():
        monkeypatch.setenv(name, value)
    async with (
        FreshdeskFake(api_key=FD_KEY) as fd1,
        FreshdeskFake(api_key=FD_KEY) as fd2,
        PagerDutyFake(routing_key=PD_KEY) as pd1,
        PagerDutyFake(routing_key=PD_KEY) as pd2,
    ):
        yield fd1, fd2, pd1, pd2


async def test_a_pager_added_by_reload_is_paged(
    tmp_path: Path, services: tuple[FreshdeskFake, FreshdeskFake, PagerDutyFake, PagerDutyFake]
) -> None:
    fd, _, pd, _ = services
    live = await Live.create(tmp_path, freshdesk(fd.url) + escalation())
    try:
        await live.reload(freshdesk(fd.url) + pager("sms", pd.url) + escalation("sms"))
        await live.down("web")
        await live.deliver()
        assert len(pd.alerts) == 1
        status, body = await _readyz(live)
        assert status == 200, body
    finally:
        await live.close()


async def test_a_pager_whose_settings_change_pages_the_new_way(
    tmp_path: Path, services: tuple[FreshdeskFake, FreshdeskFake, PagerDutyFake, PagerDutyFake]
) -> None:
    fd, _, pd1, pd2 = services
    live = await Live.create(
        tmp_path, freshdesk(fd.url) + pager("oncall", pd1.url) + escalation("oncall")
    )
    try:
        await live.down("web")
        await live.deliver()
        await live.reload(freshdesk(fd.url) + pager("oncall", pd2.url) + escalation("oncall"))
        await live.down("db")
        await live.deliver()
        assert len(pd1.alerts) == 1
        assert len(pd2.alerts) == 1
    finally:
        await live.close()


async def test_the_helpdesk_whose_settings_change_gets_the_next_ticket(
    tmp_path: Path, services: tuple[FreshdeskFake, FreshdeskFake, PagerDutyFake, PagerDutyFake]
) -> None:
    fd1, fd2, _, _ = services
    live = await Live.create(tmp_path, freshdesk(fd1.url) + escalation())
    try:
        await live.down("web")
        await live.deliver()
        await live.reload(freshdesk(fd2.url) + escalation())
        await live.down("db")
        await live.deliver()
        assert [t["subject"] for t in fd1.tickets.values()] == ["[URGENT] web is down"]
        assert [t["subject"] for t in fd2.tickets.values()] == ["[URGENT] db is down"]
    finally:
        await live.close()


async def test_pages_for_a_removed_pager_are_kept_and_shown(
    tmp_path: Path, services: tuple[FreshdeskFake, FreshdeskFake, PagerDutyFake, PagerDutyFake]
) -> None:
    fd, _, pd, _ = services
    pd.fail_next("enqueue", "503", count=100)
    live = await Live.create(tmp_path, freshdesk(fd.url) + pager("sms", pd.url) + escalation("sms"))
    try:
        await live.down("web")
        await live.deliver()
        await live.reload(freshdesk(fd.url) + escalation())
        live.clock.advance(120)
        await live.deliver()
        (row,) = await incident_rows(live.agent.store)
        assert row["outbox"] == "pager:sms page: channel removed"
        status, body = await _readyz(live)
        assert status == 503
        assert "pager:sms page of incident 1 is kept: channel removed" in body
        pd.reset_failures()
        await live.reload(freshdesk(fd.url) + pager("sms", pd.url) + escalation("sms"))
        live.clock.advance(120)
        await live.deliver()
        assert len(pd.alerts) == 1  # delivered once the pager is back, never dropped
    finally:
        await live.close()


async def test_reloads_that_come_together_run_one_by_one(
    tmp_path: Path, services: tuple[FreshdeskFake, FreshdeskFake, PagerDutyFake, PagerDutyFake]
) -> None:
    """Four SIGHUPs at once: each reload runs alone (the integrations in force when one starts
    are the ones the previous one left), all succeed, and one set of integrations stays."""
    fd, _, pd, _ = services
    live = await Live.create(tmp_path, freshdesk(fd.url) + escalation())
    try:
        live.write(freshdesk(fd.url) + pager("oncall", pd.url) + escalation("oncall"))
        seen: list[object] = []
        original = live.agent._reload

        async def observed() -> bool:
            before = live.agent.integrations.current
            result = await original()
            seen.append((before, live.agent.integrations.current))
            return result

        live.agent._reload = observed  # type: ignore[method-assign]
        results = await asyncio.gather(*(live.agent.reload() for _ in range(4)))
        assert results == [True, True, True, True]
        assert live.agent.reload_count == 4
        # Serialised: each reload began with what the one before it left.
        assert all(seen[i][1] is seen[i + 1][0] for i in range(3))
        await live.down("web")
        await live.deliver()
        assert len(pd.alerts) == 1
    finally:
        await live.close()


async def _readyz(live: Live) -> tuple[int, str]:
    from aiohttp.test_utils import TestClient, TestServer

    from monitor.web.server import make_app

    async with TestClient(TestServer(make_app(live.agent))) as client:
        response = await client.get("/readyz")
        return response.status, await response.text()


@pytest.mark.slow
def test_auto_close_follows_a_reload_of_the_local_helpdesk(tmp_path: Path) -> None:
    """A real agent: the pending ticket of a recovered outage is closed within seconds once a
    reload sets ``auto_close_after = "2s"`` (the job is sized to it and uses the new helpdesk,
    not the closed one it had)."""
    import signal
    import socket
    import time

    from tests.helpers import AgentProcess, api_agent_toml, free_port
    from ticketing.backends.local import LocalBackend

    service = socket.socket()
    service.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    service_port = free_port()
    port = free_port()
    config = tmp_path / "config.toml"

    def write(auto_close: str) -> None:
        config.write_text(
            api_agent_toml(port, tmp_path / "state", service_port)
            + '[ticketing]\nbackend = "local"\n'
            + f'[ticketing.local]\nauto_close_after = "{auto_close}"\n'
        )

    def ticket_status() -> str | None:
        local = LocalBackend(tmp_path / "state" / "watchdesk.sqlite3")
        try:
            tickets = local.tickets()
        finally:
            local._db.close()
        return str(tickets[0]["status"]) if tickets else None

    write("7d")
    agent = AgentProcess(config, port)
    try:
        agent.wait_ready()
        agent.wait_for(lambda s: s["api"]["state"] == "down", what="api down")
        service.bind(("127.0.0.1", service_port))
        service.listen(64)
        agent.wait_for(lambda s: s["api"]["state"] == "up", what="api up")
        deadline = time.monotonic() + 10
        while ticket_status() != "pending" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert ticket_status() == "pending"
        write("2s")
        agent.signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while ticket_status() != "closed" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert ticket_status() == "closed", agent.log()
        assert "Cannot operate on a closed database" not in agent.log()
    finally:
        agent.stop()
        service.close()


async def test_a_reload_keeps_the_probe_counters_of_unchanged_targets(tmp_path: Path) -> None:
    live = await Live.create(tmp_path, "")
    try:
        await live.down("web")
        await live.down("web")
        counted = 'watchdesk_probes_total{kind="tcp",result="failure",target="web"} 2.0'
        assert counted in live.agent.metrics.exposition().decode()
        await live.reload("")
        after = live.agent.metrics.exposition().decode()
        assert counted in after
        assert 'watchdesk_target_up{target="web"} 0.0' in after
    finally:
        await live.close()
