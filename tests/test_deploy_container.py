"""deploy/container: the image, its config and the compose setup fit together.

No Docker engine is needed: the Dockerfile and compose.yaml are parsed and cross-checked, the
build context is rebuilt from the Dockerfile's COPY lines, and the image's HEALTHCHECK command
runs, as written, against a real agent.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import shutil
import site
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from tests.helpers import AgentProcess, closed_port, free_port, http_get, run_cli

ROOT = Path(__file__).resolve().parent.parent
CONTAINER = ROOT / "deploy" / "container"
DOCKERFILE = CONTAINER / "Dockerfile"
DOCKERIGNORE = CONTAINER / "Dockerfile.dockerignore"
COMPOSE = CONTAINER / "compose.yaml"
CONFIG = CONTAINER / "config.toml"
PROMETHEUS = CONTAINER / "prometheus.yml"
IMAGE_CONFIG_PATH = "/etc/watchdesk/config.toml"


# ---- Dockerfile ---------------------------------------------------------------------------


def parse_dockerfile(text: str) -> list[list[tuple[str, str]]]:
    """Stages of (INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    stages: list[list[tuple[str, str]]] = []
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if stripped.startswith("#"):  # also inside a continued instruction, as Docker does
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        line = (pending + stripped).strip()
        pending = ""
        if line:
            logical.append(line)
    for line in logical:
        instruction, _, arguments = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((instruction, " ".join(arguments.split())))
    return stages


@pytest.fixture(scope="module")
def stages() -> list[list[tuple[str, str]]]:
    return parse_dockerfile(DOCKERFILE.read_text())


def instructions(stage: list[tuple[str, str]], name: str) -> list[str]:
    return [arguments for instruction, arguments in stage if instruction == name]


def last(stage: list[tuple[str, str]], name: str) -> str:
    found = instructions(stage, name)
    assert found, f"no {name} in the stage"
    return found[-1]


def healthcheck_command(stage: list[tuple[str, str]]) -> list[str]:
    arguments = last(stage, "HEALTHCHECK")
    _, sep, command = arguments.partition("CMD ")
    assert sep, arguments
    argv = json.loads(command)  # exec form: no shell in the way
    assert isinstance(argv, list)
    return [str(item) for item in argv]


def container_config() -> dict[str, Any]:
    return tomllib.loads(CONFIG.read_text())


def listen_port() -> int:
    return int(container_config()["agent"]["listen"].rsplit(":", 1)[1])


def test_runtime_stage_is_slim_python_non_root(stages: list[list[tuple[str, str]]]) -> None:
    assert len(stages) == 2, "a build stage and a runtime stage"
    runtime = stages[-1]
    assert re.fullmatch(r"python:\$\{PYTHON_VERSION\}-slim", last(runtime, "FROM"))
    arguments = parse_dockerfile_preamble(DOCKERFILE.read_text())
    assert any(re.fullmatch(r"PYTHON_VERSION=3\.1[1-9]", a) for a in arguments), arguments
    user = last(runtime, "USER")
    uid, _, gid = user.partition(":")
    assert uid == "10001", "a numeric, non-root USER"
    assert gid in ("", "10001")
    assert "--uid 10001" in " ".join(instructions(runtime, "RUN"))


def parse_dockerfile_preamble(text: str) -> list[str]:
    """Arguments of the ARG lines before the first FROM (they belong to no stage)."""
    preamble: list[str] = []
    for line in text.splitlines():
        if line.startswith("FROM"):
            break
        if line.startswith("ARG "):
            preamble.append(line[4:].strip())
    return preamble


def test_state_port_signal_and_command(stages: list[list[tuple[str, str]]]) -> None:
    runtime = stages[-1]
    config = container_config()
    assert json.loads(last(runtime, "VOLUME")) == [config["agent"]["state_dir"]]
    assert last(runtime, "EXPOSE").split() == [str(listen_port())]
    assert config["agent"]["listen"] == f"0.0.0.0:{listen_port()}"
    assert last(runtime, "STOPSIGNAL") == "SIGTERM"
    assert json.loads(last(runtime, "ENTRYPOINT")) == ["watchdesk"]
    assert json.loads(last(runtime, "CMD")) == ["run", "-c", IMAGE_CONFIG_PATH]
    assert f"deploy/container/config.toml {IMAGE_CONFIG_PATH}" in instructions(runtime, "COPY")
    assert 'PATH="/opt/watchdesk/.venv/bin:${PATH}"' in last(runtime, "ENV")
    assert f"WATCHDESK_CONFIG={IMAGE_CONFIG_PATH}" in last(runtime, "ENV")


def test_healthcheck_targets_the_agents_port(stages: list[list[tuple[str, str]]]) -> None:
    argv = healthcheck_command(stages[-1])
    assert argv[:2] == ["python", "-c"]
    assert f"http://127.0.0.1:{listen_port()}/healthz" in argv[2]
    options = last(stages[-1], "HEALTHCHECK").partition("CMD ")[0]
    assert "--start-period=" in options
    assert "--timeout=" in options


def build_copies(stages: list[list[tuple[str, str]]]) -> list[tuple[str, str]]:
    """(source in the context, destination in the image) of every COPY from the context."""
    copies: list[tuple[str, str]] = []
    for stage in stages:
        workdir = "/"
        for instruction, arguments in stage:
            if instruction == "WORKDIR":
                workdir = arguments
            if instruction != "COPY" or arguments.startswith("--from"):
                continue
            *sources, destination = arguments.split()
            for source in sources:
                target = destination
                if not destination.startswith("/"):
                    target = f"{workdir.rstrip('/')}/{destination}"
                if target.endswith("/"):
                    target += Path(source).name
                copies.append((source, target))
    return copies


def project_packages() -> list[str]:
    """The top-level packages that `pip install .` puts in the image (pyproject.toml)."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    include = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    return sorted(name.rstrip("*") for name in include)


def test_every_package_is_copied(stages: list[list[tuple[str, str]]]) -> None:
    readme = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["readme"]
    copied = {source for source, _ in build_copies(stages[:1])}
    assert {*project_packages(), "pyproject.toml", readme} <= copied
    for source in copied:
        assert (ROOT / source).exists(), source


def dockerignore_patterns() -> list[str]:
    lines = DOCKERIGNORE.read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(out)


def ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    result = False
    for pattern in patterns:
        exclude = not pattern.startswith("!")
        regex = _pattern_regex(pattern.lstrip("!").strip("/"))
        if any(regex.fullmatch(prefix) for prefix in prefixes):
            result = exclude
    return result


def test_build_context_filter_keeps_sources_and_drops_the_rest(
    stages: list[list[tuple[str, str]]],
) -> None:
    patterns = dockerignore_patterns()
    for source, _ in build_copies(stages):
        files = (
            [source]
            if (ROOT / source).is_file()
            else [
                str(path.relative_to(ROOT))
                for path in (ROOT / source).rglob("*.py")
                if "__pycache__" not in path.parts
            ]
        )
        assert files, source
        for file in files:
            assert not ignored(file, patterns), f"{file} is copied but filtered out"
    for unwanted in [
        ".git/config",
        ".venv/bin/python",
        "state/watchdesk.sqlite3",
        "tests/test_agent.py",
        "config.toml",
        "monitor/__pycache__/cli.cpython-311.pyc",
        "deploy/container/watchdesk.env",
    ]:
        assert ignored(unwanted, patterns), unwanted


def test_copied_sources_alone_make_a_working_package(
    stages: list[list[tuple[str, str]]], tmp_path: Path
) -> None:
    """Rebuild the build stage's /src from its COPY lines only, then import every module of
    every package from there: a module or file the Dockerfile forgets shows up here."""
    context = tmp_path / "src"
    for source, target in build_copies(stages[:1]):
        assert target.startswith("/src/"), target
        destination = context / target.removeprefix("/src/")
        if (ROOT / source).is_dir():
            shutil.copytree(
                ROOT / source, destination, ignore=shutil.ignore_patterns("__pycache__")
            )
        else:
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / source, destination)
    packages = project_packages()
    script = (
        "import importlib, pkgutil, sys\n"
        f"for name in {packages!r}:\n"
        "    package = importlib.import_module(name)\n"
        "    for info in pkgutil.walk_packages(package.__path__, name + '.'):\n"
        "        if not info.name.endswith('__main__'):\n"
        "            importlib.import_module(info.name)\n"
        "for name, module in list(sys.modules.items()):\n"
        f"    if name.split('.')[0] in {packages!r}:\n"
        f"        assert module.__file__.startswith({str(context)!r}), module.__file__\n"
        "from monitor.cli.main import main\n"
        "sys.exit(main(['--version']))\n"
    )
    # -S: no site hooks, so the test environment's editable install of this repository cannot
    # supply what the copied tree lacks; the dependencies come from site-packages explicitly.
    search_path = [str(context), *site.getsitepackages()]
    result = subprocess.run(
        [sys.executable, "-S", "-c", script],
        cwd=context,
        env={"PYTHONPATH": os.pathsep.join(search_path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("watchdesk ")


def test_container_config_is_valid() -> None:
    result = run_cli("check-config", "-c", str(CONFIG))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{CONFIG}: ok")


# ---- the HEALTHCHECK command, run for real ------------------------------------------------


def run_healthcheck(argv: list[str], port: int) -> subprocess.CompletedProcess[str]:
    default = f"127.0.0.1:{listen_port()}/"
    assert default in argv[2]
    command = [sys.executable, *argv[1:2], argv[2].replace(default, f"127.0.0.1:{port}/")]
    return subprocess.run(command, capture_output=True, text=True, timeout=30)


@pytest.fixture
def unhealthy_server() -> Iterator[int]:
    """Answers 503 on every path, as /healthz does when the scheduler has stalled."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(503)
            self.send_header("Content-Length", "7")
            self.end_headers()
            self.wfile.write(b"stalled")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


@pytest.mark.slow
def test_healthcheck_command_against_a_real_agent(
    stages: list[list[tuple[str, str]]],
    tmp_path: Path,
    agents: list[AgentProcess],
    unhealthy_server: int,
) -> None:
    argv = healthcheck_command(stages[-1])
    port = free_port()
    config = tmp_path / "config.toml"
    config.write_text(
        f"""
[agent]
listen = "127.0.0.1:{port}"
state_dir = "{tmp_path / "state"}"

[[targets]]
name = "self"
kind = "http"
url = "http://127.0.0.1:{port}/healthz"
interval = "1s"
timeout = "1s"
"""
    )
    agent = AgentProcess(config, port)
    agents.append(agent)
    agent.wait_ready()
    assert http_get(agent.base + "/healthz")[0] == 200

    healthy = run_healthcheck(argv, port)
    assert healthy.returncode == 0, healthy.stderr

    refused = run_healthcheck(argv, closed_port())
    assert refused.returncode == 1, refused.stderr
    assert "Connection refused" in refused.stderr

    stalled = run_healthcheck(argv, unhealthy_server)
    assert stalled.returncode == 1, stalled.stderr
    assert "503" in stalled.stderr


# ---- compose.yaml -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(document, dict)
    return document


def container_ports(service: dict[str, Any]) -> set[int]:
    """Container-side ports of "host_ip:host:container" / "host:container" entries."""
    return {int(str(entry).split(":")[-1].split("/")[0]) for entry in service.get("ports", [])}


def mounts(service: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """{target: (source, mode)} from the short volume syntax."""
    found: dict[str, tuple[str, str]] = {}
    for entry in service.get("volumes", []):
        source, target, *mode = str(entry).split(":")
        found[target] = (source, mode[0] if mode else "rw")
    return found


def sysctls(service: dict[str, Any]) -> dict[str, str]:
    """{name: value} from the list form ("name=value"), the one podman-compose 1.0 reads (it
    passes a mapping's keys alone to --sysctl), or from a mapping."""
    entries = service.get("sysctls", [])
    assert isinstance(entries, list), "sysctls: use the list form, NAME=VALUE"
    return dict(str(entry).split("=", 1) for entry in entries)


def test_services_and_ports(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"watchdesk", "prometheus", "grafana"}
    assert container_ports(services["watchdesk"]) == {listen_port()}
    assert container_ports(services["prometheus"]) == {9090}
    assert container_ports(services["grafana"]) == {3000}


def test_watchdesk_service_builds_this_image(compose: dict[str, Any]) -> None:
    build = compose["services"]["watchdesk"]["build"]
    context = (CONTAINER / build["context"]).resolve()
    assert context == ROOT
    assert (context / build["dockerfile"]).resolve() == DOCKERFILE


def test_watchdesk_service_state_config_and_icmp(
    compose: dict[str, Any], stages: list[list[tuple[str, str]]]
) -> None:
    service = compose["services"]["watchdesk"]
    volumes = mounts(service)
    state_dir = container_config()["agent"]["state_dir"]
    state_source, _ = volumes[state_dir]
    assert state_source in compose["volumes"], "the state lives on a named volume"
    config_source, mode = volumes[IMAGE_CONFIG_PATH]
    assert (CONTAINER / config_source).resolve() == CONFIG
    assert mode == "ro"
    # ICMP without capabilities: the image's group must be in the ping range.
    low, high = map(int, sysctls(service)["net.ipv4.ping_group_range"].split())
    gid = int(last(stages[-1], "USER").partition(":")[2] or last(stages[-1], "USER"))
    assert low <= gid <= high
    assert service["cap_drop"] == ["ALL"]
    assert service["ulimits"]["nofile"]["soft"] >= 16384
    assert "NET_RAW" not in service.get("cap_add", [])
    # The image's HEALTHCHECK stays in force.
    assert "healthcheck" not in service
    # The env_file exists (it ships with comments only), so the stack starts as it is, and
    # it is in the short form: podman-compose before 1.1 reads strings only.
    env_files = service.get("env_file", [])
    for entry in [env_files] if isinstance(env_files, str) else env_files:
        assert isinstance(entry, str), f"env_file {entry!r}: use the plain string form"
        assert (CONTAINER / entry).is_file(), entry


def test_bind_mounts_exist(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for target, (source, _) in mounts(service).items():
            if source.startswith((".", "/")):
                assert (CONTAINER / source).exists(), f"{name}: {source} -> {target}"


def test_prometheus_scrapes_the_agent_and_loads_the_rules(compose: dict[str, Any]) -> None:
    service = compose["services"]["prometheus"]
    volumes = mounts(service)
    command = service["command"]
    config_target = next(a.split("=", 1)[1] for a in command if a.startswith("--config.file="))
    assert (CONTAINER / volumes[config_target][0]).resolve() == PROMETHEUS
    retention = next(a for a in command if a.startswith("--storage.tsdb.retention.time="))
    assert int(re.fullmatch(r".*=(\d+)d", retention).group(1)) > 30  # type: ignore[union-attr]

    prometheus = yaml.safe_load(PROMETHEUS.read_text())
    jobs = {job["job_name"]: job for job in prometheus["scrape_configs"]}
    targets = [t for sc in jobs["watchdesk"]["static_configs"] for t in sc["targets"]]
    assert targets == [f"watchdesk:{listen_port()}"]
    (rule_glob,) = prometheus["rule_files"]
    rules_target = str(Path(rule_glob).parent)
    rules_dir = (CONTAINER / volumes[rules_target][0]).resolve()
    assert rules_dir == ROOT / "deploy" / "prometheus" / "rules"
    assert list(rules_dir.glob(Path(rule_glob).name)), "no rule file would be loaded"


def test_prometheus_config_passes_promtool(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian package: prometheus)")
    prometheus = yaml.safe_load(PROMETHEUS.read_text())
    rules = ROOT / "deploy" / "prometheus" / "rules"
    prometheus["rule_files"] = [str(rules / Path(rule).name) for rule in prometheus["rule_files"]]
    copy = tmp_path / "prometheus.yml"
    copy.write_text(yaml.safe_dump(prometheus))
    result = subprocess.run(
        [promtool, "check", "config", str(copy)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_grafana_provisioning_matches_the_mounts(compose: dict[str, Any]) -> None:
    volumes = mounts(compose["services"]["grafana"])
    provisioning = (CONTAINER / volumes["/etc/grafana/provisioning"][0]).resolve()
    dashboards_target = "/var/lib/grafana/dashboards"
    dashboards = (CONTAINER / volumes[dashboards_target][0]).resolve()
    assert provisioning == ROOT / "deploy" / "grafana" / "provisioning"
    assert dashboards == ROOT / "deploy" / "grafana" / "dashboards"
    providers = list((provisioning / "dashboards").glob("*.y*ml"))
    datasources = list((provisioning / "datasources").glob("*.y*ml"))
    if not providers or not datasources:
        pytest.skip("deploy/grafana/provisioning is not written yet")
    paths = [
        provider["options"]["path"]
        for path in providers
        for provider in yaml.safe_load(path.read_text()).get("providers", [])
    ]
    assert dashboards_target in paths
    urls = [
        source["url"]
        for path in datasources
        for source in yaml.safe_load(path.read_text()).get("datasources", [])
        if source.get("type") == "prometheus"
    ]
    assert urls, "no Prometheus datasource"
    for url in urls:
        parts = urlsplit(url)
        assert parts.hostname in compose["services"], url
        assert parts.port in container_ports(compose["services"][parts.hostname]), url


def test_config_targets_exist_on_the_compose_network(compose: dict[str, Any]) -> None:
    services = compose["services"]
    reachable = {"127.0.0.1", "localhost", *services}
    for target in container_config()["targets"]:
        host = urlsplit(target["url"]).hostname if "url" in target else target["host"]
        assert host in reachable, target["name"]
        if "url" in target and host in services:
            port = urlsplit(target["url"]).port
            assert port in container_ports(services[host]), target["name"]


def _dist(requirement: str) -> str:
    """A requirement's distribution name, normalised (PEP 503): "psycopg[binary]>=3" -> psycopg."""
    name = re.split(r"[\[<>=!~;\s]", requirement.strip(), maxsplit=1)[0]
    return re.sub(r"[-_.]+", "-", name).lower()


def test_the_image_lock_pins_every_runtime_dependency() -> None:
    """The image installs the lock, then the project with --no-deps and ``pip check``: a
    dependency added to pyproject.toml but not to the lock breaks the image build (run
    deploy/container/update-lock.sh)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {_dist(requirement) for requirement in project["dependencies"]}
    lock = (ROOT / "deploy" / "container" / "requirements.lock").read_text().splitlines()
    pinned = {_dist(line) for line in lock if line.strip() and not line.startswith("#")}
    assert wanted <= pinned, f"not in requirements.lock: {sorted(wanted - pinned)}"
