"""Acknowledge and mute from watchdesk: the CLI talks to a real running agent over its API with
the bearer token; every act lands on the ticket as a note; a muted target opens nothing."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.agent_harness import Harness
from tests.helpers import AgentProcess, free_port, http_get, run_cli

TOKEN = "desk-test-token-123"


def config_text(
    port: int, state: Path, down_port: int, up_port: int, host: str = "127.0.0.1"
) -> str:
    return f"""
[agent]
listen = "{host}:{port}"
state_dir = "{state}"
api_token_env = "WD_DESK_TOKEN"

[defaults]
interval = "200ms"
timeout = "150ms"
failure_threshold = 2

[[targets]]
name = "api"
kind = "tcp"
host = "127.0.0.1"
port = {down_port}

[[targets]]
name = "db"
kind = "tcp"
host = "127.0.0.1"
port = {up_port}
"""


@pytest.mark.slow
def test_ack_mute_and_unmute_from_the_command_line(
    write_config: Callable[..., Path], tmp_path: Path, agents: list[AgentProcess]
) -> None:
    up = socket.socket()
    up.bind(("127.0.0.1", 0))
    up.listen(64)
    port = free_port()
    config = write_config(config_text(port, tmp_path / "state", free_port(), up.getsockname()[1]))
    env = {"WD_DESK_TOKEN": TOKEN}
    try:
        agent = AgentProcess(config, port, env=env)
        agents.append(agent)
        agent.wait_ready()
        auth = {"Authorization": f"Bearer {TOKEN}"}
        deadline = time.monotonic() + 15
        incidents: list[dict[str, object]] = []
        while not incidents and time.monotonic() < deadline:
            incidents = json.loads(http_get(agent.base + "/api/incidents", headers=auth)[1])
            time.sleep(0.1)
        (incident,) = incidents

        acked = run_cli("ack", str(incident["id"]), "--by", "alice", "-c", str(config), env=env)
        assert acked.returncode == 0, acked.stderr
        assert json.loads(acked.stdout)["worked_at"] is not None
        muted = run_cli(
            "mute", "db", "--for", "2h", "--reason", "disk swap", "--by", "bob",
            "-c", str(config), env=env,
        )  # fmt: skip
        assert muted.returncode == 0, muted.stderr
        mutes = json.loads(http_get(agent.base + "/api/mutes", headers=auth)[1])
        assert mutes["db"]["reason"] == "disk swap"
        assert mutes["db"]["by"] == "bob"
        up.close()  # db goes down while muted: no incident
        time.sleep(1.5)
        assert len(json.loads(http_get(agent.base + "/api/incidents", headers=auth)[1])) == 1

        refused = run_cli(
            "ack", str(incident["id"]), "-c", str(config), env={"WD_DESK_TOKEN": "wrong"}
        )
        assert refused.returncode == 1
        assert "refused (401)" in refused.stderr
        unmuted = run_cli("unmute", "db", "--by", "bob", "-c", str(config), env=env)
        assert unmuted.returncode == 0, unmuted.stderr
        assert json.loads(unmuted.stdout)["was_muted"] is True
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            rows = json.loads(http_get(agent.base + "/api/incidents", headers=auth)[1])
            if len(rows) == 2:
                break
            time.sleep(0.1)
        assert len(rows) == 2  # unmuted and still down: its incident opens now
        tickets = run_cli("tickets", "--json", "-c", str(config))
        (api_row,) = [r for r in json.loads(tickets.stdout) if r["target"] == "api"]
        assert api_row["worked_at"] is not None
    finally:
        up.close()
    assert "acknowledged by alice" in agent.log()
    assert "db muted by bob for 2h: disk swap" in agent.log()


def test_the_cli_says_when_the_agent_is_not_running(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    config = write_config(config_text(free_port(), tmp_path / "state", free_port(), free_port()))
    result = run_cli("mute", "db", "--for", "1h", "--reason", "x", "-c", str(config),
                     env={"WD_DESK_TOKEN": TOKEN})  # fmt: skip
    assert result.returncode == 1
    assert "cannot reach the agent" in result.stderr
    assert "Traceback" not in result.stderr


async def test_no_ack_or_mute_on_an_open_address_without_a_token(tmp_path: Path) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    from monitor.web.server import make_app

    text = config_text(9, tmp_path / "state", 9, 9, host="0.0.0.0")
    text = text.replace('api_token_env = "WD_DESK_TOKEN"\n', "").replace(
        f'state_dir = "{tmp_path / "state"}"\n', ""
    )
    h = await Harness.create(tmp_path / "state", text)
    try:
        async with TestClient(TestServer(make_app(h.agent))) as client:
            answer = await client.post("/api/targets/db/mute?for=1h&reason=x")
            assert answer.status == 403
            assert "api_token" in await answer.text()
            assert (await client.get("/api/mutes")).status == 200  # reading stays open
    finally:
        await h.close()


async def test_a_muted_target_opens_no_incident_until_the_mute_ends(tmp_path: Path) -> None:
    text = config_text(9, tmp_path / "state", 9, 9).split("[defaults]", 1)[1]
    h = await Harness.create(tmp_path / "state", "[defaults]" + text)
    try:
        await h.agent.desk.mute("db", 3600, "planned work", "carol")
        await h.fail("db", 5)
        await h.sweep()
        assert await h.incidents() == []
        h.clock.advance(3600)
        await h.fail("db")
        await h.sweep()
        (incident,) = await h.incidents()
        assert incident.target == "db"
    finally:
        await h.close()


WEBHOOK_SECRET = "pd-webhook-signing-secret"


def pd_event(event_type: str, key: str) -> bytes:
    """A PagerDuty v3 webhook as the developer docs show it (trimmed to what we read)."""
    return json.dumps(
        {
            "event": {
                "id": "5ac64822-4adc-4fda-ade0-410becf0de4f",
                "event_type": event_type,
                "resource_type": "incident",
                "occurred_at": "2026-11-24T10:05:00.000Z",
                "agent": {"id": "PLH1HKV", "summary": "Tenex Engineer", "type": "user_reference"},
                "data": {"id": "PGR0VU2", "type": "incident", "incident_key": key},
            }
        }
    ).encode()


def signature(body: bytes, secret: str = WEBHOOK_SECRET) -> str:
    import hashlib
    import hmac

    return "v1=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


async def test_a_pagerduty_acknowledgement_counts_as_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    from monitor.web.server import make_app

    monkeypatch.setenv("WD_PD_KEY", "0123456789abcdef0123456789abcdef")
    monkeypatch.setenv("WD_PD_WEBHOOK", WEBHOOK_SECRET)
    text = config_text(9, tmp_path / "state", 9, 9).split("[defaults]", 1)[1]
    text = (
        "[defaults]"
        + text
        + (
            '\n[pagers.oncall]\ntype = "pagerduty"\nrouting_key_env = "WD_PD_KEY"\n'
            'url = "http://127.0.0.1:9/v2/enqueue"\nwebhook_secret_env = "WD_PD_WEBHOOK"\n'
            '[escalation]\npage_on_open = ["oncall"]\n'
        )
    )
    h = await Harness.create(tmp_path / "state", text)
    try:
        await h.fail("api", 2)
        (incident,) = await h.incidents()
        async with TestClient(TestServer(make_app(h.agent))) as client:
            body = pd_event("incident.acknowledged", incident.dedup_key)
            forged = await client.post(
                "/api/webhooks/pagerduty",
                data=body,
                headers={"X-PagerDuty-Signature": signature(body, "not-the-secret")},
            )
            assert forged.status == 401
            assert (await h.incidents())[0].worked_at is None
            other = pd_event("incident.acknowledged", "someone-elses-key")
            ignored = await client.post(
                "/api/webhooks/pagerduty",
                data=other,
                headers={"X-PagerDuty-Signature": signature(other)},
            )
            assert (await ignored.json()) == {"acknowledged": None}
            # A rotation sends two signatures; one good one is enough.
            both = f"{signature(body, 'old-secret')},{signature(body)}"
            answer = await client.post(
                "/api/webhooks/pagerduty", data=body, headers={"X-PagerDuty-Signature": both}
            )
            assert answer.status == 202
            assert (await answer.json()) == {"acknowledged": incident.id}
        (acked,) = await h.incidents()
        assert acked.worked_at is not None
        await h.deliver()
        notes = h.notes(h.tickets()[0]["id"])
        assert any("Acknowledged by Tenex Engineer in PagerDuty" in note for note in notes)
    finally:
        await h.close()


async def test_a_person_resolves_an_incident_and_the_requester_hears_who(tmp_path: Path) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    from monitor.web.server import make_app

    text = config_text(9, tmp_path / "state", 9, 9).split("[defaults]", 1)[1]
    h = await Harness.create(tmp_path / "state", "[defaults]" + text)
    try:
        await h.fail("api", 2)
        (incident,) = await h.incidents()
        async with TestClient(TestServer(make_app(h.agent))) as client:
            answer = await client.post(
                f"/api/incidents/{incident.id}/resolve?by=dave&note=rebooted the switch"
            )
            assert answer.status == 200
            assert (await answer.json())["status"] == "resolved"
            again = await client.post(f"/api/incidents/{incident.id}/resolve?by=dave")
            assert again.status == 404
        await h.deliver()
        (ticket,) = h.tickets()
        assert ticket["status"] == "pending"
        (note,) = h.notes(ticket["id"])
        assert "How it was resolved: resolved by dave: rebooted the switch" in note
        # Still failing: the down it covered opens no second incident ...
        await h.fail("api", 3)
        await h.sweep()
        assert len(await h.incidents()) == 1
        # ... until the target recovers and fails again: a new outage, a new incident.
        await h.succeed("api", 3)
        await h.fail("api", 2)
        assert len(await h.incidents()) == 2
    finally:
        await h.close()
