"""Plays a chaos scenario against real processes and gathers the evidence the checker reads.

One agent process at a time (SIGKILLed and restarted on the same config and state dir), or with
``cluster`` several agents sharing one PostgreSQL database (each SIGKILLed in turn, as the
scenario's kills say, and restarted on its own config and state dir), a Freshdesk and a
PagerDuty stand-in process, and the flapper's targets in a thread of this process. Everything on
127.0.0.1.
"""

from __future__ import annotations

import re
import signal
import time
import urllib.error
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.chaos.cluster import ClusterTimings, watched
from tests.chaos.flapper import Flapper, pick_ports
from tests.chaos.scenario import HORIZON, Scenario
from tests.helpers import AgentProcess, FakeProcess, free_port, http_get

FD_KEY = "chaos-freshdesk-key"
PD_KEY = "c4a05c4a05c4a05c4a05c4a05c4a05c4"
INTERVAL = 0.2
FAILURE_THRESHOLD = 2
RECOVERY_THRESHOLD = 2
SETTLE_MIN = 5.0  # after the last toggle, wait at least this long
SETTLE_QUIET = 3.0  # ... and until the stand-ins saw no request for this long
SETTLE_MAX = 30.0
OUTBOX_PENDING = re.compile(r"^watchdesk_outbox_pending (\S+)$", re.MULTILINE)

URL_ENV = "WD_CHAOS_DATABASE_URL"

Log = Callable[[str], None]


@dataclass(frozen=True)
class ChaosCluster:
    """Several agents on the PostgreSQL database at ``url`` (migrated already)."""

    url: str
    agents: int = 2
    timings: ClusterTimings = field(default_factory=ClusterTimings)


def config_text(
    agent_port: int, state: Path, ports: dict[str, int], fd_url: str, pd_url: str
) -> str:
    targets = "".join(
        f"""
[[targets]]
name = "{name}"
kind = "tcp"
host = "127.0.0.1"
port = {port}
customer = "acme"
"""
        for name, port in ports.items()
    )
    return f"""
[agent]
listen = "127.0.0.1:{agent_port}"
state_dir = "{state}"
timezone = "UTC"

[defaults]
interval = "{int(INTERVAL * 1000)}ms"
timeout = "150ms"
failure_threshold = {FAILURE_THRESHOLD}
recovery_threshold = {RECOVERY_THRESHOLD}
{targets}
[customers.acme]
email = "it@acme.example"

[ticketing]
backend = "freshdesk"
request_timeout = "1s"
on_recovery = "pending"
# The stand-in's search shows a ticket at once (no index lag to wait out after a lost answer).
search_lag = "2s"

[ticketing.freshdesk]
url = "{fd_url}"
api_key_env = "WD_CHAOS_FD_KEY"
requester_email = "monitoring@acme.example"

[pagers.oncall]
type = "pagerduty"
routing_key_env = "WD_CHAOS_PD_KEY"
url = "{pd_url}/v2/enqueue"

[escalation]
page_on_open = ["oncall"]
ack_timeout = "1h"
status_update_interval = "1h"
poll_interval = "1h"
# Flapping would hold recoveries back for flap_stable_after: out of the way here.
flap_threshold = 100000

[storm]
# The checker holds every outage to its own incident: no grouping of the flapping targets.
threshold = 100000
"""


class ChaosRun:
    def __init__(
        self,
        scenario: Scenario,
        workdir: Path,
        log: Log = print,
        cluster: ChaosCluster | None = None,
    ) -> None:
        self.scenario = scenario
        self.workdir = workdir
        self.log = log
        self.cluster = cluster
        count = cluster.agents if cluster is not None else 1
        self.agents: list[AgentProcess] = []
        self.alive_by_agent: list[list[list[float]]] = [[] for _ in range(count)]
        self.kills: list[float] = []
        self.faults: list[dict[str, Any]] = []
        self.current: list[AgentProcess | None] = [None] * count
        self._ready_at = [0.0] * count
        self.outbox_pending: float | None = None

    @property
    def agent(self) -> AgentProcess | None:
        """The first agent (the only one without ``cluster``)."""
        return self.current[0]

    # --- the agents --------------------------------------------------------------------------

    def _write_configs(self, ports: dict[str, int], fd_url: str, pd_url: str) -> None:
        self.env = {"WD_CHAOS_FD_KEY": FD_KEY, "WD_CHAOS_PD_KEY": PD_KEY}
        self.configs: list[tuple[Path, int]] = []
        for index in range(len(self.current)):
            port = free_port()
            single = self.cluster is None
            path = self.workdir / ("chaos.toml" if single else f"chaos-{index}.toml")
            state = self.workdir / ("state" if single else f"state-{index}")
            text = config_text(port, state, ports, fd_url, pd_url)
            if self.cluster is not None:
                text += self.cluster.timings.toml(URL_ENV)
                self.env[URL_ENV] = self.cluster.url
            path.write_text(text)
            self.configs.append((path, port))

    def _start_agent(self, index: int = 0) -> None:
        config, port = self.configs[index]
        agent = AgentProcess(config, port, env=self.env)
        self.agents.append(agent)
        agent.wait_ready(timeout=20)
        self._ready_at[index] = time.time()
        self.current[index] = agent

    def _kill_agent(self, index: int = 0) -> None:
        agent = self.current[index]
        assert agent is not None
        if agent.proc.poll() is not None:
            raise AssertionError(
                f"agent {index} died by itself ({agent.proc.returncode}):\n{agent.log()}"
            )
        killed_at = time.time()
        agent.proc.send_signal(signal.SIGKILL)
        agent.proc.wait(timeout=10)
        self.alive_by_agent[index].append([self._ready_at[index], killed_at])
        self.kills.append(killed_at)
        agent.stop()  # closes its log
        self.current[index] = None

    def _stop_agents(self) -> None:
        for index, agent in enumerate(self.current):
            if agent is None:
                continue
            stopped_at = time.time()
            code = agent.stop()
            self.alive_by_agent[index].append([self._ready_at[index], stopped_at])
            self.log(f"chaos: agent {index} stopped with {code}")
            self.current[index] = None

    def _outbox_pending(self) -> float | None:
        """The largest backlog any running agent reports (the cluster's agents share one)."""
        found: list[float] = []
        for agent in self.current:
            if agent is None:
                continue
            try:
                status, body = http_get(agent.base + "/metrics", timeout=2)
            except (OSError, urllib.error.URLError):
                continue
            match = OUTBOX_PENDING.search(body.decode(errors="replace"))
            if status == 200 and match:
                found.append(float(match.group(1)))
        return max(found) if found else None

    # --- the run -----------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        wall_start = time.monotonic()
        scenario = self.scenario
        freshdesk = FakeProcess("freshdesk", "--api-key", FD_KEY)
        pagerduty = FakeProcess("pagerduty", "--routing-key", PD_KEY)
        ports = dict(zip(scenario.targets, pick_ports(len(scenario.targets)), strict=True))
        flapper = Flapper(ports)
        self._write_configs(ports, freshdesk.url, pagerduty.url)
        started_at = time.time()
        try:
            flapper.start()
            for index in range(len(self.current)):
                self._start_agent(index)
            start = time.time() + 0.5
            flapper.play(scenario.toggles, start)
            self._play_events(start, freshdesk)
            if not flapper.wait_done(timeout=HORIZON + 30):
                raise AssertionError("the flapper did not finish its schedule")
            assert flapper.all_up()
            for index, agent in enumerate(self.current):
                if agent is None:
                    self._start_agent(index)
            settled = self._settle(freshdesk, pagerduty)
            ended_at = time.time()
            self._stop_agents()
            fd_state, pd_state = freshdesk.state(), pagerduty.state()
        finally:
            for agent in self.agents:
                agent.stop()
            flapper.stop()
            freshdesk.stop()
            pagerduty.stop()
        evidence = {
            "seed": scenario.seed,
            "scenario": scenario.describe(),
            "config": {
                "interval": INTERVAL,
                "failure_threshold": FAILURE_THRESHOLD,
                "recovery_threshold": RECOVERY_THRESHOLD,
                "on_recovery": "pending",
            },
            "started_at": started_at,
            "schedule_start": start,
            "ended_at": ended_at,
            "settled": settled,
            "outbox_pending_at_end": self.outbox_pending,
            "wall": time.monotonic() - wall_start,
            "truth": flapper.truth(),
            "alive": self.alive_by_agent[0],
            "kills": self.kills,
            "helpdesk_faults": self.faults,
            "agent_logs": [str(agent.log_path) for agent in self.agents],
            "freshdesk": fd_state,
            "pagerduty": pd_state,
        }
        if self.cluster is not None:
            timings = self.cluster.timings
            evidence["alive_by_agent"] = self.alive_by_agent
            evidence["alive"] = watched(self.alive_by_agent, self.kills, timings)
            evidence["cluster"] = {
                "agents": self.cluster.agents,
                "lease_ttl": timings.lease_ttl,
                "lease_renew": timings.lease_renew,
                "blind_after_kill": timings.blind_after_kill,
                "blind_after_join": timings.blind_after_join,
            }
        return evidence

    def _play_events(self, start: float, freshdesk: FakeProcess) -> None:
        scenario = self.scenario
        events: list[tuple[float, str, Any]] = [(k.offset, "kill", k) for k in scenario.kills]
        events.append((scenario.create_faults_at, "create_faults", None))
        events.append((scenario.outage_at, "outage", None))
        events.sort(key=lambda event: event[0])
        for offset, what, item in events:
            delay = start + offset - time.time()
            if delay > 0:
                time.sleep(delay)
            if what == "kill":
                victim = item.agent
                if self.current[victim] is None:
                    self._start_agent(victim)
                self._kill_agent(victim)
                time.sleep(item.restart_after)
                self._start_agent(victim)
            elif what == "create_faults":
                for kind in scenario.create_faults:
                    freshdesk.fail_next("create", kind, delay=5.0)
                self.faults.append({"at": time.time(), "create": scenario.create_faults})
            else:
                until = time.time() + scenario.outage_for
                kinds: list[dict[str, Any]] = [
                    {"kind": "503"},
                    {"kind": "429", "retry_after": scenario.retry_after},
                ]
                freshdesk.outage(until, kinds)
                self.faults.append({"at": time.time(), "until": until, "kinds": kinds})
        delay = start + HORIZON - time.time()
        if delay > 0:
            time.sleep(delay)

    def _settle(self, freshdesk: FakeProcess, pagerduty: FakeProcess) -> bool:
        """Wait (bounded) until the outbox is empty and the stand-ins hear nothing more.

        Not settling is no reason to stop: an action the agent still holds back (a long backoff
        after the helpdesk recovered) shows up in the checker as what it is, a ticket, note or
        page that never came."""
        begun = time.monotonic()
        last: tuple[int, int] | None = None
        quiet_since = time.monotonic()
        while time.monotonic() - begun < SETTLE_MAX:
            time.sleep(0.5)
            fingerprint = (
                len(freshdesk.state()["requests"]),
                len(pagerduty.state()["requests"]),
            )
            if fingerprint != last:
                last, quiet_since = fingerprint, time.monotonic()
            pending = self._outbox_pending()
            self.outbox_pending = pending
            if (
                time.monotonic() - begun >= SETTLE_MIN
                and time.monotonic() - quiet_since >= SETTLE_QUIET
                and pending == 0
            ):
                return True
        self.log(
            f"chaos: not settled within {SETTLE_MAX:.0f}s: "
            f"watchdesk_outbox_pending {self.outbox_pending}"
        )
        return False
