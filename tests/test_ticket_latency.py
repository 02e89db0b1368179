"""The reliability machinery costs no latency: the ticket reaches the helpdesk within
``failure_threshold x interval + 1 s`` of the first failed check, and the page with it."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import (
    STAND_IN_ENV,
    AgentProcess,
    FakeProcess,
    free_port,
    freshdesk_toml,
    http_get,
    pagerduty_toml,
)

pytestmark = pytest.mark.slow

INTERVAL = 0.5
THRESHOLD = 3


def test_ticket_and_page_within_threshold_times_interval_plus_one_second(
    write_config: Callable[..., Path],
    tmp_path: Path,
    agents: list[AgentProcess],
    stand_ins: tuple[FakeProcess, FakeProcess],
) -> None:
    freshdesk, pagerduty = stand_ins
    service = socket.socket()
    service.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    service.bind(("127.0.0.1", 0))
    service.listen(64)
    service_port = service.getsockname()[1]
    port = free_port()
    config = write_config(
        f"""
[agent]
listen = "127.0.0.1:{port}"
state_dir = "{tmp_path / "state"}"

[defaults]
interval = "{int(INTERVAL * 1000)}ms"
timeout = "400ms"
failure_threshold = {THRESHOLD}

[[targets]]
name = "api"
kind = "tcp"
host = "127.0.0.1"
port = {service_port}

"""
        + freshdesk_toml(freshdesk.url)
        + pagerduty_toml(pagerduty.url)
        + """
[escalation]
page_on_open = ["oncall"]
"""
    )
    agent = AgentProcess(config, port, env=STAND_IN_ENV)
    agents.append(agent)
    agent.wait_ready()
    agent.wait_for(lambda s: s["api"]["state"] == "up", what="api up")
    service.close()  # the outage begins
    freshdesk.wait_for(lambda s: bool(s["tickets"]), "the ticket")
    pagerduty.wait_for(lambda s: bool(s["alerts"]), "the page")
    _, body = http_get(agent.base + "/api/incidents")
    (incident,) = json.loads(body)
    first_failure = float(incident["first_failure_at"])
    (create,) = [r for r in freshdesk.state()["requests"] if r["route"] == "create"]
    (trigger,) = [r for r in pagerduty.state()["requests"] if r["route"] == "enqueue"]
    budget = THRESHOLD * INTERVAL + 1.0
    assert 0 < create["at"] - first_failure <= budget
    assert 0 < trigger["at"] - first_failure <= budget
    assert time.time() - first_failure < 30
