"""deploy/grafana/: the dashboard and its provisioning, and every query it makes, against a real
agent scraped by a real Prometheus that loads the rules of deploy/prometheus/.

The file checks run everywhere. The live test (slow) starts the agent with three targets (web
up, db down with a customer, cert up with another) whose ticket and page are refused, and a
config reload that is refused, so that the error alerts have something to see; then Prometheus
scraping it every second, and asks Prometheus's HTTP API for every dashboard query, recording
rule and alert expression.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import trustme
import yaml

from tests.helpers import AgentProcess, closed_port, free_port, http_get
from tests.test_deploy_prometheus import (
    RULE_FILES,
    alerting_rules,
    load_yaml,
    recording_rules,
    unknown_series,
)

ROOT = Path(__file__).resolve().parent.parent
GRAFANA_DIR = ROOT / "deploy" / "grafana"
DASHBOARD = GRAFANA_DIR / "dashboards" / "watchdesk.json"
DATASOURCES = GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml"
DASHBOARD_PROVIDERS = GRAFANA_DIR / "provisioning" / "dashboards" / "watchdesk.yml"

# What the live test substitutes for Grafana's variables (Grafana sends "All" as the regex
# ".*" for customer, and as "(a|b|...)" for target: ".*" selects the same here).
VARIABLES = {
    "customer": ".*",
    "target": ".*",
    "__rate_interval": "1m",
    "__interval": "15s",
    "__range": "1h",
}
_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")

# In the live test's setup (see its docstring), which alert expressions return series.
# Every alert must be in exactly one of these.
ALERTS_WITH_DATA = {
    "WatchdeskConfigReloadFailed": "a SIGHUP with a broken config",
    "WatchdeskOutboxBacklogGrowing": "the refused ticket and page stay pending",
    "WatchdeskHelpdeskErrors": "the ticket create was refused (a series new in 15m, at 1)",
    "WatchdeskPagerErrors": "the page was refused (a series new in 15m, at 1)",
}
ALERTS_EMPTY = {
    "WatchdeskDown": "the agent is up",
    "WatchdeskProbesStalled": "probes complete every 500 ms",
    "WatchdeskSlaBreaching": "the only incident is seconds old, its targets hours away",
}
# Panels whose series only appear once an incident is worked or resolved, which this run's
# agent never sees; their queries still have to run.
PANELS_WITHOUT_DATA_HERE = {
    "Incidents resolved (closure)",
    "SLA breaches",
    "Time to acknowledge (MTTA, median over 7 days)",
    "Time to resolve (MTTR, median over 7 days)",
    "Incidents resolved per escalation tier",
    "Time to resolve per escalation tier (median over 7 days)",
}
ALERTS_EITHER = {
    "WatchdeskScheduleLate": "p99 lateness over 1s depends on the machine's load",
}


# ---- helpers ---------------------------------------------------------------------------------


def dashboard() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text()))


def all_panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, rows' collapsed panels included."""
    found: list[dict[str, Any]] = []
    for panel in board["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


def query_panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    return [panel for panel in all_panels(board) if panel["type"] != "row"]


def panel_queries(board: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, PromQL) of every query of every panel."""
    return [
        (panel["title"], target["expr"])
        for panel in query_panels(board)
        for target in panel["targets"]
        if not target.get("hide")
    ]


def variable_query(variable: dict[str, Any]) -> str:
    query = variable["query"]
    return str(query["query"] if isinstance(query, dict) else query)


def substitute(expr: str) -> str:
    def value(match: re.Match[str]) -> str:
        name = next(group for group in match.groups() if group)
        assert name in VARIABLES, f"unknown dashboard variable ${name} in {expr}"
        return VARIABLES[name]

    return _VARIABLE.sub(value, expr)


def provisioned_datasource() -> dict[str, Any]:
    (source,) = load_yaml(DATASOURCES)["datasources"]
    return dict(source)


# ---- the files -------------------------------------------------------------------------------


def test_the_dashboard_is_valid_json_with_unique_ids_and_no_overlapping_panels() -> None:
    board = dashboard()
    assert board["uid"] == "watchdesk"
    assert board["title"]
    panels = all_panels(board)
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids))
    cells: dict[tuple[int, int], str] = {}
    for panel in board["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]
    for panel in query_panels(board):
        assert panel["targets"], panel["title"]
        refs = [target["refId"] for target in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]


def test_every_panel_query_and_variable_uses_the_provisioned_datasource() -> None:
    source = provisioned_datasource()
    assert source["uid"] == "prometheus"
    assert source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"
    expected = {"type": "prometheus", "uid": source["uid"]}
    board = dashboard()
    for panel in query_panels(board):
        assert panel["datasource"] == expected, panel["title"]
        for target in panel["targets"]:
            assert target.get("datasource", expected) == expected, panel["title"]
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            assert variable["datasource"] == expected, variable["name"]
    assert "__inputs" not in board  # provisioned as is: no import-time ${DS_...} to fill in


def test_the_dashboard_provider_loads_the_dashboards_folder() -> None:
    (provider,) = load_yaml(DASHBOARD_PROVIDERS)["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] in {"/var/lib/grafana/dashboards", "/etc/grafana/dashboards"}
    # The path is where deploy/grafana/dashboards must be mounted: the file says so.
    assert f"dashboards:{provider['options']['path']}" in DASHBOARD_PROVIDERS.read_text()


def test_the_customer_and_target_variables() -> None:
    variables = {v["name"]: v for v in dashboard()["templating"]["list"]}
    customer, target = variables["customer"], variables["target"]
    assert variable_query(customer) == "label_values(watchdesk_target_info, customer)"
    assert (
        variable_query(target)
        == 'label_values(watchdesk_target_info{customer=~"$customer"}, target)'
    )
    assert customer["includeAll"]
    assert customer["multi"]
    # "All" customers must match targets without one (customer="") too.
    assert customer["allValue"] == ".*"
    assert target["includeAll"]
    assert target["multi"]
    # "All" targets = the targets of the chosen customers, not ".*".
    assert not target.get("allValue")


def test_the_dashboard_shows_what_it_must() -> None:
    queries = "\n".join(expr for _, expr in panel_queries(dashboard()))
    for needed in [
        "watchdesk_target_up",
        *(f"watchdesk:target_uptime:ratio_{w}" for w in ("1d", "7d", "30d")),
        *(f"watchdesk:customer_uptime:ratio_{w}" for w in ("1d", "7d", "30d")),
        "watchdesk_probe_duration_seconds",
        "increase(watchdesk_incidents_opened_total",
        "increase(watchdesk_pages_total",
        'up{job="watchdesk"}',
        "watchdesk_outbox_pending",
        "watchdesk:schedule_lateness_seconds:p99_5m",
        "watchdesk_config_last_reload_successful",
        "increase(watchdesk_incidents_resolved_total",
        "increase(watchdesk_sla_breaches_total",
        "watchdesk_incident_ack_seconds_bucket",
        "watchdesk_incident_resolve_seconds_bucket",
        "watchdesk_sla_breaching",
        "sum by (tier)",
        "sum by (le, tier)",
    ]:
        assert needed in queries, needed
    # Per-target series follow the target variable (which follows the customer one), per-customer
    # series the customer variable.
    per_target = re.compile(
        r"(?<![\w:])(watchdesk_target_up|watchdesk_probe_duration_seconds"
        r"|watchdesk_incidents_opened_total|watchdesk_tls_cert_expiry_timestamp_seconds"
        r"|watchdesk:target_uptime:\w+|watchdesk:probe_failures:\w+)\b"
    )
    for title, expr in panel_queries(dashboard()):
        if per_target.search(expr):
            assert 'target=~"$target"' in expr, title
        if "watchdesk:customer_uptime:" in expr:
            assert 'customer=~"$customer"' in expr, title


def test_dashboard_queries_read_only_series_that_exist() -> None:
    recorded = set(recording_rules())
    for title, expr in panel_queries(dashboard()):
        assert not unknown_series(expr, recorded), (title, expr)


# ---- the live test ---------------------------------------------------------------------------


class _Site(BaseHTTPRequestHandler):
    """GET answers 200 "OK" (the probes); POST answers 400 (ticket and page webhooks refused)."""

    def do_GET(self) -> None:
        self._answer(200, b"OK")

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._answer(400, b'{"error": "refused by the test"}')

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@dataclass
class Sites:
    http_port: int
    tls_port: int
    ca_file: Path


@pytest.fixture
def sites(tmp_path: Path) -> Iterator[Sites]:
    ca = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(context)
    plain = ThreadingHTTPServer(("127.0.0.1", 0), _Site)
    secure = ThreadingHTTPServer(("127.0.0.1", 0), _Site)
    secure.socket = context.wrap_socket(secure.socket, server_side=True)
    servers = [plain, secure]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    yield Sites(plain.server_address[1], secure.server_address[1], ca_file)
    for server in servers:
        server.shutdown()
        server.server_close()


def agent_config(port: int, state_dir: Path, sites: Sites) -> str:
    web = f"http://127.0.0.1:{sites.http_port}"
    return f"""
[agent]
listen = "127.0.0.1:{port}"
state_dir = "{state_dir}"

[defaults]
interval = "500ms"
timeout = "400ms"
failure_threshold = 3
recovery_threshold = 2

[[targets]]
name = "web"
kind = "http"
url = "{web}/health"
contains = "OK"

[[targets]]
name = "db"
kind = "tcp"
host = "127.0.0.1"
port = {closed_port()}
customer = "acme"

[[targets]]
name = "cert"
kind = "tls"
host = "127.0.0.1"
port = {sites.tls_port}
server_name = "localhost"
ca_file = "{sites.ca_file}"
customer = "globex"

[customers.acme]
email = "it@acme.example"

[customers.globex]
email = "it@globex.example"

[ticketing]
backend = "webhook"
[ticketing.webhook]
url = "{web}/tickets"

[pagers.oncall]
type = "webhook"
url = "{web}/pages"

[escalation]
page_on_open = ["oncall"]
"""


def metric_value(text: str, line_start: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    return None


def wait_for_metrics(agent: AgentProcess, wanted: dict[str, float], timeout: float = 15) -> None:
    """Until every line of /metrics starting with a key has at least (for 0: exactly) that value."""
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = http_get(agent.base + "/metrics")[1].decode()
        values = {key: metric_value(text, key) for key in wanted}
        if all(
            value is not None and (value >= want if want else value == 0)
            for value, want in zip(values.values(), wanted.values(), strict=True)
        ):
            return
        time.sleep(0.05)
    raise AssertionError(f"agent metrics never reached {wanted}:\n{text}\n{agent.log()}")


class Prometheus:
    """A real Prometheus on a free port; ``stop`` always ends it."""

    def __init__(self, binary: str, workdir: Path, agent_port: int) -> None:
        workdir.mkdir()
        rule_files = []
        for path in RULE_FILES:
            # As shipped, except group intervals (the uptime group evaluates once a minute):
            # every group follows the 1s evaluation_interval here.
            rules = load_yaml(path)
            for group in rules["groups"]:
                group.pop("interval", None)
            copy = workdir / path.name
            copy.write_text(yaml.safe_dump(rules, sort_keys=False))
            rule_files.append(str(copy))
        config = {
            "global": {
                "scrape_interval": "1s",
                "scrape_timeout": "1s",
                "evaluation_interval": "1s",
            },
            "rule_files": rule_files,
            "scrape_configs": [
                {
                    "job_name": "watchdesk",
                    "static_configs": [{"targets": [f"127.0.0.1:{agent_port}"]}],
                }
            ],
        }
        config_path = workdir / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "prometheus.log"
        self._log = self.log_path.open("w")
        self.proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config_path}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text()[-4000:]

    def wait_ready(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"prometheus exited with {self.proc.returncode}:\n{self.log()}"
                )
            try:
                if http_get(self.base + "/-/ready", timeout=1)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"prometheus not ready after {timeout}s:\n{self.log()}")

    def api(self, path: str, **params: str) -> dict[str, Any]:
        url = f"{self.base}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return dict(json.load(response))
        except urllib.error.HTTPError as error:  # 400/422: a bad query; the body says why
            return dict(json.load(error))

    def query(self, expr: str) -> dict[str, Any]:
        return self.api("query", query=expr)

    def series_count(self, expr: str) -> int:
        answer = self.query(expr)
        return len(answer["data"]["result"]) if answer["status"] == "success" else 0

    def wait_for(self, what: str, ok: Any, timeout: float = 25) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ok():
                return
            time.sleep(0.2)
        raise AssertionError(f"prometheus: timed out waiting for {what}\n{self.log()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


@pytest.fixture
def prometheus_binary() -> str:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("prometheus is not installed (Debian package prometheus; .ci/run installs it)")
    return binary


def check_query(prometheus: Prometheus, what: str, expr: str) -> list[dict[str, Any]]:
    answer = prometheus.query(expr)
    assert answer["status"] == "success", f"{what}: {expr}\n{answer}"
    assert answer["data"]["resultType"] in {"vector", "scalar"}, (what, expr)
    result = answer["data"]["result"]
    return list(result) if answer["data"]["resultType"] == "vector" else [result]


def values_by(result: list[dict[str, Any]], label: str) -> dict[str, float]:
    return {sample["metric"][label]: float(sample["value"][1]) for sample in result}


@pytest.mark.slow
def test_every_dashboard_query_and_rule_works_against_a_real_agent_and_prometheus(
    tmp_path: Path,
    agents: list[AgentProcess],
    sites: Sites,
    prometheus_binary: str,
) -> None:
    assert set(ALERTS_WITH_DATA) | set(ALERTS_EMPTY) | set(ALERTS_EITHER) == set(alerting_rules())

    # The agent: verdicts, the refused ticket and page, then a refused reload; all before
    # Prometheus's first scrape, so every sample it sees is in that state.
    port = free_port()
    config = tmp_path / "config.toml"
    config.write_text(agent_config(port, tmp_path / "state", sites))
    agent = AgentProcess(config, port)
    agents.append(agent)
    agent.wait_ready()
    agent.wait_for(
        lambda s: (s["web"]["state"], s["db"]["state"], s["cert"]["state"]) == ("up", "down", "up"),
        what="web and cert up, db down",
    )
    wait_for_metrics(
        agent,
        {
            "watchdesk_ticket_operations_total"
            '{backend="webhook",operation="create",result="error"}': 1,
            'watchdesk_pages_total{pager="oncall",reason="open",result="error"}': 1,
            "watchdesk_outbox_pending ": 1,
        },
    )
    config.write_text(config.read_text() + "\nthis is not toml\n")
    agent.signal(signal.SIGHUP)
    wait_for_metrics(agent, {"watchdesk_config_last_reload_successful ": 0})

    prometheus = Prometheus(prometheus_binary, tmp_path / "prometheus", port)
    try:
        prometheus.wait_ready()
        prometheus.wait_for(
            "4 scrapes of the agent",
            lambda: prometheus.series_count('count_over_time(up{job="watchdesk"}[1m]) >= 4') == 1,
        )
        prometheus.wait_for(
            "every recording rule to be evaluated",
            lambda: all(prometheus.series_count(name) for name in recording_rules()),
        )

        # Prometheus itself: every rule evaluates without error (a bad join shows here).
        groups = prometheus.api("rules")["data"]["groups"]
        evaluated = {rule["name"]: rule for group in groups for rule in group["rules"]}
        assert set(evaluated) == set(recording_rules()) | set(alerting_rules())
        for name, rule in evaluated.items():
            assert rule["health"] == "ok", (name, rule.get("lastError"))

        # Every dashboard query runs, and returns data unless it needs what this run never
        # does (an incident resolved or worked).
        for title, expr in panel_queries(dashboard()):
            result = check_query(prometheus, f"panel {title!r}", substitute(expr))
            if title not in PANELS_WITHOUT_DATA_HERE:
                assert result, f"panel {title!r} has no data: {substitute(expr)}"

        # The variables' label_values() lists.
        customers = prometheus.api("label/customer/values", **{"match[]": "watchdesk_target_info"})
        assert customers["data"] == ["acme", "globex"]
        match = substitute('watchdesk_target_info{customer=~"$customer"}')
        targets = prometheus.api("label/target/values", **{"match[]": match})
        assert targets["data"] == ["cert", "db", "web"]
        only_acme = prometheus.api(
            "label/target/values", **{"match[]": 'watchdesk_target_info{customer=~"acme"}'}
        )
        assert only_acme["data"] == ["db"]

        # Every recording rule: its expression and its recorded series, with the right values.
        for name, expr in recording_rules().items():
            assert check_query(prometheus, name, expr), f"{name} has no data: {expr}"
            assert check_query(prometheus, name, name), f"{name} recorded nothing"
        for window in ("1d", "7d", "30d"):
            per_target = check_query(
                prometheus, "uptime", f"watchdesk:target_uptime:ratio_{window}"
            )
            assert values_by(per_target, "target") == {"web": 1.0, "db": 0.0, "cert": 1.0}
            per_customer = check_query(
                prometheus, "uptime", f"watchdesk:customer_uptime:ratio_{window}"
            )
            assert values_by(per_customer, "customer") == {"acme": 0.0, "globex": 1.0}

        # Every alert expression runs; which ones return series is known (see the top).
        for name, rule in alerting_rules().items():
            result = check_query(prometheus, name, rule["expr"])
            if name in ALERTS_WITH_DATA:
                assert result, f"{name} is empty, expected: {ALERTS_WITH_DATA[name]}"
            elif name in ALERTS_EMPTY:
                assert not result, f"{name} returned {result}, expected empty: {ALERTS_EMPTY[name]}"
        pager_errors = check_query(
            prometheus, "pages", alerting_rules()["WatchdeskPagerErrors"]["expr"]
        )
        assert [sample["metric"]["pager"] for sample in pager_errors] == ["oncall"]
    finally:
        prometheus.stop()
    assert prometheus.proc.returncode is not None
