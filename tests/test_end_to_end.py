"""The whole support policy with real short durations: a real agent process, a Freshdesk
stand-in, a PagerDuty stand-in and a real SMTP server (STARTTLS, login), all on 127.0.0.1."""

from __future__ import annotations

import email
import email.policy
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.helpers import AgentProcess, FakeProcess, free_port

pytestmark = pytest.mark.slow

FD_KEY = "e2e-freshdesk-key"
PD_KEY = "fedcba9876543210fedcba9876543210"
SMTP_PASSWORD = "e2e-smtp-password"


@pytest.fixture
def stand_ins(tmp_path: Path) -> Iterator[tuple[FakeProcess, FakeProcess, FakeProcess, Path]]:
    spool = tmp_path / "spool"
    spool.mkdir()
    ca = tmp_path / "smtp-ca.pem"
    freshdesk = FakeProcess("freshdesk", "--api-key", FD_KEY)
    pagerduty = FakeProcess("pagerduty", "--routing-key", PD_KEY)
    smtp = FakeProcess(
        "smtp",
        "--user",
        "watchdesk",
        "--password",
        SMTP_PASSWORD,
        "--ca-out",
        str(ca),
        "--spool",
        str(spool),
    )
    yield freshdesk, pagerduty, smtp, spool
    for fake in (freshdesk, pagerduty, smtp):
        fake.stop()


def mails(spool: Path) -> list[email.message.EmailMessage]:
    return [
        email.message_from_bytes(path.read_bytes(), policy=email.policy.default)  # type: ignore[misc]
        for path in sorted(spool.glob("*.eml"))
    ]


def test_open_page_update_escalate_recover(
    write_config: Callable[..., Path],
    tmp_path: Path,
    agents: list[AgentProcess],
    stand_ins: tuple[FakeProcess, FakeProcess, FakeProcess, Path],
) -> None:
    freshdesk, pagerduty, smtp, spool = stand_ins
    service_port = free_port()
    port = free_port()
    config = write_config(f"""
[agent]
listen = "127.0.0.1:{port}"
state_dir = "{tmp_path / "state"}"

[defaults]
interval = "200ms"
timeout = "150ms"
failure_threshold = 2
recovery_threshold = 1

[[targets]]
name = "api"
kind = "tcp"
host = "127.0.0.1"
port = {service_port}
customer = "acme"

[customers.acme]
email = "it@acme.example"

[ticketing]
backend = "freshdesk"
request_timeout = "2s"

[ticketing.freshdesk]
url = "{freshdesk.url}"
api_key_env = "E2E_FD_KEY"
requester_email = "monitoring@acme.example"

[pagers.oncall]
type = "pagerduty"
routing_key_env = "E2E_PD_KEY"
url = "{pagerduty.url}/v2/enqueue"

[pagers.ops_manager]
type = "email"
to = ["ops-manager@example.com"]
from_address = "watchdesk@example.com"
smtp_host = "127.0.0.1"
smtp_port = {smtp.port}
username = "watchdesk"
password_env = "E2E_SMTP_PASSWORD"
ca_file = "{tmp_path / "smtp-ca.pem"}"

[escalation]
page_on_open = ["oncall"]
ack_timeout = "3s"
page_on_escalation = ["ops_manager"]
status_update_interval = "2s"
poll_interval = "1s"
""")
    env = {"E2E_FD_KEY": FD_KEY, "E2E_PD_KEY": PD_KEY, "E2E_SMTP_PASSWORD": SMTP_PASSWORD}
    agent = AgentProcess(config, port, env=env)
    agents.append(agent)
    agent.wait_ready()

    # Down: one ticket and one page.
    state = freshdesk.wait_for(lambda s: len(s["tickets"]) == 1, "the ticket")
    ticket = state["tickets"][0]
    assert ticket["subject"] == "[URGENT] api is down"
    assert ticket["priority"] == 4
    alerts = pagerduty.wait_for(lambda s: len(s["alerts"]) == 1, "the page")["alerts"]
    (alert,) = alerts.values()
    assert alert["severity"] == "critical"
    opened = time.monotonic()

    # Nobody takes it: a customer update every 2 s, and the escalation mail after 3 s.
    notes_of = str(ticket["id"])
    freshdesk.wait_for(
        lambda s: any(
            n["body"].startswith("Escalated") and n["private"] for n in s["notes"].get(notes_of, [])
        ),
        "the escalation note",
    )
    escalated = time.monotonic() - opened
    assert 2.5 <= escalated <= 8, escalated
    deadline = time.monotonic() + 10
    while not mails(spool) and time.monotonic() < deadline:
        time.sleep(0.05)
    (mail,) = mails(spool)
    assert mail["Subject"] == "[URGENT] api is still down and nobody has picked it up"
    assert mail["To"] == "ops-manager@example.com"
    state = freshdesk.state()
    updates = [n for n in state["notes"][notes_of] if "it is still down" in n["body"]]
    assert updates
    assert all(n["private"] is False for n in updates)

    # The service comes back: recovery note, ticket pending, page resolved, no more updates.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", service_port))
        listener.listen(64)
        state = freshdesk.wait_for(
            lambda s: s["tickets"][0]["status"] == 3, "the ticket to go pending"
        )
        recovered = [n for n in state["notes"][notes_of] if "has recovered" in n["body"]]
        assert len(recovered) == 1
        pagerduty.wait_for(
            lambda s: next(iter(s["alerts"].values()))["status"] == "resolved", "the resolve"
        )
        count = len(state["notes"][notes_of])
        time.sleep(3)
        assert len(freshdesk.state()["notes"][notes_of]) == count
    assert len(freshdesk.state()["tickets"]) == 1
    assert len(pagerduty.state()["alerts"]) == 1
    assert any(m["Subject"].startswith("[RESOLVED]") for m in mails(spool))
    assert agent.stop() == 0
    log = agent.log()
    for secret in (FD_KEY, PD_KEY, SMTP_PASSWORD):
        assert secret not in log
