"""A storm end to end, across a SIGKILL: a real agent process probing 200 HTTP targets of 7
customers (one stand-in server, a switch per path), the Freshdesk and PagerDuty stand-ins in
processes of their own. All 200 go down at once; the agent is killed at a named crash point
on the way and started again. The stand-ins' own records must show 7 tickets (one per
customer, listing their targets), one PagerDuty alert, notes for the 3 targets that recover
early, and, once all are back, one recovery note on every ticket and one resolve."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from monitor.faults import ENV
from tests.helpers import (
    STAND_IN_ENV,
    AgentProcess,
    FakeProcess,
    free_port,
    freshdesk_toml,
    pagerduty_toml,
    run_cli,
)

pytestmark = pytest.mark.slow

CUSTOMERS = 7
TARGETS = 200
PENDING = 3
NAMES = [f"svc-{i:03d}" for i in range(TARGETS)]
EARLY = NAMES[:3]  # of customers c0, c1 and c2


@pytest.fixture
def targets() -> Iterator[FakeProcess]:
    fake = FakeProcess("targets")
    yield fake
    fake.stop()


def switch(fake: FakeProcess, paths: list[str], down: bool) -> None:
    request = urllib.request.Request(
        fake.url + "/_fake/switch",
        data=json.dumps({"down": down, "paths": paths}).encode(),
        headers={"Content-Type": "application/json"},
    )
    urllib.request.urlopen(request, timeout=5).close()


def config_text(port: int, state: Path, targets: FakeProcess, fd: str, pd: str) -> str:
    listed = "".join(
        f"""
[[targets]]
name = "{name}"
kind = "http"
url = "{targets.url}/t/{name}"
customer = "c{i % CUSTOMERS}"
"""
        for i, name in enumerate(NAMES)
    )
    customers = "".join(
        f'\n[customers.c{c}]\nemail = "it@c{c}.example"\n' for c in range(CUSTOMERS)
    )
    return (
        f"""
[agent]
listen = "127.0.0.1:{port}"
state_dir = "{state}"

[defaults]
interval = "1s"
timeout = "800ms"
failure_threshold = 2
recovery_threshold = 2

[storm]
group_wait = "3s"

[escalation]
page_on_open = ["oncall"]
ack_timeout = "1h"
status_update_interval = "1h"
"""
        + listed
        + customers
        + freshdesk_toml(fd, request_timeout="1s", extra='search_lag = "1s"')
        + pagerduty_toml(pd)
    )


class Run:
    """The doomed agent, then the survivor once the doomed one has died at its point."""

    def __init__(self, config: Path, port: int, point: str, agents: list[AgentProcess]) -> None:
        self.config, self.port, self.point, self.agents = config, port, point, agents
        self.agent = AgentProcess(config, port, env={**STAND_IN_ENV, ENV: point})
        agents.append(self.agent)
        self.died = False

    def alive(self) -> None:
        if not self.died and self.agent.proc.poll() is not None:
            assert self.agent.proc.returncode == -9, self.agent.log()
            assert f"crash point {self.point.split(':')[0]} reached" in self.agent.log()
            self.died = True
            self.agent = AgentProcess(self.config, self.port, env=STAND_IN_ENV)
            self.agents.append(self.agent)
            self.agent.wait_ready()

    def wait(self, predicate: Callable[[], Any], what: str, timeout: float = 40.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.alive()
            value = predicate()
            if value:
                return value
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}\n{self.agent.log()[-3000:]}")


def tickets(fd: FakeProcess) -> dict[str, dict[str, Any]]:
    """Freshdesk's tickets by requester email."""
    state = fd.state()
    return {state["contacts"][str(t["requester_id"])]: t for t in state["tickets"]}


def notes(fd: FakeProcess, ticket: dict[str, Any]) -> list[str]:
    return [n["body"] for n in fd.state()["notes"].get(str(ticket["id"]), [])]


@pytest.mark.parametrize(
    "point", ["after_incident_row", "after_create_sent:3", "after_recovery_committed"]
)
def test_a_storm_across_a_sigkill_is_7_tickets_1_page_and_1_resolve(
    point: str,
    write_config: Callable[..., Path],
    tmp_path: Path,
    agents: list[AgentProcess],
    stand_ins: tuple[FakeProcess, FakeProcess],
    targets: FakeProcess,
) -> None:
    freshdesk, pagerduty = stand_ins
    port = free_port()
    config = write_config(
        config_text(port, tmp_path / "state", targets, freshdesk.url, pagerduty.url)
    )
    run = Run(config, port, point, agents)
    run.agent.wait_ready()
    run.wait(
        lambda: all(row["state"] == "up" for row in run.agent.status().values()),
        "every target up",
    )
    switch(targets, NAMES, down=True)
    run.wait(lambda: len(tickets(freshdesk)) == CUSTOMERS, "a ticket per customer")
    run.wait(lambda: pagerduty.state()["alerts"], "the page")
    if run.died or point != "after_recovery_committed":
        run.wait(lambda: run.died, "the crash")
    row = run.wait(
        lambda: (r := run.agent.status()["svc-100"])["incident"] is not None and r,
        "svc-100 in the storm",
    )
    explained = run_cli("explain", "svc-100", "-c", str(config))
    assert explained.returncode == 0, explained.stderr
    assert f"it is in storm incident {row['incident']}" in explained.stdout

    switch(targets, EARLY, down=False)
    run.wait(
        lambda: all(
            any(f"- {name}" in n and "Recovered" in n for n in notes(freshdesk, ticket))
            for name, ticket in zip(
                EARLY, [tickets(freshdesk)[f"it@c{c}.example"] for c in range(3)], strict=True
            )
        ),
        "a note for each target that recovered early",
    )
    switch(targets, NAMES[3:], down=False)
    run.wait(
        lambda: (
            all(t["status"] == PENDING for t in tickets(freshdesk).values())
            and all(a["status"] == "resolved" for a in pagerduty.state()["alerts"].values())
        ),
        "the recovery on every ticket and the resolve",
    )
    run.wait(lambda: run.died, "the crash")
    time.sleep(1.0)  # anything still queued would arrive now

    fd, pd = freshdesk.state(), pagerduty.state()
    creates = [r for r in fd["requests"] if r["route"] == "create"]
    assert len(creates) == CUSTOMERS, point
    assert len(pd["alerts"]) == 1
    assert not pd["resolved_alerts"]
    (alert,) = pd["alerts"].values()
    assert alert["trigger_count"] >= 1
    assert alert["status"] == "resolved"
    listed: list[str] = []
    for c in range(CUSTOMERS):
        ticket = tickets(freshdesk)[f"it@c{c}.example"]
        mine = [name for i, name in enumerate(NAMES) if i % CUSTOMERS == c]
        said = ticket["description_text"] + "".join(notes(freshdesk, ticket))
        assert all(f"- {name}:" in said for name in mine), c  # each target told, once down
        assert all(f"svc-{i:03d}:" not in said for i in range(c + 1, TARGETS, CUSTOMERS))
        recovery = [n for n in notes(freshdesk, ticket) if "the incident is over" in n]
        assert len(recovery) == 1, (point, c)
        listed += mine
    assert sorted(listed) == NAMES
    if point.startswith("after_create_sent"):
        searched = [r for r in fd["requests"] if r["route"] == "search"]
        assert searched, "the lost create was looked up by its key, not sent again"
