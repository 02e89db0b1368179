"""The keys of canaries and storms: defaults, and a bad value named by its dotted key (exit 2)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from monitor.config import parse_config
from monitor.errors import ConfigError
from tests.helpers import run_cli

TARGETS = """
[[targets]]
name = "dns-a"
kind = "dns"
host = "example.com"
nameserver = "192.0.2.53"

[[targets]]
name = "web"
kind = "http"
url = "http://127.0.0.1:1/"
group = "rack-7"
"""


def problems_of(text: str) -> dict[str, str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "test.toml")
    return {p.path: p.message for p in caught.value.problems}


def test_defaults_group_nothing_and_storms_are_10_targets_within_a_minute() -> None:
    config = parse_config(TARGETS)
    assert config.agent.canaries == []
    assert (config.storm.threshold, config.storm.window, config.storm.group_wait) == (
        10,
        60.0,
        10.0,
    )
    assert config.target("web").group == "rack-7"
    assert config.target("dns-a").group is None


def test_canaries_and_storm_keys_are_read() -> None:
    config = parse_config(
        '[agent]\ncanaries = ["dns-a"]\n[storm]\nthreshold = 50\nwindow = "2m"\n'
        'group_wait = "0s"\n' + TARGETS
    )
    assert config.agent.canaries == ["dns-a"]
    assert (config.storm.threshold, config.storm.window, config.storm.group_wait) == (
        50,
        120.0,
        0.0,
    )


def test_bad_canaries_and_storm_keys_name_their_dotted_key() -> None:
    problems = problems_of(
        '[agent]\ncanaries = ["dns-a", "gateway"]\n[storm]\nthreshold = 0\nwindow = "soon"\n'
        "treshold = 5\n" + TARGETS.replace('group = "rack-7"', 'group = "rack 7"')
    )
    assert problems["agent.canaries.1"] == (
        'target "gateway" is not defined; define it as a [[targets]] entry (defined: dns-a, web)'
    )
    assert "greater than or equal to 1" in problems["storm.threshold"]
    assert "storm.window" in problems
    assert "storm.treshold" in problems
    assert "targets.1.group" in problems
    assert "agent.canaries.0" not in problems


def test_a_canary_that_is_not_a_target_exits_2(write_config: Callable[..., Path]) -> None:
    path = write_config('[agent]\ncanaries = ["gw"]\n' + TARGETS)
    result = run_cli("check-config", "--no-secrets", "-c", str(path))
    assert result.returncode == 2
    assert 'agent.canaries.0: target "gw" is not defined' in result.stderr
