"""The systemd notify protocol against a real unix datagram socket, as systemd listens."""

from __future__ import annotations

import signal
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from monitor.sdnotify import Notifier
from tests.agent_harness import Harness
from tests.helpers import AgentProcess, free_port

pytestmark = pytest.mark.slow


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = str(tmp_path / "notify.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(path)
    listener.settimeout(0.2)
    yield listener, path
    listener.close()


def receive_until(
    listener: socket.socket, predicate: Callable[[list[str]], bool], timeout: float = 15
) -> list[str]:
    messages: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            messages.append(listener.recv(4096).decode())
        except TimeoutError:
            continue
        if predicate(messages):
            return messages
    raise AssertionError(f"timed out; got {messages}")


def test_ready_watchdog_reloading_stopping(
    write_config: Callable[..., Path],
    tmp_path: Path,
    agents: list[AgentProcess],
    notify_socket: tuple[socket.socket, str],
) -> None:
    listener, path = notify_socket
    port = free_port()
    config = write_config(
        f'[agent]\nlisten = "127.0.0.1:{port}"\nstate_dir = "{tmp_path / "state"}"\n'
        '[[targets]]\nname = "db"\nkind = "tcp"\nhost = "127.0.0.1"\nport = 1\n'
        'interval = "1s"\ntimeout = "500ms"\n'
    )
    # WatchdogSec=2s: the agent must ping every second.
    agent = AgentProcess(config, port, env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "2000000"})
    agents.append(agent)
    messages = receive_until(listener, lambda m: any("READY=1" in x for x in m))
    ready = next(x for x in messages if "READY=1" in x)
    assert "STATUS=watching 1 targets" in ready
    pings = receive_until(listener, lambda m: sum(x == "WATCHDOG=1" for x in m) >= 3, timeout=6)
    assert sum(x == "WATCHDOG=1" for x in pings) >= 3

    agent.signal(signal.SIGHUP)
    reload = receive_until(listener, lambda m: any("READY=1" in x for x in m))
    reloading = [x for x in reload if "RELOADING=1" in x]
    assert reloading
    assert "MONOTONIC_USEC=" in reloading[0]
    assert reload.index(reloading[0]) < next(i for i, x in enumerate(reload) if "READY=1" in x)

    agent.signal(signal.SIGTERM)
    receive_until(listener, lambda m: any("STOPPING=1" in x for x in m))
    assert agent.wait_exit(10) == 0


async def test_no_watchdog_ping_while_the_scheduler_is_stalled(
    tmp_path: Path, notify_socket: tuple[socket.socket, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    listener, path = notify_socket
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    h = await Harness.create(
        tmp_path / "state", '[[targets]]\nname = "db"\nkind = "tcp"\nhost = "h"\nport = 1\n'
    )
    try:
        assert h.agent.watchdog_tick()
        assert listener.recv(4096) == b"WATCHDOG=1"
        h.agent.scheduler.last_beat -= 60  # the loop has not beaten for a minute
        assert not h.agent.watchdog_tick()
        with pytest.raises(TimeoutError):
            listener.recv(4096)
    finally:
        await h.close()


def test_abstract_sockets_and_no_socket() -> None:
    assert not Notifier({}).enabled
    assert Notifier({}).send("READY=1") is False
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind("\0watchdesk-test-notify")
        notifier = Notifier({"NOTIFY_SOCKET": "@watchdesk-test-notify"})
        notifier.ready("ok")
        assert listener.recv(4096) == b"READY=1\nSTATUS=ok"
        notifier.close()


def test_watchdog_interval_is_half_of_watchdog_sec() -> None:
    import os

    assert Notifier({"WATCHDOG_USEC": "30000000"}).watchdog_interval == 15.0
    other_pid = {"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid() + 1)}
    assert Notifier(other_pid).watchdog_interval is None
    assert Notifier({}).watchdog_interval is None
