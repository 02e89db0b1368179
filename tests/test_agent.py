"""The agent as a user runs it: a real process, real signals, its real HTTP endpoints."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.helpers import AgentProcess, closed_port, free_port, http_get, run_cli

pytestmark = pytest.mark.slow


class _Ok(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"all systems OK"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def web_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def agent_config(port: int, state_dir: Path, targets: str, agent_extra: str = "") -> str:
    return (
        f'[agent]\nlisten = "127.0.0.1:{port}"\nstate_dir = "{state_dir}"\n{agent_extra}\n'
        '[defaults]\ninterval = "300ms"\ntimeout = "200ms"\nfailure_threshold = 3\n'
        "recovery_threshold = 2\n\n" + targets
    )


def tcp_target(name: str, port: int, extra: str = "") -> str:
    return (
        f'[[targets]]\nname = "{name}"\nkind = "tcp"\nhost = "127.0.0.1"\nport = {port}\n{extra}\n'
    )


def http_target(name: str, url: str) -> str:
    return f'[[targets]]\nname = "{name}"\nkind = "http"\nurl = "{url}"\ncontains = "OK"\n'


def start(agents: list[AgentProcess], config: Path, port: int, **kwargs: object) -> AgentProcess:
    agent = AgentProcess(config, port, **kwargs)  # type: ignore[arg-type]
    agents.append(agent)
    agent.wait_ready()
    return agent


def test_sigterm_stops_cleanly_within_5_seconds(
    write_config: Callable[..., Path], tmp_path: Path, agents: list[AgentProcess], web_server: str
) -> None:
    port = free_port()
    config = write_config(agent_config(port, tmp_path / "state", http_target("web", web_server)))
    agent = start(agents, config, port)
    agent.wait_for(lambda s: s["web"]["state"] == "up", what="web up")
    begun = time.monotonic()
    agent.signal(signal.SIGTERM)
    assert agent.proc.wait(timeout=10) == 0
    assert time.monotonic() - begun < 5
    assert "Traceback" not in agent.log()


def test_a_failing_target_goes_down_and_is_logged_once(
    write_config: Callable[..., Path], tmp_path: Path, agents: list[AgentProcess], web_server: str
) -> None:
    port = free_port()
    dead = closed_port()
    config = write_config(
        agent_config(
            port, tmp_path / "state", http_target("web", web_server) + tcp_target("db", dead)
        )
    )
    agent = start(agents, config, port, extra=("--log-format", "json"))
    status = agent.wait_for(lambda s: s["db"]["state"] == "down", what="db down")
    assert status["db"]["last_result"]["reason"] == "connection refused"
    assert status["web"]["state"] == "up"
    time.sleep(1.0)  # more failed probes: still one transition line
    lines = [json.loads(line) for line in agent.log().splitlines() if line.startswith("{")]
    downs = [
        line for line in lines if line.get("event") == "transition" and line.get("to") == "down"
    ]
    assert len(downs) == 1
    assert downs[0]["target"] == "db"
    assert downs[0]["reason"] == "connection refused"
    assert downs[0]["consecutive_failures"] == 3


def test_metrics_pass_promtool_and_follow_the_targets(
    write_config: Callable[..., Path], tmp_path: Path, agents: list[AgentProcess], web_server: str
) -> None:
    port = free_port()
    config = write_config(
        agent_config(
            port,
            tmp_path / "state",
            http_target("web", web_server)
            + tcp_target("db", closed_port(), 'customer = "acme"')
            + '[customers.acme]\nemail = "it@acme.example"\n',
        )
    )
    agent = start(agents, config, port)
    agent.wait_for(
        lambda s: s["db"]["state"] == "down" and s["web"]["state"] == "up", what="verdicts"
    )
    code, body = http_get(agent.base + "/metrics")
    assert code == 200
    text = body.decode()
    assert 'watchdesk_target_up{target="db"} 0.0' in text
    assert 'watchdesk_target_up{target="web"} 1.0' in text
    assert 'watchdesk_probe_success{kind="tcp",target="db"} 0.0' in text
    assert 'watchdesk_probes_total{kind="http",result="success",target="web"}' in text
    assert 'watchdesk_target_info{customer="acme",kind="tcp",target="db"} 1.0' in text
    assert "watchdesk_schedule_lateness_seconds_count" in text
    assert 'watchdesk_build_info{version="' in text
    failures = [
        line
        for line in text.splitlines()
        if line.startswith('watchdesk_consecutive_failures{target="db"}')
    ]
    assert float(failures[0].split()[-1]) >= 3
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian package prometheus; .ci/run installs it)")
    checked = subprocess.run(
        [promtool, "check", "metrics"], input=body, capture_output=True, timeout=30
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_restart_keeps_the_failure_count(
    write_config: Callable[..., Path], tmp_path: Path, agents: list[AgentProcess]
) -> None:
    port = free_port()
    config = write_config(
        agent_config(
            port,
            tmp_path / "state",
            tcp_target("db", closed_port(), 'interval = "2s"\ntimeout = "1s"'),
        )
    )
    agent = start(agents, config, port)
    before = agent.wait_for(
        lambda s: s["db"]["consecutive_failures"] == 2, timeout=20, what="2 failures"
    )
    assert agent.stop() == 0
    assert before["db"]["state"] == "unknown"

    again = start(agents, config, port)
    restored = again.status()["db"]
    if restored["last_result"]["checked_at"] == before["db"]["last_result"]["checked_at"]:
        # No probe since the restart yet: the count came back from the store.
        assert restored["consecutive_failures"] == 2
    down = again.wait_for(lambda s: s["db"]["state"] == "down", timeout=20, what="db down")
    # One more failure after the restart was enough: 2 remembered + 1 = the threshold of 3.
    assert down["db"]["consecutive_failures"] == 3


def test_sighup_applies_a_valid_config_and_keeps_state(
    write_config: Callable[..., Path], tmp_path: Path, agents: list[AgentProcess], web_server: str
) -> None:
    port = free_port()
    state = tmp_path / "state"
    dead = closed_port()
    config = write_config(agent_config(port, state, tcp_target("db", dead)))
    agent = start(agents, config, port)
    agent.wait_for(lambda s: s["db"]["state"] == "down", what="db down")
    config.write_text(
        agent_config(port, state, tcp_target("db", dead) + http_target("web", web_server))
    )
    agent.signal(signal.SIGHUP)
    status = agent.wait_for(lambda s: "web" in s and s["web"]["state"] == "up", what="web added")
    assert status["db"]["state"] == "down"  # not reset to unknown by the reload
    assert status["db"]["consecutive_failures"] >= 3
    assert agent.proc.poll() is None


def test_sighup_with_a_broken_config_keeps_the_running_one(
    write_config: Callable[..., Path], tmp_path: Path, agents: list[AgentProcess], web_server: str
) -> None:
    port = free_port()
    config = write_config(agent_config(port, tmp_path / "state", http_target("web", web_server)))
    agent = start(agents, config, port)
    agent.wait_for(lambda s: s["web"]["state"] == "up", what="web up")
    config.write_text('[agent]\nlisten = "nowhere"\n[[targets]]\nname = "x"\n')
    agent.signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while "config reload refused" not in agent.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    log = agent.log()
    assert "agent.listen:" in log
    assert "the running config stays in force" in log
    assert agent.proc.poll() is None
    checks_before = agent.status()["web"]["last_result"]["checked_at"]
    agent.wait_for(
        lambda s: s["web"]["last_result"]["checked_at"] > checks_before, what="probes go on"
    )
    _, metrics = http_get(agent.base + "/metrics")
    assert "watchdesk_config_last_reload_successful 0.0" in metrics.decode()


def test_health_readiness_and_the_api_token(
    write_config: Callable[..., Path], tmp_path: Path, agents: list[AgentProcess], web_server: str
) -> None:
    port = free_port()
    token = "s3cr3t-t0ken-value"
    config = write_config(
        agent_config(
            port,
            tmp_path / "state",
            http_target("web", web_server),
            'api_token_env = "WD_TEST_TOKEN"',
        )
    )
    agent = start(agents, config, port, env={"WD_TEST_TOKEN": token})
    assert http_get(agent.base + "/healthz")[0] == 200
    assert http_get(agent.base + "/readyz")[0] == 200
    code, body = http_get(agent.base + "/api/status")
    assert code == 401
    assert token not in body.decode()
    code, _ = http_get(agent.base + "/api/status", headers={"Authorization": "Bearer wrong"})
    assert code == 401
    code, body = http_get(agent.base + "/api/status", headers={"Authorization": f"Bearer {token}"})
    assert code == 200
    assert json.loads(body)[0]["target"] == "web"
    _, metrics = http_get(agent.base + "/metrics")
    assert token not in metrics.decode()
    agent.stop()
    assert token not in agent.log()


def test_a_missing_token_variable_is_refused_at_start(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    config = write_config(
        agent_config(free_port(), tmp_path / "state", "", 'api_token_env = "WD_UNSET_TOKEN_VAR"')
    )
    result = run_cli("run", "-c", str(config), timeout=20)
    assert result.returncode == 2
    assert "WD_UNSET_TOKEN_VAR is not set" in result.stderr
    assert "Traceback" not in result.stderr


def test_probe_once_table_json_and_exit_codes(
    write_config: Callable[..., Path], tmp_path: Path, web_server: str
) -> None:
    dead = closed_port()
    config = write_config(
        agent_config(
            free_port(), tmp_path / "state", http_target("web", web_server) + tcp_target("db", dead)
        )
    )
    result = run_cli("probe-once", "-c", str(config), "--json")
    assert result.returncode == 1
    rows = {row["target"]: row for row in json.loads(result.stdout)}
    assert rows["web"] == {**rows["web"], "kind": "http", "ok": True}
    assert rows["db"]["ok"] is False
    assert rows["db"]["reason"] == "connection refused"
    assert set(rows["db"]) == {"target", "kind", "ok", "duration_seconds", "reason"}

    only_web = run_cli("probe-once", "-c", str(config), "--target", "web")
    assert only_web.returncode == 0
    header, line = only_web.stdout.splitlines()
    assert header.split() == ["TARGET", "KIND", "RESULT", "DURATION", "REASON"]
    assert line.split()[:3] == ["web", "http", "ok"]

    unknown = run_cli("probe-once", "-c", str(config), "--target", "nope")
    assert unknown.returncode == 2
    assert 'no target named "nope"' in unknown.stderr


def test_a_listen_address_in_use_is_a_clear_error(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        config = write_config(agent_config(port, tmp_path / "state", ""))
        result = run_cli("run", "-c", str(config), timeout=20)
    assert result.returncode == 2
    assert f"agent.listen: cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_outage_shows_in_api_incidents_and_watchdesk_tickets(
    write_config: Callable[..., Path], tmp_path: Path, agents: list[AgentProcess]
) -> None:
    port = free_port()
    config = write_config(
        agent_config(
            port,
            tmp_path / "state",
            tcp_target("db", closed_port(), 'customer = "acme"')
            + '[customers.acme]\nemail = "it@acme.example"\n',
        )
    )
    agent = start(agents, config, port)
    agent.wait_for(lambda s: s["db"]["state"] == "down", what="db down")
    deadline = time.monotonic() + 10
    incidents: list[dict[str, object]] = []
    while time.monotonic() < deadline:
        incidents = json.loads(http_get(agent.base + "/api/incidents")[1])
        if incidents and incidents[0]["ticket_id"]:
            break
        time.sleep(0.05)
    (incident,) = incidents
    assert incident["target"] == "db"
    assert incident["status"] == "open"
    assert incident["outbox"] == "delivered"

    listed = run_cli("tickets", "-c", str(config), "--json")
    assert listed.returncode == 0
    (row,) = json.loads(listed.stdout)
    assert row["ticket_id"] == incident["ticket_id"]
    table = run_cli("tickets", "-c", str(config))
    assert "local#" in table.stdout
    assert "connection refused" in table.stdout
