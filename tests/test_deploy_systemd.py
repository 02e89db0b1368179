"""deploy/systemd: the unit file says what the agent needs, and systemd itself accepts it.

The directive checks run everywhere. `systemd-analyze verify` and `systemd-analyze security`
run where systemd-analyze is installed (it needs no running systemd); elsewhere they skip.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from monitor.sdnotify import Notifier
from tests.helpers import run_cli

ROOT = Path(__file__).resolve().parent.parent
SYSTEMD = ROOT / "deploy" / "systemd"
UNIT = SYSTEMD / "watchdesk.service"
EXAMPLE = SYSTEMD / "config.example.toml"
INSTALLED_WATCHDESK = "/opt/watchdesk/.venv/bin/watchdesk"
AGENT_STOP_SECONDS = 5  # the contract: SIGTERM stops the agent within 5 s
AGENT_HEALTH_STALL_SECONDS = 10  # /healthz turns 503 (and pings stop) after 10 s without beat


def parse_unit(text: str) -> dict[str, list[tuple[str, str]]]:
    """A systemd unit as {section: [(key, value), ...]}: keys may repeat, order is kept."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    pending = ""
    for raw in text.splitlines():
        line = pending + raw.strip() if pending else raw.strip()
        pending = ""
        if not line or line[0] in "#;":
            continue
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        assert current is not None, f"directive outside a section: {line!r}"
        key, sep, value = line.partition("=")
        assert sep, f"not a key=value line: {line!r}"
        current.append((key.strip(), value.strip()))
    return sections


def parse_seconds(value: str) -> float:
    """systemd time spans as used here: "30s", "5min", "10" (seconds)."""
    units = {"": 1, "s": 1, "sec": 1, "min": 60, "m": 60, "h": 3600, "ms": 0.001}
    total = 0.0
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", value):
        total += float(number) * units[unit]
    return total


@pytest.fixture(scope="module")
def unit() -> dict[str, list[tuple[str, str]]]:
    return parse_unit(UNIT.read_text())


def values(unit: dict[str, list[tuple[str, str]]], section: str, key: str) -> list[str]:
    return [value for name, value in unit.get(section, []) if name == key]


def one(unit: dict[str, list[tuple[str, str]]], section: str, key: str) -> str:
    found = values(unit, section, key)
    assert len(found) == 1, f"[{section}] {key}: expected once, found {found}"
    return found[0]


def test_lifecycle_is_notify_with_watchdog_and_reload(
    unit: dict[str, list[tuple[str, str]]],
) -> None:
    assert one(unit, "Service", "Type") == "notify"
    assert one(unit, "Service", "NotifyAccess") == "main"
    assert one(unit, "Service", "ExecStart") == (
        f"{INSTALLED_WATCHDESK} run -c /etc/watchdesk/config.toml"
    )
    assert one(unit, "Service", "ExecReload") == "/bin/kill -HUP $MAINPID"
    assert one(unit, "Service", "Restart") == "on-failure"
    assert one(unit, "Install", "WantedBy") == "multi-user.target"
    assert "network-online.target" in values(unit, "Unit", "Wants")
    assert "network-online.target" in values(unit, "Unit", "After")


def test_watchdog_fits_the_agent(unit: dict[str, list[tuple[str, str]]]) -> None:
    watchdog = parse_seconds(one(unit, "Service", "WatchdogSec"))
    assert watchdog == 30
    # The agent stops pinging once its scheduler has stalled for 10 s; systemd must allow more
    # than that plus one ping interval, or a healthy agent with one slow beat gets killed.
    notifier = Notifier({"WATCHDOG_USEC": str(int(watchdog * 1_000_000))})
    assert notifier.watchdog_interval == watchdog / 2
    assert watchdog > AGENT_HEALTH_STALL_SECONDS + notifier.watchdog_interval
    # SIGTERM: the agent stops within 5 s; systemd waits longer before SIGKILL.
    assert parse_seconds(one(unit, "Service", "TimeoutStopSec")) > AGENT_STOP_SECONDS


def test_identity_state_config_and_secrets(unit: dict[str, list[tuple[str, str]]]) -> None:
    assert one(unit, "Service", "DynamicUser") == "yes"
    assert not values(unit, "Service", "User")
    assert one(unit, "Service", "StateDirectory") == "watchdesk"
    assert one(unit, "Service", "ConfigurationDirectory") == "watchdesk"
    assert one(unit, "Service", "EnvironmentFile") == "-/etc/watchdesk/watchdesk.env"
    assert one(unit, "Service", "UMask") == "0077"
    # Many probes in flight need many sockets.
    assert int(one(unit, "Service", "LimitNOFILE")) >= 16384


def test_only_cap_net_raw(unit: dict[str, list[tuple[str, str]]]) -> None:
    assert one(unit, "Service", "AmbientCapabilities") == "CAP_NET_RAW"
    assert one(unit, "Service", "CapabilityBoundingSet") == "CAP_NET_RAW"
    # CAP_NET_RAW inside a private user namespace would not open raw sockets on the host.
    assert values(unit, "Service", "PrivateUsers") in ([], ["no"])


def test_hardening(unit: dict[str, list[tuple[str, str]]]) -> None:
    expected = {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "ProtectKernelTunables": "yes",
        "ProtectKernelModules": "yes",
        "ProtectKernelLogs": "yes",
        "ProtectControlGroups": "yes",
        "ProtectClock": "yes",
        "ProtectHostname": "yes",
        "RestrictNamespaces": "yes",
        "LockPersonality": "yes",
        "MemoryDenyWriteExecute": "yes",
        "RestrictRealtime": "yes",
        "RestrictSUIDSGID": "yes",
        "SystemCallArchitectures": "native",
    }
    actual = {key: one(unit, "Service", key) for key in expected}
    assert actual == expected
    families = one(unit, "Service", "RestrictAddressFamilies").split()
    assert sorted(families) == ["AF_INET", "AF_INET6", "AF_NETLINK", "AF_UNIX"]
    assert values(unit, "Service", "SystemCallFilter")[0] == "@system-service"


def test_credentials_are_documented_with_the_literal_path() -> None:
    # The agent does not expand ${CREDENTIALS_DIRECTORY} in *_file keys: every path we show
    # must be the literal directory systemd uses for this unit.
    text = UNIT.read_text() + (SYSTEMD / "README.md").read_text() + EXAMPLE.read_text()
    literal = f"/run/credentials/{UNIT.name}/"
    assert literal in text
    for path in re.findall(r'_file = "([^"]+)"', text):
        assert path.startswith(literal), path


def test_example_config_points_at_the_state_directory(
    unit: dict[str, list[tuple[str, str]]],
) -> None:
    config = tomllib.loads(EXAMPLE.read_text())
    state_directory = one(unit, "Service", "StateDirectory")
    assert config["agent"]["state_dir"] == f"/var/lib/{state_directory}"
    assert one(unit, "Service", "WorkingDirectory") == f"%S/{state_directory}"
    result = run_cli("check-config", "-c", str(EXAMPLE))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{EXAMPLE}: ok")


def _systemd_analyze() -> str:
    path = shutil.which("systemd-analyze")
    if path is None:
        pytest.skip("systemd-analyze is not installed (Debian package: systemd)")
    return path


def _testable_unit(tmp_path: Path) -> Path:
    """The unit with ExecStart pointed at this environment's watchdesk (verify checks that the
    program exists); everything else byte for byte."""
    installed = Path(sys.executable).parent / "watchdesk"
    if not installed.exists():
        pytest.skip(f"no watchdesk console script beside {sys.executable}")
    text = UNIT.read_text()
    assert INSTALLED_WATCHDESK in text
    copy = tmp_path / UNIT.name
    copy.write_text(text.replace(INSTALLED_WATCHDESK, str(installed)))
    return copy


def test_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = _systemd_analyze()
    copy = _testable_unit(tmp_path)
    result = subprocess.run(
        [analyze, "verify", str(copy)], capture_output=True, text=True, timeout=60
    )
    # Lines about other units (the host's own) are not ours to judge.
    ours = [
        line
        for line in (result.stdout + result.stderr).splitlines()
        if UNIT.name in line or "Unknown" in line
    ]
    assert not ours, result.stdout + result.stderr
    assert result.returncode == 0, result.stdout + result.stderr


def test_systemd_analyze_security(tmp_path: Path) -> None:
    analyze = _systemd_analyze()
    version = subprocess.run([analyze, "--version"], capture_output=True, text=True, timeout=30)
    match = re.search(r"systemd (\d+)", version.stdout)
    if match is None or int(match.group(1)) < 250:
        pytest.skip("systemd-analyze security --offline needs systemd 250 or later")
    copy = _testable_unit(tmp_path)
    # Exposure 0.0 (best) to 10.0; the threshold is in tenths. The unit scores about 1.5.
    result = subprocess.run(
        [analyze, "security", "--offline=yes", "--threshold=20", "--no-pager", str(copy)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
