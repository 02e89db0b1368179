"""The reliability machinery costs no latency: the ticket reaches the helpdesk within
``failure_threshold x interval + 1 s`` of the first failed check, and the page with it."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.helpers import AgentProcess, FakeProcess, free_port, http_get

pytestmark = pytest.mark.slow

FD_KEY = "latency-fd-key"
PD_KEY = "abcdefabcdefabcdefabcdefabcdef12"
INTERVAL = 0.5
THRESHOLD = 3


@pytest.fixture
def stand_ins() -> Iterator[tuple[FakeProcess, FakeProcess]]:
    freshdesk = FakeProcess("freshdesk", "--api-key", FD_KEY)
    pagerduty = FakeProcess("pagerduty", "--routing-key", PD_KEY)
    yield freshdesk, pagerduty
    freshdesk.stop()
    pagerduty.stop()


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
    config = write_config(f"""
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

[ticketing]
backend = "freshdesk"

[ticketing.freshdesk]
url = "{freshdesk.url}"
api_key_env = "WD_LAT_FD_KEY"
requester_email = "monitoring@acme.example"

[pagers.oncall]
type = "pagerduty"
routing_key_env = "WD_LAT_PD_KEY"
url = "{pagerduty.url}/v2/enqueue"

[escalation]
page_on_open = ["oncall"]
""")
    agent = AgentProcess(config, port, env={"WD_LAT_FD_KEY": FD_KEY, "WD_LAT_PD_KEY": PD_KEY})
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
