"""SIGKILL at the worst moments, then a restart: no incident lost, no duplicate ticket, and the
notes still go out. The agent and a Freshdesk stand-in run as real processes."""

from __future__ import annotations

import json
import signal
import socket
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import (
    FD_KEY,
    STAND_IN_ENV,
    AgentProcess,
    FakeProcess,
    api_agent_toml,
    free_port,
    freshdesk_toml,
)

pytestmark = pytest.mark.slow


@pytest.fixture
def freshdesk() -> Iterator[FakeProcess]:
    fake = FakeProcess("freshdesk", "--api-key", FD_KEY)
    yield fake
    fake.stop()


def config_text(agent_port: int, state: Path, fd_url: str, service_port: int) -> str:
    return api_agent_toml(agent_port, state, service_port) + freshdesk_toml(fd_url)


def kill(agent: AgentProcess) -> None:
    agent.proc.send_signal(signal.SIGKILL)
    agent.proc.wait(timeout=5)


def test_sigkill_during_a_create_and_during_a_note(
    write_config: Callable[..., Path],
    tmp_path: Path,
    agents: list[AgentProcess],
    freshdesk: FakeProcess,
) -> None:
    service_port = free_port()  # nothing listens: the target is down
    port = free_port()
    config = write_config(config_text(port, tmp_path / "state", freshdesk.url, service_port))
    env = STAND_IN_ENV

    # 1. Killed while the create is in flight: Freshdesk stored the ticket, no answer yet.
    freshdesk.fail_next("create", "timeout")
    first = AgentProcess(config, port, env=env)
    agents.append(first)
    first.wait_ready()
    freshdesk.wait_for(lambda s: len(s["tickets"]) == 1, "the ticket to be created")
    kill(first)

    second = AgentProcess(config, port, env=env)
    agents.append(second)
    second.wait_ready()
    deadline = time.monotonic() + 20
    incidents: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        incidents = json.loads(urllib.request.urlopen(second.base + "/api/incidents").read())
        if incidents and incidents[0]["ticket_id"]:
            break
        time.sleep(0.1)
    (incident,) = incidents
    (ticket,) = freshdesk.state()["tickets"]
    assert incident["ticket_id"] == str(ticket["id"])
    assert ticket["subject"] == "[URGENT] api is down"

    # 2. The service comes back; killed while the recovery note is in flight.
    freshdesk.fail_next("note", "timeout")
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", service_port))
        listener.listen(64)
        freshdesk.wait_for(lambda s: bool(s["notes"]), "the recovery note to arrive")
        kill(second)
        third = AgentProcess(config, port, env=env)
        agents.append(third)
        third.wait_ready()
        state = freshdesk.wait_for(
            lambda s: s["tickets"][0]["status"] == 3, "the ticket to be set pending after the note"
        )
    assert len(state["tickets"]) == 1
    notes = state["notes"][str(ticket["id"])]
    assert notes
    assert all("api has recovered" in note["body"] for note in notes)
    creates = [r for r in state["requests"] if r["route"] == "create"]
    assert len(creates) == 1
