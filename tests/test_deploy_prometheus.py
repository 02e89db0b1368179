"""deploy/prometheus/: the scrape config, the rules and their unit tests, as promtool sees them.

Also checked without promtool: every alert and recording rule has a promtool unit test, every
alert can be acted on (severity, summary, description), and every metric an expression reads is
one the agent exports (read from its own registry, so a renamed metric fails here).
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

from monitor.metrics import Metrics

ROOT = Path(__file__).resolve().parent.parent
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
CONFIG = PROMETHEUS_DIR / "prometheus.yml"
RULE_FILES = sorted((PROMETHEUS_DIR / "rules").glob("*.yml"))
RULE_TESTS = sorted((PROMETHEUS_DIR / "tests").glob("*.yml"))

REQUIRED_ALERTS = {
    "WatchdeskDown",
    "WatchdeskOutboxBacklogGrowing",
    "WatchdeskConfigReloadFailed",
    "WatchdeskScheduleLate",
    "WatchdeskHelpdeskErrors",
    "WatchdeskPagerErrors",
}
REQUIRED_RECORDS = {
    f"watchdesk:{level}_uptime:ratio_{window}"
    for level in ("target", "customer")
    for window in ("1d", "7d", "30d")
}
SEVERITIES = {"critical", "warning", "info"}

# The job name of the scrape config, which up{job=...} selectors must use.
JOB = "watchdesk"
_METRIC = re.compile(r"(?<![\w:])watchdesk_[a-z0-9_]+")
_RECORDED = re.compile(r"(?<![\w:])watchdesk:[a-z0-9_:]+")


# ---- helpers (the Grafana tests use them too) ------------------------------------------------


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def rules_of(path: Path) -> list[dict[str, Any]]:
    return [rule for group in load_yaml(path)["groups"] for rule in group["rules"]]


def recording_rules() -> dict[str, str]:
    """record name -> expression, over every rule file."""
    return {
        rule["record"]: rule["expr"]
        for path in RULE_FILES
        for rule in rules_of(path)
        if "record" in rule
    }


def alerting_rules() -> dict[str, dict[str, Any]]:
    return {
        rule["alert"]: rule for path in RULE_FILES for rule in rules_of(path) if "alert" in rule
    }


@functools.cache
def exported_series() -> frozenset[str]:
    """Every series name the agent can expose: its registry with a child of every labelled
    metric, and one target with every per-target series, rendered as /metrics renders it (so
    e.g. whether *_created exists is the agent's call, not a guess here)."""
    metrics = Metrics("0.0.0")
    for metric in vars(metrics).values():
        if isinstance(metric, MetricWrapperBase) and metric._labelnames:
            metric.labels(*("x" for _ in metric._labelnames))
    metrics.targets.add("x", "https", "x")
    metrics.targets.record("x", True, 0.1, 0, tls_expiry=1.0)
    metrics.targets.up("x", "up")
    metrics.targets.skipped("x")
    text = metrics.exposition().decode()
    return frozenset(
        line.split("{")[0].split(" ")[0] for line in text.splitlines() if line[:1] != "#"
    )


def unknown_series(expr: str, recorded: set[str]) -> set[str]:
    """Metric and recording-rule names (and job selectors) in ``expr`` that nothing produces."""
    unknown = set(_METRIC.findall(expr)) - exported_series()
    unknown |= set(_RECORDED.findall(expr)) - recorded
    unknown |= {f'job="{job}"' for job in re.findall(r'job=~?"([^"]*)"', expr)} - {f'job="{JOB}"'}
    return unknown


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool is not installed (Debian package prometheus; .ci/run installs it)")
    return path


def run_promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *args], capture_output=True, text=True, timeout=60, cwd=PROMETHEUS_DIR
    )


# ---- promtool --------------------------------------------------------------------------------


def test_promtool_accepts_the_scrape_config_and_finds_every_rule_file() -> None:
    checked = run_promtool("check", "config", str(CONFIG))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(RULE_FILES)} rule files found" in checked.stdout


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda path: path.name)
def test_promtool_accepts_the_rule_file(path: Path) -> None:
    checked = run_promtool("check", "rules", str(path))
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.parametrize("path", RULE_TESTS, ids=lambda path: path.name)
def test_promtool_unit_tests_pass(path: Path) -> None:
    tested = run_promtool("test", "rules", str(path))
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


# ---- the files themselves --------------------------------------------------------------------


def test_the_scrape_config_scrapes_the_agent_and_loads_every_rule_file() -> None:
    config = load_yaml(CONFIG)
    (job,) = [job for job in config["scrape_configs"] if job["job_name"] == JOB]
    assert job["scrape_interval"] == "15s"
    assert job.get("metrics_path", "/metrics") == "/metrics"
    targets = [target for static in job["static_configs"] for target in static["targets"]]
    assert targets == ["127.0.0.1:9430"]
    loaded = sorted((CONFIG.parent / path).resolve() for path in config["rule_files"])
    assert loaded == [path.resolve() for path in RULE_FILES]


def test_the_required_rules_exist() -> None:
    assert set(alerting_rules()) >= REQUIRED_ALERTS
    records = recording_rules()
    assert set(records) >= REQUIRED_RECORDS
    for window in ("1d", "7d", "30d"):
        expr = records[f"watchdesk:target_uptime:ratio_{window}"]
        assert expr.strip() == f"avg_over_time(watchdesk_target_up[{window}])"
        customer = records[f"watchdesk:customer_uptime:ratio_{window}"]
        assert f"watchdesk:target_uptime:ratio_{window}" in customer
        assert "group_left (customer)" in customer
        assert "watchdesk_target_info" in customer


def test_every_alert_says_how_bad_it_is_and_what_to_do() -> None:
    for name, rule in alerting_rules().items():
        assert rule["labels"]["severity"] in SEVERITIES, name
        annotations = rule["annotations"]
        assert annotations["summary"].strip(), name
        # A person has to be able to act on it: what is wrong and where to look.
        assert len(annotations["description"].split()) >= 25, name
        assert "`" in annotations["description"], f"{name}: no command or file to look at"


def test_rule_expressions_read_only_series_that_exist() -> None:
    recorded = set(recording_rules())
    for path in RULE_FILES:
        for rule in rules_of(path):
            name = rule.get("record") or rule.get("alert")
            assert not unknown_series(rule["expr"], recorded), (name, rule["expr"])


def _unit_tests() -> list[tuple[Path, dict[str, Any]]]:
    return [(path, test) for path in RULE_TESTS for test in load_yaml(path)["tests"]]


def test_every_rule_file_has_unit_tests() -> None:
    tested = {
        (path.parent / rule_file).resolve()
        for path in RULE_TESTS
        for rule_file in load_yaml(path)["rule_files"]
    }
    assert tested == {path.resolve() for path in RULE_FILES}


def test_every_alert_is_unit_tested_firing_and_not_firing() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for _, test in _unit_tests():
        for case in test.get("alert_rule_test", []):
            (firing if case.get("exp_alerts") else quiet).add(case["alertname"])
    alerts = set(alerting_rules())
    assert alerts - firing == set(), "alerts with no firing case"
    assert alerts - quiet == set(), "alerts with no not-firing case"


def test_every_recording_rule_is_unit_tested() -> None:
    checked: set[str] = set()
    for _, test in _unit_tests():
        for case in test.get("promql_expr_test", []):
            if case.get("exp_samples"):
                checked.update(_RECORDED.findall(case["expr"]))
    assert set(recording_rules()) - checked == set()
