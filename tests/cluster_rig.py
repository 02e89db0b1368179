"""A cluster of real agent processes for the tests: one config for all (a PostgreSQL database of
the test's own, the Freshdesk and PagerDuty stand-ins, short lease timings), TCP services the
test opens and closes to make targets go down and come back, and the questions a test asks
the agents (``/api/cluster``, ``/api/status``, ``/metrics``) and the database."""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

from tests.helpers import (
    STAND_IN_ENV,
    AgentProcess,
    FakeProcess,
    free_port,
    freshdesk_toml,
    http_get,
    pagerduty_toml,
    run_cli,
)

INTERVAL = 0.3
THRESHOLD = 3
TTL = 3.0
RENEW = 1.0


class Service:
    """A TCP service on a fixed port that a test stops and starts again (connections are
    accepted and closed at once: a TCP check's success)."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self._sock: socket.socket | None = None
        self.start()

    def start(self) -> None:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(256)
        self._sock = sock
        threading.Thread(target=self._accept, args=(sock,), daemon=True).start()

    def _accept(self, sock: socket.socket) -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            conn.close()

    def stop(self) -> None:
        """Stop listening: connections are refused from now on."""
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread
            self._sock.close()
            self._sock = None


def wait_until(predicate: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class Rig:
    def __init__(
        self,
        tmp: Path,
        url: str,
        stand_ins: tuple[FakeProcess, FakeProcess],
        *,
        slots: int = 8,
        up: int = 3,
        db_lost_page_after: str = "2m",
    ) -> None:
        self.tmp = tmp
        self.url = url
        self.freshdesk, self.pagerduty = stand_ins
        self.api = Service()  # the target the tests take down
        self.web = Service()  # the targets that stay up
        self.slots = slots
        self.names = ["api", *(f"web{i}" for i in range(1, up + 1))]
        self.db_lost_page_after = db_lost_page_after
        self.agents: list[AgentProcess] = []

    def env(self, **extra: str) -> dict[str, str]:
        return {**STAND_IN_ENV, "WD_TEST_DATABASE_URL": self.url, **extra}

    def config(self, port: int) -> Path:
        targets = "".join(
            f'\n[[targets]]\nname = "{name}"\nkind = "tcp"\nhost = "127.0.0.1"\n'
            f'port = {self.api.port if name == "api" else self.web.port}\ncustomer = "acme"\n'
            for name in self.names
        )
        text = f"""
[agent]
listen = "127.0.0.1:{port}"
state_dir = "{self.tmp / f"state-{port}"}"

[defaults]
interval = "{int(INTERVAL * 1000)}ms"
timeout = "200ms"
failure_threshold = {THRESHOLD}
recovery_threshold = 2
{targets}
[customers.acme]
email = "it@acme.example"
{freshdesk_toml(self.freshdesk.url, request_timeout="1s", extra='search_lag = "1s"')}
{pagerduty_toml(self.pagerduty.url)}
[escalation]
page_on_open = ["oncall"]
page_on_escalation = []
ack_timeout = "1h"
status_update_interval = "1h"

[cluster]
database_url_env = "WD_TEST_DATABASE_URL"
vantage = "east"
slots = {self.slots}
lease_ttl = "{TTL:g}s"
lease_renew = "{RENEW:g}s"
claim_ttl = "2s"
db_lost_page_after = "{self.db_lost_page_after}"
"""
        path = self.tmp / f"agent-{port}.toml"
        path.write_text(text)
        return path

    def start(self, wait: bool = True, **env: str) -> AgentProcess:
        port = free_port()
        agent = AgentProcess(self.config(port), port, env=self.env(**env))
        self.agents.append(agent)
        if wait:
            agent.wait_ready()
        return agent

    def stop_all(self) -> None:
        """Stop every agent the test started (each, whatever happens to another)."""
        for agent in self.agents:
            if agent.proc.poll() is None:
                agent.signal(signal.SIGCONT)  # a test may leave one stopped
            with contextlib.suppress(subprocess.TimeoutExpired):  # stop() killed it then
                agent.stop()
        self.api.stop()
        self.web.stop()

    # ---- questions ------------------------------------------------------------------------

    @staticmethod
    def view(agent: AgentProcess) -> dict[str, Any]:
        code, body = http_get(agent.base + "/api/cluster")
        assert code == 200, body
        return dict(json.loads(body))

    @staticmethod
    def probed(agent: AgentProcess) -> dict[str, Any]:
        """What the agent's /api/status lists: the targets it probes."""
        return agent.status()

    def owner_of(self, target: str, among: list[AgentProcess]) -> AgentProcess:
        def find() -> AgentProcess | None:
            for agent in among:
                if agent.proc.poll() is None and target in self.probed(agent):
                    return agent
            return None

        found: AgentProcess = wait_until(find, f"the agent probing {target}")
        return found

    @staticmethod
    def metric(agent: AgentProcess, name: str, **labels: str) -> float:
        """The sum of a metric's samples matching ``labels`` on the agent's /metrics."""
        _, body = http_get(agent.base + "/metrics")
        total = 0.0
        for line in body.decode().splitlines():
            if not line.startswith(name):
                continue
            head, _, value = line.rpartition(" ")
            metric, _, rest = head.partition("{")
            if metric != name:
                continue
            if all(f'{key}="{val}"' in rest for key, val in labels.items()):
                total += float(value)
        return total

    def rows(self, query: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.url, autocommit=True) as conn:
            return conn.execute(query, params).fetchall()

    def incidents(self) -> list[dict[str, Any]]:
        any_config = self.tmp / "reader.toml"
        any_config.write_text(self.config(free_port()).read_text())
        listed = run_cli("tickets", "--all", "--json", "-c", str(any_config), env=self.env())
        assert listed.returncode == 0, listed.stderr
        return list(json.loads(listed.stdout))

    def creates(self) -> int:
        return sum(r["route"] == "create" for r in self.freshdesk.state()["requests"])

    def triggers(self, key: str | None = None) -> int:
        return sum(
            e["event_action"] == "trigger" and (key is None or e.get("dedup_key") == key)
            for e in self.pagerduty.state()["events"]
        )
