"""Kill the agent at every named point of the incident path (``monitor.faults``), restart it,
and count what the stand-ins received: one ticket, one PagerDuty alert, one resolve, a recovery
note and the pending status, every time.

Where a service cannot tell us whether a request it answered was recorded (an answer lost to
the crash), the request goes again: PagerDuty de-duplicates the trigger by its key, a status
change is idempotent, and a note marked as sent is looked for on the ticket before it goes
again (Freshdesk lists a ticket's conversations). The counts below say exactly where a second
request is allowed.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from monitor.faults import ENV, POINTS
from tests.helpers import (
    STAND_IN_ENV,
    AgentProcess,
    FakeProcess,
    api_agent_toml,
    free_port,
    freshdesk_toml,
    pagerduty_toml,
)

pytestmark = pytest.mark.slow

# Points reached on the way down (open path) and on the way back up (recovery path).
RECOVERY_POINTS = {
    "after_recovery_committed",
    "after_note_sent",
    "after_status_sent",
    "after_resolve_sent",
}
# Where the crash loses an answer that was already acted upon, so the request goes again.
SENT_TWICE = {"after_page_sent": "trigger", "after_resolve_sent": "resolve"}


def config_text(port: int, state: Path, fd: str, pd: str, service_port: int) -> str:
    return (
        api_agent_toml(port, state, service_port, recovery_threshold=2)
        + freshdesk_toml(fd, request_timeout="1s", extra='search_lag = "1s"')
        + pagerduty_toml(pd)
        + """
[escalation]
page_on_open = ["oncall"]
page_on_escalation = []
ack_timeout = "1h"
status_update_interval = "1h"
"""
    )


def wait_until(predicate: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def finished(freshdesk: FakeProcess, pagerduty: FakeProcess) -> bool:
    fd, pd = freshdesk.state(), pagerduty.state()
    return (
        bool(fd["tickets"])
        and all(t["status"] == 3 for t in fd["tickets"])
        and bool(pd["alerts"])
        and all(a["status"] == "resolved" for a in pd["alerts"].values())
    )


@pytest.mark.parametrize("point", POINTS)
def test_a_crash_at_each_point_leaves_one_ticket_one_page_one_resolve(
    point: str,
    write_config: Callable[..., Path],
    tmp_path: Path,
    agents: list[AgentProcess],
    stand_ins: tuple[FakeProcess, FakeProcess],
) -> None:
    freshdesk, pagerduty = stand_ins
    service_port = free_port()  # nothing listens: the target is down
    port = free_port()
    config = write_config(
        config_text(port, tmp_path / "state", freshdesk.url, pagerduty.url, service_port)
    )
    env = STAND_IN_ENV
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        doomed = AgentProcess(config, port, env={**env, ENV: point})
        agents.append(doomed)
        if point in RECOVERY_POINTS:
            doomed.wait_ready()
            wait_until(
                lambda: freshdesk.state()["tickets"] and pagerduty.state()["alerts"],
                "the ticket and the page",
            )
            listener.bind(("127.0.0.1", service_port))
            listener.listen(64)
        code = doomed.proc.wait(timeout=30)
        assert code == -9, doomed.log()
        assert f"crash point {point} reached" in doomed.log()

        survivor = AgentProcess(config, port, env=env)
        agents.append(survivor)
        survivor.wait_ready()
        if point not in RECOVERY_POINTS:
            wait_until(
                lambda: freshdesk.state()["tickets"] and pagerduty.state()["alerts"],
                "the ticket and the page after the restart",
            )
            listener.bind(("127.0.0.1", service_port))
            listener.listen(64)
        wait_until(lambda: finished(freshdesk, pagerduty), "the recovery to reach both services")
        time.sleep(1.0)  # anything still queued would arrive now
    finally:
        listener.close()

    fd, pd = freshdesk.state(), pagerduty.state()
    (ticket,) = fd["tickets"]
    assert ticket["status"] == 3
    creates = [r for r in fd["requests"] if r["route"] == "create"]
    assert len(creates) == 1, point
    notes = fd["notes"][str(ticket["id"])]
    assert all("api has recovered" in note["body"] for note in notes)
    # Exactly one recovery note, also when the crash caught its answer (after_note_sent) or
    # caught it in flight beside the resolve: the ticket's conversations were looked at first.
    assert len(notes) == 1, point
    if point == "after_note_sent":
        listed = [r for r in fd["requests"] if r["route"] == "conversations"]
        assert listed, "the note's answer was lost: the conversations must have been read"
    assert len(pd["alerts"]) == 1
    assert pd["resolved_alerts"] == []  # no trigger after the resolve opened a second alert
    (key,) = pd["alerts"]
    assert ticket["tags"] == ["watchdesk", key]
    actions = [e["event_action"] for e in pd["events"]]
    # The page goes out beside the create, so a crash on the open path may also catch it in
    # flight: sent again, and de-duplicated by PagerDuty into the one alert above.
    triggers = actions.count("trigger")
    if SENT_TWICE.get(point) == "trigger":
        assert triggers == 2
    else:
        assert 1 <= triggers <= (1 if point in RECOVERY_POINTS else 2)
    resolves = actions.count("resolve")  # likewise beside the recovery note
    if SENT_TWICE.get(point) == "resolve":
        assert resolves == 2
    else:
        assert 1 <= resolves <= (2 if point in RECOVERY_POINTS else 1)
    last_trigger = len(actions) - 1 - actions[::-1].index("trigger")
    assert last_trigger < actions.index("resolve")
