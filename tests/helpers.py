"""Test helpers: free ports, config files, and a real agent process to poke at."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def closed_port() -> int:
    """A port nothing listens on (bound then released)."""
    return free_port()


def http_get(
    url: str, headers: dict[str, str] | None = None, timeout: float = 5.0
) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monitor", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


class AgentProcess:
    """``watchdesk run`` as a real subprocess, with its log captured to a file."""

    def __init__(
        self,
        config: Path,
        port: int,
        env: dict[str, str] | None = None,
        extra: tuple[str, ...] = (),
    ) -> None:
        self.config = config
        self.port = port
        self.log_path = config.parent / f"agent-{time.monotonic_ns()}.log"
        self._log = self.log_path.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "monitor", "run", "-c", str(config), *extra],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            # A hung agent can be made to print every thread's stack (``wait_exit``).
            env={**os.environ, "PYTHONFAULTHANDLER": "1", **(env or {})},
        )

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_exit(self, timeout: float) -> int:
        """The exit code; an agent still running after ``timeout`` is made to print its tasks'
        stacks (SIGUSR1) and its threads' (SIGABRT under faulthandler), and the test fails
        with its log."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGUSR1)  # its asyncio tasks' stacks, into the log
            time.sleep(1.0)
            self.proc.send_signal(signal.SIGABRT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=5)
            raise AssertionError(
                f"agent still running {timeout} s after it was told to stop:\n{self.log()}"
            ) from None

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text()

    def wait_ready(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"agent exited with {self.proc.returncode}:\n{self.log()}")
            try:
                status, _ = http_get(self.base + "/readyz", timeout=1)
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"agent not ready after {timeout}s:\n{self.log()}")

    def status(self, headers: dict[str, str] | None = None) -> dict[str, Any]:
        code, body = http_get(self.base + "/api/status", headers=headers)
        assert code == 200, body
        return {row["target"]: row for row in json.loads(body)}

    def wait_for(self, predicate: Any, timeout: float = 15.0, what: str = "condition") -> Any:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            last = self.status()
            if predicate(last):
                return last
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}; last status: {last}\n{self.log()}")

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def stop(self, timeout: float = 10.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self._log.close()
        return code


class FakeProcess:
    """A stand-in service (``python -m tests.fakes.NAME``) in its own process, for tests where
    the agent runs in another process too. Controlled over its /_fake/ endpoints."""

    def __init__(self, module: str, *args: str) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", f"tests.fakes.{module}", "--port", str(self.port), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        assert line == "ready", f"{module} fake did not start: {line!r}"
        self.url = f"http://127.0.0.1:{self.port}"

    def state(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.url + "/_fake/state", timeout=5) as response:
            return dict(json.load(response))

    def _post(self, path: str, spec: dict[str, Any]) -> None:
        request = urllib.request.Request(
            self.url + path,
            data=json.dumps(spec).encode(),
            headers={"Content-Type": "application/json"},
        )
        urllib.request.urlopen(request, timeout=5).close()

    def fail_next(
        self,
        route: str,
        kind: str,
        delay: float = 60.0,
        *,
        count: int = 1,
        retry_after: float | None = None,
        status: int | None = None,
    ) -> None:
        spec: dict[str, Any] = {"route": route, "kind": kind, "delay": delay, "count": count}
        if retry_after is not None:
            spec["retry_after"] = retry_after
        if status is not None:
            spec["status"] = status
        self._post("/_fake/fail", spec)

    def outage(self, until: float, kinds: list[dict[str, Any]], route: str = "*") -> None:
        """Until wall-clock ``until``, every request to ``route`` fails with the next of
        ``kinds`` in turn (see tests/fakes/freshdesk.py)."""
        self._post("/_fake/outage", {"until": until, "kinds": kinds, "route": route})

    def wait_for(self, predicate: Any, what: str, timeout: float = 20.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.state()
            if predicate(state):
                return state
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}: {self.state()}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


# Secrets of the Freshdesk and PagerDuty stand-ins that process tests start, and the
# environment that hands them to the agent (see ``freshdesk_toml`` and ``pagerduty_toml``).
FD_KEY = "stand-in-freshdesk-key"
PD_KEY = "0123456789abcdef0123456789abcdef"
STAND_IN_ENV = {"WD_TEST_FD_KEY": FD_KEY, "WD_TEST_PD_KEY": PD_KEY}


def api_agent_toml(
    port: int,
    state: Path,
    service_port: int,
    *,
    failure_threshold: int = 2,
    recovery_threshold: int = 1,
) -> str:
    """An agent on ``port`` watching one TCP target "api" of customer acme every 200 ms."""
    return f"""
[agent]
listen = "127.0.0.1:{port}"
state_dir = "{state}"

[defaults]
interval = "200ms"
timeout = "150ms"
failure_threshold = {failure_threshold}
recovery_threshold = {recovery_threshold}

[[targets]]
name = "api"
kind = "tcp"
host = "127.0.0.1"
port = {service_port}
customer = "acme"

[customers.acme]
email = "it@acme.example"
"""


def freshdesk_toml(url: str, *, request_timeout: str = "2s", extra: str = "") -> str:
    """``[ticketing]`` on the Freshdesk stand-in at ``url`` (key from ``STAND_IN_ENV``)."""
    return f"""
[ticketing]
backend = "freshdesk"
request_timeout = "{request_timeout}"
{extra}
[ticketing.freshdesk]
url = "{url}"
api_key_env = "WD_TEST_FD_KEY"
requester_email = "monitoring@acme.example"
"""


def pagerduty_toml(url: str, name: str = "oncall") -> str:
    """``[pagers.NAME]`` on the PagerDuty stand-in at ``url`` (key from ``STAND_IN_ENV``)."""
    return f"""
[pagers.{name}]
type = "pagerduty"
routing_key_env = "WD_TEST_PD_KEY"
url = "{url}/v2/enqueue"
"""
