"""deploy/container/Dockerfile, built and run for real with podman (`make test-container`).

One image is built per run (layers cached by podman between runs), then:

* a first container runs it hardened as compose.yaml does (uid 10001, --cap-drop ALL,
  no-new-privileges, read-only root, a /tmp tmpfs, the ping_group_range sysctl, a state
  volume) with a test config: an HTTP target on the agent itself, an ICMP target on 127.0.0.1
  and a TCP target on a closed port, which opens an incident and a ticket (local backend);
* /healthz, the ICMP probe, the image's HEALTHCHECK and `podman exec ... watchdesk tickets`
  are checked on it, then `podman stop` (exit 0, in under 10 s);
* a second container on the same volume must see the first one's incident and ticket.

Marked `container`: `make pytest` leaves it out; `make test-container` runs
deploy/container/test/prepare.sh (podman, runc, the base image) and then this file. Without
podman every test skips. The tests share the containers: run them in file order.

Environment: WATCHDESK_PODMAN_RUNTIME (default: runc when installed; "" for podman's own
default), WATCHDESK_TEST_IMAGE (an image already built: skip the build).
"""

from __future__ import annotations

import configparser
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
CONTAINER_DIR = ROOT / "deploy" / "container"
DOCKERFILE = CONTAINER_DIR / "Dockerfile"
LOCK = CONTAINER_DIR / "requirements.lock"
STATE_DIR = "/var/lib/watchdesk"
CONFIG_PATH = "/etc/watchdesk/config.toml"
PING_RANGE = "net.ipv4.ping_group_range=0 2147483647"

pytestmark = [
    pytest.mark.container,
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("podman") is None,
        reason="podman is not installed (make test-container installs it with apt-get)",
    ),
]

RUN_ID = uuid.uuid4().hex[:8]


# ---- podman --------------------------------------------------------------------------------


def podman_base() -> list[str]:
    """podman, with runc where installed: Debian's crun fails on hybrid cgroup v1/v2 hosts."""
    default = "runc" if shutil.which("runc") else ""
    runtime = os.environ.get("WATCHDESK_PODMAN_RUNTIME", default)
    return ["podman", *(["--runtime", runtime] if runtime else [])]


def ulimit_args() -> list[str]:
    """Limits the host can grant: podman asks for nofile/nproc above a capped hard limit (as
    in some CI sandboxes), which the runtime then fails to set ("error setting rlimits")."""
    args: list[str] = []
    for name, limit, cap in [
        ("nofile", resource.RLIMIT_NOFILE, 65536),
        ("nproc", resource.RLIMIT_NPROC, 32768),
    ]:
        hard = resource.getrlimit(limit)[1]
        value = cap if hard == resource.RLIM_INFINITY else min(hard, cap)
        args += ["--ulimit", f"{name}={value}:{value}"]
    return args


def podman(*args: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [*podman_base(), *args], capture_output=True, text=True, timeout=timeout
    )
    if check:
        assert result.returncode == 0, (
            f"podman {' '.join(args)} -> {result.returncode}\n{result.stdout}\n{result.stderr}"
        )
    return result


def inspect(name: str, template: str) -> str:
    return podman("inspect", "--format", template, name).stdout.strip()


def pip_build_config(tmp: Path) -> list[str]:
    """`podman build` volumes that give pip in the build the host's pip settings: its index
    (a mirror, or PyPI through a proxy) and its CA bundle. Docker has no build volumes; this is
    for the test only and changes nothing in the Dockerfile."""
    listing = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, timeout=30
    ).stdout
    settings: dict[str, str] = {}
    for line in listing.splitlines():
        key, _, value = line.partition("=")
        option = key.rsplit(".", 1)[-1]
        settings[option] = value.strip().strip("'\"")
    for option in ("index-url", "extra-index-url", "trusted-host", "cert", "proxy"):
        env = os.environ.get("PIP_" + option.upper().replace("-", "_"))
        if env:
            settings[option] = env
    volumes: list[str] = []
    pip_conf = configparser.RawConfigParser()
    pip_conf["global"] = {}
    for option in ("index-url", "extra-index-url"):
        # A file:// index lies on the host's disk: the build cannot see it.
        urls = [u for u in settings.get(option, "").split() if u.startswith(("http:", "https:"))]
        if urls:
            pip_conf["global"][option] = " ".join(urls)
    for option in ("trusted-host", "proxy", "timeout", "default-timeout", "retries"):
        if settings.get(option):
            pip_conf["global"][option] = settings[option]
    cert = settings.get("cert") or os.environ.get("SSL_CERT_FILE", "")
    if cert and Path(cert).is_file():
        pip_conf["global"]["cert"] = cert
        # At its own path (pip's cert) and as Debian's bundle (python's ssl module's default).
        for target in dict.fromkeys([cert, "/etc/ssl/certs/ca-certificates.crt"]):
            volumes += ["-v", f"{cert}:{target}:ro"]
    conf = tmp / "pip.conf"
    with conf.open("w") as file:
        pip_conf.write(file)
    conf.chmod(0o644)
    return [*volumes, "-v", f"{conf}:/etc/pip.conf:ro"]


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> str:
    prebuilt = os.environ.get("WATCHDESK_TEST_IMAGE")
    if prebuilt:
        return prebuilt
    tag = "localhost/watchdesk:container-test"
    started = time.monotonic()
    result = podman(
        "build",
        # docker format: the OCI image format has no HEALTHCHECK, podman would drop it.
        "--format",
        "docker",
        *ulimit_args(),
        *pip_build_config(tmp_path_factory.mktemp("build")),
        "-f",
        str(DOCKERFILE),
        "-t",
        tag,
        str(ROOT),
        timeout=480,
        check=False,
    )
    assert result.returncode == 0, (
        "podman build failed (the base image python:3.11-slim: "
        "deploy/container/test/base-image.sh builds a stand-in without a registry)\n"
        + result.stdout[-4000:]
        + result.stderr[-4000:]
    )
    print(f"\nimage {tag} built in {time.monotonic() - started:.0f} s")
    return tag


# ---- the containers ------------------------------------------------------------------------


TEST_CONFIG = """
[agent]
listen = "0.0.0.0:9430"
state_dir = "/var/lib/watchdesk"
timezone = "UTC"

[defaults]
interval = "1s"
timeout = "1s"
failure_threshold = 2
recovery_threshold = 1

[[targets]]
name = "self"
kind = "http"
url = "http://127.0.0.1:9430/healthz"

[[targets]]
name = "loopback-ping"
kind = "icmp"
host = "127.0.0.1"
packets = 1

[[targets]]
name = "closed-port"
kind = "tcp"
host = "127.0.0.1"
port = 1

[ticketing]
backend = "local"
"""


@pytest.fixture(scope="module")
def config_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("config")
    directory.chmod(0o755)
    path = directory / "config.toml"
    path.write_text(TEST_CONFIG)
    path.chmod(0o644)  # read by uid 10001 through the bind mount
    return path


@pytest.fixture(scope="module")
def volume() -> Iterator[str]:
    name = f"watchdesk-test-state-{RUN_ID}"
    podman("volume", "create", name)
    yield name
    podman("volume", "rm", "--force", name, check=False)


def hardened_run_args(config_file: Path) -> list[str]:
    """What compose.yaml asks for, as `podman run` flags."""
    return [
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        "--read-only",
        "--tmpfs",
        "/tmp",
        "--sysctl",
        PING_RANGE,
        "-v",
        f"{config_file}:{CONFIG_PATH}:ro",
        *ulimit_args(),
    ]


class Container:
    def __init__(self, name: str) -> None:
        self.name = name
        address = podman("port", name, "9430/tcp").stdout.strip().splitlines()[0]
        self.base = "http://" + address.replace("0.0.0.0", "127.0.0.1")

    def get(self, path: str) -> tuple[int, Any]:
        try:
            with urllib.request.urlopen(self.base + path, timeout=5) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, None

    def wait_healthz(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            try:
                status, _ = self.get("/healthz")
                if status == 200:
                    return
                last = status
            except OSError as error:
                last = error
            time.sleep(0.3)
        logs = podman("logs", self.name, check=False)
        pytest.fail(f"/healthz not 200 after {timeout} s: {last}\n{logs.stdout}{logs.stderr}")

    def target(self, name: str) -> dict[str, Any]:
        status, body = self.get("/api/status")
        assert status == 200
        return next(row for row in body if row["target"] == name)

    def wait_target(self, name: str, state: str, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        row = self.target(name)
        while row["state"] != state and time.monotonic() < deadline:
            time.sleep(0.3)
            row = self.target(name)
        assert row["state"] == state, row
        return row

    def tickets(self) -> list[dict[str, Any]]:
        result = podman("exec", self.name, "watchdesk", "tickets", "--all", "--json")
        rows = json.loads(result.stdout)
        assert isinstance(rows, list)
        return rows


def start(image: str, name: str, volume: str, config_file: Path) -> Container:
    podman(
        "run",
        "--detach",
        "--name",
        name,
        "--publish",
        "127.0.0.1::9430",
        "-v",
        f"{volume}:{STATE_DIR}",
        *hardened_run_args(config_file),
        image,
    )
    container = Container(name)
    container.wait_healthz()
    return container


def remove(name: str) -> None:
    podman("rm", "--force", "--time", "0", name, check=False)


@pytest.fixture(scope="module")
def first(image: str, volume: str, config_file: Path) -> Iterator[Container]:
    name = f"watchdesk-test-first-{RUN_ID}"
    try:
        yield start(image, name, volume, config_file)
    finally:
        remove(name)


@pytest.fixture(scope="module")
def first_stop(first: Container) -> tuple[float, int, list[dict[str, Any]]]:
    """Stop the first container: (seconds `podman stop` took, exit code, tickets before)."""
    tickets = first.tickets()
    started = time.monotonic()
    podman("stop", "--time", "10", first.name, timeout=30)
    took = time.monotonic() - started
    return took, int(inspect(first.name, "{{.State.ExitCode}}")), tickets


@pytest.fixture(scope="module")
def second(
    image: str,
    volume: str,
    config_file: Path,
    first_stop: tuple[float, int, list[dict[str, Any]]],
) -> Iterator[Container]:
    name = f"watchdesk-test-second-{RUN_ID}"
    try:
        yield start(image, name, volume, config_file)
    finally:
        remove(name)


# ---- the image -----------------------------------------------------------------------------


def test_image_keeps_healthcheck_user_and_license(image: str) -> None:
    health = json.loads(
        podman("image", "inspect", "--format", "{{json .Config.Healthcheck}}", image).stdout
    )
    assert health, "no HEALTHCHECK: built in OCI format? (podman build --format docker)"
    assert "/healthz" in " ".join(health["Test"]), health
    assert inspect(image, "{{.Config.User}}") == "10001:10001"
    license_text = podman(
        "run", "--rm", "--entrypoint", "cat", *ulimit_args(), image,
        "/usr/share/doc/watchdesk/LICENSE",
    ).stdout  # fmt: skip
    assert license_text == (ROOT / "LICENSE").read_text()


def test_image_installs_exactly_the_lock(image: str) -> None:
    """pip freeze in the image == requirements.lock: every dependency at the locked version,
    nothing more, and `pip check` (run in the build) found them consistent."""
    frozen = podman(
        "run", "--rm", "--entrypoint", "/opt/watchdesk/.venv/bin/pip", *ulimit_args(), image,
        "freeze", "--exclude", "watchdesk", "--disable-pip-version-check",
    ).stdout  # fmt: skip
    locked = [line for line in LOCK.read_text().splitlines() if line and line[0] != "#"]

    def normalise(lines: list[str]) -> list[str]:
        return sorted(re.sub(r"[-_.]+", "-", line.strip().lower()) for line in lines if line)

    assert normalise(frozen.splitlines()) == normalise(locked)


# ---- the first container ------------------------------------------------------------------


def test_healthz_answers(first: Container) -> None:
    status, body = first.get("/healthz")
    assert status == 200
    assert body["status"] == "ok"
    assert first.wait_target("self", "up")["last_result"]["ok"] is True


def test_runs_as_10001_without_capabilities_on_a_read_only_root(first: Container) -> None:
    assert inspect(first.name, "{{.HostConfig.ReadonlyRootfs}}") == "true"
    status = podman("exec", first.name, "cat", "/proc/1/status").stdout
    fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
    assert fields["Uid"].split()[:2] == ["10001", "10001"], "the agent (PID 1) runs as 10001"
    assert fields["Gid"].split()[:2] == ["10001", "10001"]
    for capabilities in ("CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(fields[capabilities], 16) == 0, f"{capabilities} {fields[capabilities]}"
    assert fields["NoNewPrivs"].strip() == "1"
    write = podman("exec", first.name, "touch", "/etc/watchdesk/x", check=False)
    assert write.returncode != 0
    assert "Read-only file system" in write.stderr


def test_icmp_probe_succeeds_unprivileged(first: Container) -> None:
    """The unprivileged datagram ICMP socket works for gid 10001 thanks to the sysctl."""
    row = first.wait_target("loopback-ping", "up")
    assert row["last_result"]["ok"] is True
    assert "replies" in row["last_result"]["reason"]
    ping_range = podman("exec", first.name, "cat", "/proc/sys/net/ipv4/ping_group_range")
    assert ping_range.stdout.split() == ["0", "2147483647"]


def test_icmp_without_the_sysctl_is_refused_with_a_hint(image: str, config_file: Path) -> None:
    """Podman's default ping_group_range is "0 0" (Docker 20.10+ opens it): without the
    sysctl, the same probe fails with the agent's explanation, not a traceback."""
    args = [a for a in hardened_run_args(config_file) if a not in (PING_RANGE, "--sysctl")]
    default = podman(
        "run", "--rm", *args, "--entrypoint", "cat", image, "/proc/sys/net/ipv4/ping_group_range"
    ).stdout.split()  # fmt: skip
    low, high = map(int, default)
    if low <= 10001 <= high:
        pytest.skip(f"this podman's default ping_group_range ({low} {high}) admits gid 10001")
    result = podman(
        "run", "--rm", *args, image, "probe-once", "--target", "loopback-ping", "--json",
        check=False,
    )  # fmt: skip
    rows = json.loads(result.stdout)
    assert result.returncode == 1, result.stderr
    assert rows[0]["ok"] is False
    assert "ping_group_range" in rows[0]["reason"]


def test_image_healthcheck_passes(first: Container) -> None:
    result = podman("healthcheck", "run", first.name, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert inspect(first.name, "{{.State.Health.Status}}") == "healthy"


def test_exec_watchdesk_tickets(first: Container) -> None:
    first.wait_target("closed-port", "down")
    deadline = time.monotonic() + 20
    rows = first.tickets()
    while not any(row["ticket_id"] for row in rows) and time.monotonic() < deadline:
        time.sleep(0.5)
        rows = first.tickets()
    (row,) = [row for row in rows if row["target"] == "closed-port"]
    assert row["status"] == "open"
    assert row["ticket_id"], row
    assert row["outbox"] == "delivered", row
    table = podman("exec", first.name, "watchdesk", "tickets")
    assert "closed-port" in table.stdout


def test_podman_stop_exits_0_within_10_s(
    first: Container, first_stop: tuple[float, int, list[dict[str, Any]]]
) -> None:
    took, exit_code, _ = first_stop
    assert exit_code == 0
    assert took < 10, f"podman stop took {took:.1f} s (SIGKILL after 10 s)"
    assert inspect(first.name, "{{.State.Status}}") == "exited"
    logs = podman("logs", first.name)
    assert "stopped" in logs.stdout + logs.stderr


# ---- the second container, on the first one's volume ---------------------------------------


def test_state_survives_into_a_new_container(
    second: Container, first_stop: tuple[float, int, list[dict[str, Any]]]
) -> None:
    _, _, before = first_stop
    (incident,) = [row for row in before if row["target"] == "closed-port"]
    assert incident["ticket_id"], before
    # The target stays down: give the new agent a few checks to (wrongly) open another.
    second.wait_target("closed-port", "down")
    time.sleep(3)
    after = [row for row in second.tickets() if row["target"] == "closed-port"]
    # The new container resumes that incident and ticket: no second one for the same outage.
    assert len(after) == 1, after
    for key in ("id", "dedup_key", "ticket_id", "opened_at", "status"):
        assert after[0][key] == incident[key], key
    status, incidents = second.get("/api/incidents")  # the same store, through the API
    assert status == 200
    assert [row["id"] for row in incidents if row["target"] == "closed-port"] == [incident["id"]]


# ---- compose.yaml with podman-compose ------------------------------------------------------


@pytest.mark.skipif(shutil.which("podman-compose") is None, reason="podman-compose not installed")
def test_podman_compose_reads_the_compose_file() -> None:
    """podman-compose (Debian's 1.0.x too) turns the watchdesk service into the right `podman
    run`: the env_file exists and is read, the sysctl keeps its value, the hardening is there.
    Dry run: the other services' images come from a registry this machine cannot reach."""
    project = f"watchdesk-test-{RUN_ID}"
    command = [
        "podman-compose", "--dry-run", "-p", project,
        "-f", str(CONTAINER_DIR / "compose.yaml"), "up", "-d", "--no-build", "watchdesk",
    ]  # fmt: skip
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    finally:
        # 1.0.x creates the volume and the network even in a dry run.
        podman("volume", "rm", "--force", f"{project}_watchdesk-state", check=False)
        podman("network", "rm", "--force", f"{project}_default", check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    run = next(line for line in output.splitlines() if line.startswith("podman run "))
    assert f"--sysctl {PING_RANGE} " in run
    assert f"--env-file {CONTAINER_DIR / 'watchdesk.env'} " in run
    assert (CONTAINER_DIR / "watchdesk.env").is_file()
    for flag in ("--cap-drop ALL", "--read-only", "--tmpfs /tmp", f":{STATE_DIR} "):
        assert flag in run, flag
