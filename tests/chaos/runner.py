"""Plays a chaos scenario against real processes and gathers the evidence the checker reads.

One agent process at a time (SIGKILLed and restarted on the same config and state dir), a
Freshdesk and a PagerDuty stand-in process, and the flapper's targets in a thread of this
process. Everything on 127.0.0.1.
"""

from __future__ import annotations

import re
import signal
import time
import urllib.error
from collections.abc import Callable
from pathlib import Path
from typing import Any

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

Log = Callable[[str], None]


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
    def __init__(self, scenario: Scenario, workdir: Path, log: Log = print) -> None:
        self.scenario = scenario
        self.workdir = workdir
        self.log = log
        self.agents: list[AgentProcess] = []
        self.alive: list[list[float]] = []
        self.kills: list[float] = []
        self.faults: list[dict[str, Any]] = []
        self.agent: AgentProcess | None = None
        self._ready_at = 0.0
        self.outbox_pending: float | None = None

    # --- the agent ---------------------------------------------------------------------------

    def _start_agent(self) -> None:
        agent = AgentProcess(self.config, self.agent_port, env=self.env)
        self.agents.append(agent)
        agent.wait_ready(timeout=20)
        self._ready_at = time.time()
        self.agent = agent

    def _kill_agent(self) -> None:
        agent = self.agent
        assert agent is not None
        if agent.proc.poll() is not None:
            raise AssertionError(
                f"the agent died by itself ({agent.proc.returncode}):\n{agent.log()}"
            )
        killed_at = time.time()
        agent.proc.send_signal(signal.SIGKILL)
        agent.proc.wait(timeout=10)
        self.alive.append([self._ready_at, killed_at])
        self.kills.append(killed_at)
        agent.stop()  # closes its log
        self.agent = None

    def _stop_agent(self) -> None:
        if self.agent is None:
            return
        stopped_at = time.time()
        code = self.agent.stop()
        self.alive.append([self._ready_at, stopped_at])
        self.log(f"chaos: last agent stopped with {code}")
        self.agent = None

    def _outbox_pending(self) -> float | None:
        if self.agent is None:
            return None
        try:
            status, body = http_get(self.agent.base + "/metrics", timeout=2)
        except (OSError, urllib.error.URLError):
            return None
        match = OUTBOX_PENDING.search(body.decode(errors="replace"))
        return float(match.group(1)) if status == 200 and match else None

    # --- the run -----------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        wall_start = time.monotonic()
        scenario = self.scenario
        freshdesk = FakeProcess("freshdesk", "--api-key", FD_KEY)
        pagerduty = FakeProcess("pagerduty", "--routing-key", PD_KEY)
        ports = dict(zip(scenario.targets, pick_ports(len(scenario.targets)), strict=True))
        flapper = Flapper(ports)
        self.agent_port = free_port()
        self.env = {"WD_CHAOS_FD_KEY": FD_KEY, "WD_CHAOS_PD_KEY": PD_KEY}
        self.config = self.workdir / "chaos.toml"
        self.config.write_text(
            config_text(
                self.agent_port, self.workdir / "state", ports, freshdesk.url, pagerduty.url
            )
        )
        started_at = time.time()
        try:
            flapper.start()
            self._start_agent()
            start = time.time() + 0.5
            flapper.play(scenario.toggles, start)
            self._play_events(start, freshdesk)
            if not flapper.wait_done(timeout=HORIZON + 30):
                raise AssertionError("the flapper did not finish its schedule")
            assert flapper.all_up()
            if self.agent is None:
                self._start_agent()
            settled = self._settle(freshdesk, pagerduty)
            ended_at = time.time()
            self._stop_agent()
            fd_state, pd_state = freshdesk.state(), pagerduty.state()
        finally:
            for agent in self.agents:
                agent.stop()
            flapper.stop()
            freshdesk.stop()
            pagerduty.stop()
        return {
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
            "alive": self.alive,
            "kills": self.kills,
            "helpdesk_faults": self.faults,
            "agent_logs": [str(agent.log_path) for agent in self.agents],
            "freshdesk": fd_state,
            "pagerduty": pd_state,
        }

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
                if self.agent is None:
                    self._start_agent()
                self._kill_agent()
                time.sleep(item.restart_after)
                self._start_agent()
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
