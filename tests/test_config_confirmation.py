"""``[confirmation]`` and a target's ``vantages``/``min_vantages`` are validated like every
other section: each problem names its dotted key, and what could never confirm (more vantages
than exist) is refused at load, not discovered the night nobody was woken."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from monitor.config import parse_config
from monitor.errors import ConfigError
from tests.helpers import run_cli

TARGET = '[[targets]]\nname = "web"\nkind = "http"\nurl = "http://127.0.0.1:1/"\n'
CLUSTER = '[cluster]\ndatabase_url_env = "WATCHDESK_DATABASE_URL"\n'


def problems_of(text: str) -> dict[str, str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "test.toml")
    return {p.path: p.message for p in caught.value.problems}


def test_the_defaults_are_todays_behaviour() -> None:
    config = parse_config(TARGET)
    section = config.confirmation
    assert section.min_vantages == 1
    assert (section.window, section.degraded, section.degraded_delay) == (60.0, "all_live", 60.0)
    assert (section.partial, section.partial_after) == ("ignore", 600.0)
    assert config.targets[0].vantages == ()
    assert config.targets[0].min_vantages is None


def test_a_cluster_takes_every_key() -> None:
    config = parse_config(
        TARGET
        + 'vantages = ["par", "fra", "ams", "fra"]\nmin_vantages = 3\n'
        + CLUSTER
        + '[confirmation]\nmin_vantages = 2\nwindow = "2m"\ndegraded = "hold"\n'
        'degraded_delay = "30s"\npartial = "ticket"\npartial_after = "15m"\n'
    )
    assert config.confirmation.min_vantages == 2
    assert (config.confirmation.window, config.confirmation.partial_after) == (120.0, 900.0)
    assert config.targets[0].vantages == ("ams", "fra", "par")
    assert config.targets[0].min_vantages == 3


@pytest.mark.parametrize(
    ("text", "key", "says"),
    [
        ("[confirmation]\nmin_vantages = 2\n", "confirmation.min_vantages", "without a [cluster]"),
        ('[confirmation]\ndegraded = "wait"\n', "confirmation.degraded", "all_live"),
        ('[confirmation]\npartial = "page"\n', "confirmation.partial", "ticket"),
        ('[confirmation]\nwindow = "soon"\n', "confirmation.window", "soon"),
        ("[confirmation]\nmin_vantages = 0\n", "confirmation.min_vantages", "1"),
        ("[confirmation]\nquorum = 2\n", "confirmation.quorum", ""),
    ],
)
def test_each_key_is_checked(text: str, key: str, says: str) -> None:
    found = problems_of(TARGET + text)
    assert key in found, found
    assert says in found[key]


def test_a_target_cannot_ask_for_more_vantages_than_it_names() -> None:
    found = problems_of(TARGET + 'vantages = ["par", "fra"]\nmin_vantages = 3\n' + CLUSTER)
    assert found == {
        "targets.0.min_vantages": "3 is more than the 2 vantages the target names in vantages: "
        "it could never open"
    }


def test_target_vantages_need_a_cluster() -> None:
    found = problems_of(TARGET + 'vantages = ["par"]\nmin_vantages = 2\n')
    assert set(found) == {"targets.0.vantages", "targets.0.min_vantages"}


def test_a_bad_value_exits_2_naming_the_key(write_config: Callable[..., Path]) -> None:
    path = str(write_config(TARGET + "[confirmation]\nmin_vantages = 3\n"))
    result = run_cli("check-config", "-c", path)
    assert result.returncode == 2, result.stderr
    assert "confirmation.min_vantages" in result.stderr
    assert "Traceback" not in result.stderr
