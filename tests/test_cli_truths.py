"""Small truths the commands tell: every missing secret at once, no store invented for a
mistyped state directory, and "no data" rather than 100% for a target never observed."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from checks import ProbeResult
from tests.agent_harness import Harness
from tests.helpers import run_cli

SECRETS = """
[agent]
state_dir = "{state}"

[[targets]]
name = "web"
kind = "tcp"
host = "127.0.0.1"
port = 9

[ticketing]
backend = "freshdesk"

[ticketing.freshdesk]
url = "https://acme.freshdesk.com"
api_key_env = "WD_TRUTH_FD_KEY"
requester_email = "monitoring@acme.example"

[pagers.oncall]
type = "pagerduty"
routing_key_env = "WD_TRUTH_PD_KEY"

[escalation]
page_on_open = ["oncall"]
"""


@pytest.fixture
def no_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("WD_TRUTH_FD_KEY", "WD_TRUTH_PD_KEY"):
        monkeypatch.delenv(name, raising=False)
    assert "WD_TRUTH_FD_KEY" not in os.environ


@pytest.mark.usefixtures("no_secrets")
def test_check_config_names_every_missing_secret(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    config = write_config(SECRETS.format(state=tmp_path / "state"))
    result = run_cli("check-config", "-c", str(config))
    assert result.returncode == 2
    assert "ticketing.freshdesk.api_key: environment variable WD_TRUTH_FD_KEY" in result.stderr
    assert "pagers.oncall.routing_key: environment variable WD_TRUTH_PD_KEY" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.usefixtures("no_secrets")
def test_check_config_without_secrets_lints_the_file_alone(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    config = write_config(SECRETS.format(state=tmp_path / "state"))
    result = run_cli("check-config", "--no-secrets", "-c", str(config))
    assert result.returncode == 0, result.stderr
    assert "ok, 1 targets" in result.stdout


@pytest.mark.usefixtures("no_secrets")
def test_run_names_every_missing_secret_and_exits_2(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    config = write_config(SECRETS.format(state=tmp_path / "state"))
    result = run_cli("run", "-c", str(config), timeout=30)
    assert result.returncode == 2
    output = result.stdout + result.stderr
    assert "WD_TRUTH_FD_KEY" in output
    assert "WD_TRUTH_PD_KEY" in output


@pytest.mark.parametrize("command", [["tickets"], ["report"], ["tickets", "--json"]])
def test_a_state_dir_with_no_store_is_said_and_not_created(
    command: list[str], write_config: Callable[..., Path], tmp_path: Path
) -> None:
    missing = tmp_path / "typo-state"
    config = write_config(SECRETS.split("[ticketing]")[0].format(state=missing))
    result = run_cli(*command, "-c", str(config))
    assert result.returncode == 2
    assert f"agent.state_dir: no store in {missing}" in result.stderr
    assert not missing.exists()


TWO_TARGETS = """
[[targets]]
name = "web"
kind = "tcp"
host = "127.0.0.1"
port = 9

[[targets]]
name = "new"
kind = "tcp"
host = "127.0.0.1"
port = 9
"""


async def test_a_target_never_observed_has_no_data_not_100_percent(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    state = tmp_path / "state"
    h = await Harness.create(state, TWO_TARGETS.split('[[targets]]\nname = "new"')[0])
    await h.agent.apply_result(h.agent.targets["web"], ProbeResult(True, 0.01, "connected"))
    await h.agent.book.flush()
    await h.close()
    config = write_config(f'[agent]\nstate_dir = "{state}"\n' + TWO_TARGETS)
    table = run_cli("report", "-c", str(config))
    assert table.returncode == 0, table.stderr
    rows = {line.split()[0]: line for line in table.stdout.splitlines() if line}
    assert "no data" in rows["new"]
    assert "100.000%" in rows["web"]
    data = json.loads(run_cli("report", "--format", "json", "-c", str(config)).stdout)
    uptime = {row["target"]: row["uptime_percent"] for row in data["targets"]}
    assert uptime["new"] is None
    assert uptime["web"] == 100.0


async def test_tickets_notes_shows_what_was_written_on_a_ticket(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    state = tmp_path / "state"
    h = await Harness.create(state, TWO_TARGETS + "[defaults]\nfailure_threshold = 1\n")
    await h.fail("web")
    await h.succeed("web", 2)
    await h.deliver()
    (incident,) = await h.incidents()
    await h.close()
    config = write_config(f'[agent]\nstate_dir = "{state}"\n' + TWO_TARGETS)
    text = run_cli("tickets", "--notes", str(incident.id), "-c", str(config))
    assert text.returncode == 0, text.stderr
    assert "customer-visible" in text.stdout
    assert "web has recovered at" in text.stdout
    data = json.loads(
        run_cli("tickets", "--notes", str(incident.id), "--json", "-c", str(config)).stdout
    )
    assert [note["public"] for note in data] == [True]
    assert data[0]["delivered"] is True
    missing = run_cli("tickets", "--notes", "999", "-c", str(config))
    assert missing.returncode == 1
    assert "no incident 999" in missing.stderr
