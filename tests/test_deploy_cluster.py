"""The cluster's deployment files fit together: deploy/container/compose.cluster.yaml (PostgreSQL
and two agents on one config), its secrets script, and the systemd drop-in for an agent of a
cluster.

No container engine is needed for most: the files are parsed and cross-checked, the secrets
script runs for real into a temporary directory, the agents' health check command runs as
written against a real agent on PostgreSQL (and says "unhealthy" once its database link is cut),
and `systemd-analyze verify` reads the unit with the drop-in. With podman-compose installed,
``make test-container`` also checks what podman-compose makes of the compose file (a dry run:
the PostgreSQL image is on a registry this machine cannot reach).
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import time
import tomllib
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from psycopg.conninfo import conninfo_to_dict

from tests.helpers import AgentProcess, free_port, run_cli
from tests.pg import PostgresServer, database_name
from tests.tcpproxy import TcpProxy
from tests.test_deploy_container import dockerignore_patterns, ignored, mounts, sysctls
from tests.test_deploy_systemd import parse_unit

ROOT = Path(__file__).resolve().parent.parent
CONTAINER = ROOT / "deploy" / "container"
COMPOSE = CONTAINER / "compose.cluster.yaml"
SINGLE = CONTAINER / "compose.yaml"
CONFIG = CONTAINER / "config.cluster.toml"
SECRETS_SCRIPT = CONTAINER / "cluster-secrets.sh"
IMAGE_CONFIG_PATH = "/etc/watchdesk/config.toml"
AGENTS = ("watchdesk-1", "watchdesk-2")
SYSTEMD = ROOT / "deploy" / "systemd"
DROP_IN = SYSTEMD / "watchdesk.service.d" / "cluster.conf.example"
INSTALLED_WATCHDESK = "/opt/watchdesk/.venv/bin/watchdesk"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE.read_text())  # resolves the x-agent merge keys
    assert isinstance(document, dict)
    return document


def config() -> dict[str, Any]:
    return tomllib.loads(CONFIG.read_text())


def listen_port() -> int:
    return int(config()["agent"]["listen"].rsplit(":", 1)[1])


def shell_check(service: dict[str, Any]) -> str:
    """The health check's command: the CMD-SHELL form (podman-compose 1.0 breaks CMD lists)."""
    kind, command = service["healthcheck"]["test"]
    assert kind == "CMD-SHELL"
    return str(command)


# ---- compose.cluster.yaml -----------------------------------------------------------------


def test_a_database_and_two_agents_on_one_config(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"postgres", *AGENTS}
    for name in AGENTS:
        source, mode = mounts(services[name])[IMAGE_CONFIG_PATH]
        assert (CONTAINER / source).resolve() == CONFIG, "every agent reads the same file"
        assert mode == "ro"
        assert services[name]["image"] == "watchdesk:latest"
    host_ports = [str(services[n]["ports"][0]).rsplit(":", 1)[0] for n in AGENTS]
    assert len(set(host_ports)) == 2, host_ports
    for name in AGENTS:
        assert str(services[name]["ports"][0]).endswith(f":{listen_port()}")
    section = config()["cluster"]
    assert section["vantage"], "one vantage: the agents split the targets between them"
    assert "database_url_env" not in section


def test_the_first_agent_migrates_and_the_second_waits_for_it(compose: dict[str, Any]) -> None:
    services = compose["services"]
    first, second = (services[name] for name in AGENTS)
    assert first["command"] == ["run", "-c", IMAGE_CONFIG_PATH, "--migrate"]
    assert second["command"] == ["run", "-c", IMAGE_CONFIG_PATH]
    assert first["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert second["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "watchdesk-1": {"condition": "service_healthy"},
    }


def test_the_database_url_is_a_file_never_the_environment(compose: dict[str, Any]) -> None:
    services = compose["services"]
    url_file = config()["cluster"]["database_url_file"]
    for name in AGENTS:
        source, mode = mounts(services[name])[url_file]
        assert source == "./secrets/watchdesk_database_url"
        assert mode == "ro"
        assert "environment" not in services[name]
    postgres = services["postgres"]
    password_file = postgres["environment"]["POSTGRES_PASSWORD_FILE"]
    assert mounts(postgres)[password_file] == ("./secrets/postgres_password", "ro")
    assert "POSTGRES_PASSWORD" not in postgres["environment"]
    text = COMPOSE.read_text() + CONFIG.read_text()
    assert "postgresql://watchdesk:PASSWORD@" in text  # the shape, in comments only
    assert not any("postgresql://" in str(v) for v in postgres["environment"].values())
    # Kept out of git and out of the image's build context.
    assert "deploy/container/secrets/" in (ROOT / ".gitignore").read_text().splitlines()
    assert ignored("deploy/container/secrets/watchdesk_database_url", dockerignore_patterns())


def test_health_checks(compose: dict[str, Any]) -> None:
    services = compose["services"]
    postgres = services["postgres"]
    env = postgres["environment"]
    assert shell_check(postgres) == f"pg_isready -U {env['POSTGRES_USER']} -d {env['POSTGRES_DB']}"
    for name in AGENTS:
        command = shell_check(services[name])
        assert f"http://127.0.0.1:{listen_port()}/readyz" in command
        assert services[name]["healthcheck"]["start_period"]


def test_agents_are_hardened_as_in_the_single_agent_compose(compose: dict[str, Any]) -> None:
    single = yaml.safe_load(SINGLE.read_text())["services"]["watchdesk"]
    for name in AGENTS:
        service = compose["services"][name]
        for key in ("cap_drop", "security_opt", "read_only", "tmpfs", "ulimits", "env_file"):
            assert service[key] == single[key], (name, key)
        assert sysctls(service) == sysctls(single)
        assert service["restart"] == "unless-stopped"


def test_config_targets_exist_on_the_compose_network(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for target in config()["targets"]:
        host = urlsplit(target["url"]).hostname if "url" in target else target["host"]
        assert host in services, target["name"]


def test_secrets_script_makes_both_files_once(tmp_path: Path, compose: dict[str, Any]) -> None:
    where = tmp_path / "secrets"
    first = subprocess.run([str(SECRETS_SCRIPT), str(where)], capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    password = (where / "postgres_password").read_text().strip()
    url = (where / "watchdesk_database_url").read_text().strip()
    assert len(password) >= 32
    assert password not in first.stdout + first.stderr
    assert stat.S_IMODE(where.stat().st_mode) == 0o700
    assert stat.S_IMODE((where / "watchdesk_database_url").stat().st_mode) == 0o644
    parts = conninfo_to_dict(url)
    env = compose["services"]["postgres"]["environment"]
    assert parts == {
        "user": env["POSTGRES_USER"],
        "password": password,
        "host": "postgres",
        "port": "5432",
        "dbname": env["POSTGRES_DB"],
    }
    again = subprocess.run([str(SECRETS_SCRIPT), str(where)], capture_output=True, text=True)
    assert again.returncode == 0
    assert "kept" in again.stdout
    assert (where / "watchdesk_database_url").read_text().strip() == url

    # The config as the agents read it, with the URL file where the container has it.
    text = CONFIG.read_text().replace(
        config()["cluster"]["database_url_file"], str(where / "watchdesk_database_url")
    )
    copy = tmp_path / "config.toml"
    copy.write_text(text.replace("/var/lib/watchdesk", str(tmp_path / "state")))
    checked = run_cli("check-config", "-c", str(copy))
    assert checked.returncode == 0, checked.stderr
    assert password not in checked.stdout + checked.stderr


def test_secrets_script_refuses_what_docker_made_of_a_missing_file(tmp_path: Path) -> None:
    where = tmp_path / "secrets"
    (where / "watchdesk_database_url").mkdir(parents=True)
    result = subprocess.run([str(SECRETS_SCRIPT), str(where)], capture_output=True, text=True)
    assert result.returncode == 1
    assert "is a directory" in result.stderr


@pytest.mark.slow
@pytest.mark.cluster
def test_the_agents_health_check_against_a_real_agent_on_postgresql(
    compose: dict[str, Any], tmp_path: Path, pg_server: PostgresServer
) -> None:
    """Healthy while the agent reaches its database; unhealthy once the link is cut, though the
    agent still runs and probes (so `ps` shows which agent is cut off)."""
    command = shell_check(compose["services"]["watchdesk-1"])
    url = pg_server.new_database()
    port = free_port()
    config_path = tmp_path / "config.toml"
    config_path.write_text(
        f'[agent]\nlisten = "127.0.0.1:{port}"\nstate_dir = "{tmp_path / "state"}"\n'
        '[[targets]]\nname = "self"\nkind = "http"\n'
        f'url = "http://127.0.0.1:{port}/healthz"\n'
        '[cluster]\ndatabase_url_env = "WD_TEST_DATABASE_URL"\nvantage = "compose"\n'
    )
    check = command.replace(f"127.0.0.1:{listen_port()}/", f"127.0.0.1:{port}/")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    with TcpProxy(pg_server.host, pg_server.port) as proxy:
        through = pg_server.tcp_url(database_name(url), proxy.port)
        agent = AgentProcess(config_path, port, env={"WD_TEST_DATABASE_URL": through})
        try:
            agent.wait_ready(timeout=30)
            healthy = subprocess.run(["/bin/sh", "-c", check], env=env, capture_output=True)
            assert healthy.returncode == 0, healthy.stderr
            proxy.cut("reset")
            unhealthy = subprocess.run(["/bin/sh", "-c", check], env=env, capture_output=True)
            assert unhealthy.returncode == 1, unhealthy.stderr
            assert b"503" in unhealthy.stderr
            assert agent.proc.poll() is None
            proxy.heal()  # a stop with the database unreachable is the cluster tests' matter
            # Healthy again once the agent has renewed its leases (within a renew, 5 s).
            deadline = time.monotonic() + 15
            while True:
                healthy = subprocess.run(["/bin/sh", "-c", check], env=env, capture_output=True)
                if healthy.returncode == 0 or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            assert healthy.returncode == 0, healthy.stderr
        finally:
            agent.stop()
            pg_server.drop(url)


@pytest.mark.container
@pytest.mark.skipif(shutil.which("podman-compose") is None, reason="podman-compose not installed")
def test_podman_compose_reads_the_cluster_file() -> None:
    """podman-compose (Debian's 1.0.x too) turns the three services into the right `podman run`s:
    the URL file mounted where the config reads it, --migrate on the first agent only, health
    checks that survive its quoting. A dry run (it still makes the volumes and the network)."""
    project = f"watchdesk-cluster-test-{uuid.uuid4().hex[:8]}"
    command = [
        "podman-compose", "--dry-run", "-p", project,
        "-f", str(COMPOSE), "up", "-d", "--no-build",
    ]  # fmt: skip
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    finally:
        leftovers = [
            ("volume", f"{project}_postgres-data"),
            ("volume", f"{project}_watchdesk-tickets"),
            ("network", f"{project}_default"),
        ]
        for kind, name in leftovers:
            subprocess.run(
                ["podman", kind, "rm", "--force", name], check=False, capture_output=True
            )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    runs = {
        line.split("--name=", 1)[1].split()[0]: line
        for line in output.splitlines()
        if line.startswith("podman run ")
    }
    assert set(runs) == {f"{project}_{name}_1" for name in ("postgres", *AGENTS)}
    url_file = config()["cluster"]["database_url_file"]
    for name in AGENTS:
        run = runs[f"{project}_{name}_1"]
        assert f"-v {CONTAINER / 'secrets' / 'watchdesk_database_url'}:{url_file}:ro " in run
        assert f"-v {CONFIG}:{IMAGE_CONFIG_PATH}:ro " in run
        assert "--healthcheck-command /bin/sh -c 'python -c " in run
        assert "--cap-drop ALL" in run
        assert run.endswith("--migrate") == (name == "watchdesk-1")
    postgres = runs[f"{project}_postgres_1"]
    assert "--healthcheck-command /bin/sh -c 'pg_isready -U watchdesk -d watchdesk'" in postgres


# ---- the systemd drop-in ------------------------------------------------------------------


def test_the_drop_in_loads_the_url_as_a_credential_and_migrates() -> None:
    unit = parse_unit(DROP_IN.read_text())
    service = dict(unit["Service"])
    name, _, source = service["LoadCredential"].partition(":")
    assert source.startswith("/etc/watchdesk/credentials/")
    literal = f"/run/credentials/watchdesk.service/{name}"
    assert f'database_url_file = "{literal}"' in DROP_IN.read_text()
    starts = [value for key, value in unit["Service"] if key == "ExecStart"]
    assert starts == ["", f"{INSTALLED_WATCHDESK} run -c /etc/watchdesk/config.toml --migrate"]
    assert dict(unit["Unit"])["After"] == "postgresql.service"
    assert "Requires" not in dict(unit["Unit"])  # the agent outlives its database by design
    assert "Environment" not in service


def test_systemd_analyze_verify_with_the_drop_in(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (Debian package: systemd)")
    installed = Path(sys.executable).parent / "watchdesk"
    if not installed.exists():
        pytest.skip(f"no watchdesk console script beside {sys.executable}")
    (tmp_path / "watchdesk.service.d").mkdir()
    for source, target in (
        (SYSTEMD / "watchdesk.service", tmp_path / "watchdesk.service"),
        (DROP_IN, tmp_path / "watchdesk.service.d" / "cluster.conf"),
    ):
        target.write_text(source.read_text().replace(INSTALLED_WATCHDESK, str(installed)))
    result = subprocess.run(
        [analyze, "verify", "watchdesk.service"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "SYSTEMD_UNIT_PATH": f"{tmp_path}:"},
    )
    said = result.stdout + result.stderr
    ours = [line for line in said.splitlines() if "watchdesk" in line or "Unknown" in line]
    assert not ours, said
    assert result.returncode == 0, said
