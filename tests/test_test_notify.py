"""`watchdesk test-notify`: a line per channel, ok or the channel's own error, exit 1 on any."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import FakeProcess, closed_port, run_cli

pytestmark = pytest.mark.slow

PD_KEY = "abcdefabcdefabcdefabcdefabcdef12"


def test_every_channel_is_tried_and_reported(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    pagerduty = FakeProcess("pagerduty", "--routing-key", PD_KEY)
    try:
        config = write_config(f"""
[agent]
state_dir = "{tmp_path / "state"}"

[pagers.oncall]
type = "pagerduty"
routing_key_env = "TN_PD_KEY"
url = "{pagerduty.url}/v2/enqueue"

[pagers.chat]
type = "webhook"
url = "http://127.0.0.1:{closed_port()}/hook"

[ticketing]
request_timeout = "2s"
""")
        result = run_cli("test-notify", "-c", str(config), env={"TN_PD_KEY": PD_KEY})
        lines = {line.split()[0]: line for line in result.stdout.splitlines()}
        assert result.returncode == 1
        assert lines["ticketing"].split()[1:3] == ["local", "ok"]
        assert lines["pagers.oncall"].split()[1:3] == ["pagerduty", "ok"]
        assert lines["pagers.chat"].split()[1:3] == ["webhook", "FAILED"]
        assert "cannot connect" in lines["pagers.chat"]
        (alert,) = pagerduty.state()["alerts"].values()
        assert alert["summary"] == "[TEST] watchdesk test page"
        assert alert["status"] == "resolved"
        assert PD_KEY not in result.stdout + result.stderr

        tickets = run_cli("tickets", "-c", str(config), "--all", "--json")
        assert tickets.returncode == 0

        only_ok = write_config(
            f'[agent]\nstate_dir = "{tmp_path / "state"}"\n'
            f'[pagers.oncall]\ntype = "pagerduty"\nrouting_key_env = "TN_PD_KEY"\n'
            f'url = "{pagerduty.url}/v2/enqueue"\n',
            name="ok.toml",
        )
        assert run_cli("test-notify", "-c", str(only_ok), env={"TN_PD_KEY": PD_KEY}).returncode == 0
        missing = run_cli("test-notify", "-c", str(only_ok), env={"TN_PD_KEY": ""})
        assert missing.returncode == 1
        assert "TN_PD_KEY is not set" in missing.stdout
    finally:
        pagerduty.stop()
