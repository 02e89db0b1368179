"""Config validation: every problem at once, with its key path and line, and exit 2."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.config import load_config, parse_config
from monitor.durations import format_duration, parse_duration
from monitor.errors import ConfigError
from tests.helpers import run_cli

ROOT = Path(__file__).resolve().parent.parent

MINIMAL = """
[[targets]]
name = "web"
kind = "http"
url = "http://127.0.0.1:1/"
"""


def problems_of(text: str) -> dict[str, str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "test.toml")
    return {p.path: p.message for p in caught.value.problems}


def test_the_shipped_example_is_valid() -> None:
    result = run_cli("check-config", "-c", str(ROOT / "config.toml"))
    assert result.returncode == 0, result.stderr
    assert "3 targets" in result.stdout


def test_defaults_fill_every_target() -> None:
    config = parse_config(MINIMAL)
    web = config.target("web")
    assert (web.interval, web.timeout) == (30.0, 5.0)
    assert (web.failure_threshold, web.recovery_threshold, web.priority) == (3, 2, "urgent")
    assert config.ticketing.backend == "local"
    assert config.agent.listen == "127.0.0.1:9430"


def test_every_problem_is_reported_at_once_with_its_line(write_config: Callable[..., Path]) -> None:
    path = write_config(
        """[defaults]
interval = "30x"

[[targets]]
name = "web"
kind = "http"
urll = "http://example.test/"

[[targets]]
name = "db"
kind = "tcp"
host = "db.internal"
port = 5432
timeout = "1m"
"""
    )
    result = run_cli("check-config", "-c", str(path))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert any(
        line.startswith('defaults.interval: "30x" is not a duration') and "line 2" in line
        for line in lines
    ), result.stderr
    assert any(
        line.startswith('targets.0.urll: unknown key "urll"; did you mean "url"?')
        and "line 7" in line
        for line in lines
    ), result.stderr
    assert any(line.startswith("targets.0.url: required key is missing") for line in lines)
    assert any(
        line.startswith("targets.1.timeout: timeout 1m is longer") and "line 14" in line
        for line in lines
    )


@pytest.mark.parametrize("command", ["run", "probe-once", "check-config"])
def test_every_command_exits_2_on_a_bad_config(
    write_config: Callable[..., Path], command: str
) -> None:
    path = write_config("[agent]\nlisten = 9430\n")
    result = run_cli(command, "-c", str(path))
    assert result.returncode == 2
    assert "agent.listen:" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    result = run_cli("check-config", "-c", str(tmp_path / "nope.toml"))
    assert result.returncode == 2
    assert "does not exist" in result.stderr


def test_config_path_from_the_environment(write_config: Callable[..., Path]) -> None:
    path = write_config(MINIMAL)
    result = run_cli("check-config", env={"WATCHDESK_CONFIG": str(path)})
    assert result.returncode == 0
    assert "1 targets" in result.stdout


def test_toml_syntax_error_names_the_line() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config('[agent]\nlisten = "x\n', "bad.toml")
    (problem,) = caught.value.problems
    assert problem.line == 2
    assert "not valid TOML" in problem.message


def test_duplicate_names_and_missing_references() -> None:
    found = problems_of(
        MINIMAL
        + """
[[targets]]
name = "web"
kind = "tcp"
host = "x"
port = 1

[[targets]]
name = "api"
kind = "tcp"
host = "x"
port = 2
customer = "globex"
depends_on = ["router"]

[customers.acme]
email = "it@acme.example"
sla = "platinum"

[escalation]
page_on_open = ["oncall"]
"""
    )
    assert "duplicate target name" in found["targets.1.name"]
    assert 'customer "globex" is not defined' in found["targets.2.customer"]
    assert 'target "router" is not defined' in found["targets.2.depends_on.0"]
    assert 'SLA plan "platinum" is not defined' in found["customers.acme.sla"]
    assert 'pager "oncall" is not defined' in found["escalation.page_on_open.0"]


def test_dependency_cycles_are_refused() -> None:
    text = "".join(
        f'[[targets]]\nname = "{name}"\nkind = "tcp"\nhost = "h"\nport = 1\n'
        f'depends_on = ["{parent}"]\n'
        for name, parent in (("a", "b"), ("b", "c"), ("c", "a"))
    )
    found = problems_of(text)
    (message,) = [m for m in found.values() if "cycle" in m]
    assert "a -> b -> c -> a" in message


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('"0s"', "not positive"),
        ('"-5s"', "not a duration"),
        ("30", "strings with a unit"),
        ('"soon"', "not a duration"),
    ],
)
def test_bad_durations(value: str, expected: str) -> None:
    found = problems_of(f"[defaults]\ninterval = {value}\n")
    assert expected in found["defaults.interval"]


def test_timeout_longer_than_the_default_interval() -> None:
    found = problems_of('[defaults]\ninterval = "5s"\ntimeout = "10s"\n')
    assert "longer than the interval 5s" in found["defaults.timeout"]


def test_a_per_target_interval_shorter_than_the_default_timeout() -> None:
    found = problems_of(MINIMAL + 'interval = "2s"\n')
    assert "timeout 5s is longer than the interval 2s" in found["targets.0.interval"]


@pytest.mark.parametrize(
    ("table", "key"),
    [
        (
            '[ticketing]\nbackend = "freshdesk"\n[ticketing.freshdesk]\nurl = "https://a.freshdesk.com"\n'
            'requester_email = "m@a.example"\napi_key = "hunter2"\n',
            "ticketing.freshdesk.api_key",
        ),
        (
            '[pagers.oncall]\ntype = "pagerduty"\nrouting_key = "R0UT1NG"\n',
            "pagers.oncall.routing_key",
        ),
        ('[agent]\napi_token = "t0ken"\n', "agent.api_token"),
    ],
)
def test_secrets_written_in_the_file_are_refused_without_echoing_them(table: str, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(table, "test.toml")
    text = str(caught.value)
    assert f"{key}: a secret must not be written in the config file" in text
    assert f"{key.rsplit('.', 1)[1]}_env" in text
    for secret in ("hunter2", "R0UT1NG", "t0ken"):
        assert secret not in text


def test_secrets_by_env_or_file_are_accepted() -> None:
    config = parse_config(
        '[pagers.oncall]\ntype = "pagerduty"\nrouting_key_env = "PD_KEY"\n'
        '[pagers.boss]\ntype = "email"\nto = ["boss@example.com"]\nsmtp_host = "localhost"\n'
        'username = "wd"\npassword_file = "/run/secrets/smtp"\n'
    )
    assert config.pager_types == {"oncall": "pagerduty", "boss": "email"}


def test_a_required_secret_that_is_not_configured() -> None:
    found = problems_of('[pagers.oncall]\ntype = "pagerduty"\n')
    assert "routing_key is required" in found["pagers.oncall"]


def test_unknown_sections_and_kinds() -> None:
    found = problems_of('[target]\nname = "x"\n[[targets]]\nname = "y"\nkind = "smtp"\n')
    assert 'did you mean "targets"' in found["target"]
    assert 'unknown kind "smtp"' in found["targets.0.kind"]


def test_ack_timeout_per_priority_keeps_policy_defaults() -> None:
    config = parse_config('[escalation]\nack_timeout = { urgent = "30m" }\n')
    assert config.escalation.ack_timeout_for("urgent") == 1800
    assert config.escalation.ack_timeout_for("high") == 4 * 3600
    found = problems_of('[escalation]\nack_timeout = { urgent = "1h", critical = "5m" }\n')
    assert 'unknown priority "critical"' in found["escalation.ack_timeout"]


def test_maintenance_windows() -> None:
    config = parse_config(
        MINIMAL
        + 'tags = ["edge"]\n'
        + '[[maintenance]]\ntargets = ["web"]\nstart = "2026-12-01T02:00:00-05:00"\n'
        + 'end = "2026-12-01T04:00:00-05:00"\n'
        + '[[maintenance]]\ntags = ["edge"]\ndays = ["sun"]\nstart = "02:00"\nend = "03:00"\n'
    )
    assert [w.weekly for w in config.maintenance] == [False, True]
    found = problems_of(
        MINIMAL
        + '[[maintenance]]\ntargets = ["web"]\nstart = "2026-12-01T04:00:00Z"\n'
        + 'end = "2026-12-01T02:00:00Z"\n'
    )
    assert "later than start" in found["maintenance.0.end"]


def test_load_config_reads_the_file(write_config: Callable[..., Path]) -> None:
    assert load_config(write_config(MINIMAL)).targets[0].name == "web"


@given(st.text(max_size=300))
def test_any_text_is_a_config_or_a_config_error(text: str) -> None:
    try:
        parse_config(text)
    except ConfigError as error:
        assert error.problems


values = st.one_of(
    st.integers(-5, 100_000),
    st.booleans(),
    st.text(st.characters(exclude_categories=("Cs",)), max_size=12),
    st.lists(st.text(st.characters(exclude_categories=("Cs",)), max_size=5), max_size=3),
)


@given(
    st.dictionaries(
        st.sampled_from(
            [
                "name",
                "kind",
                "url",
                "host",
                "port",
                "interval",
                "timeout",
                "failure_threshold",
                "expect_status",
                "depends_on",
                "customer",
                "record",
                "packets",
                "min_days_left",
                "bogus",
            ]
        ),
        values,
        max_size=8,
    )
)
def test_any_target_table_is_a_target_or_named_problems(table: dict[str, object]) -> None:
    lines = ["[[targets]]"]
    for key, value in table.items():
        lines.append(f"{key} = {_toml(value)}")
    try:
        parse_config("\n".join(lines) + "\n")
    except ConfigError as error:
        assert all(problem.path.startswith("targets") for problem in error.problems)


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        escaped = "".join(
            f"\\u{ord(ch):04x}" if ord(ch) < 0x20 or ord(ch) == 0x7F or ch in '"\\' else ch
            for ch in value
        )
        return f'"{escaped}"'
    assert isinstance(value, list)
    return "[" + ", ".join(_toml(item) for item in value) + "]"


@given(st.integers(min_value=1, max_value=10_000_000))
def test_durations_round_trip(seconds: int) -> None:
    assert parse_duration(format_duration(seconds)) == seconds


def test_duration_forms() -> None:
    assert parse_duration("250ms") == 0.25
    assert parse_duration("1h30m") == 5400
    assert parse_duration("7d") == 7 * 86400
