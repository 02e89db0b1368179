"""The multi-agent harness (tests/cluster_harness.py) does what the cluster tests rely on: N real
agents share one database, each through a proxy of its own, and a fault hits the one agent it
is aimed at. What holds without leases is tested here; the lease behaviour itself is the
cluster tests' (they need SCALEOUT.md's core)."""

from __future__ import annotations

import socket
import urllib.error
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from monitor.config import parse_config
from tests.cluster_harness import Cluster, Metrics, Timings

BODY = """
[defaults]
interval = "200ms"
timeout = "150ms"

[[targets]]
name = "api"
kind = "tcp"
host = "127.0.0.1"
port = {port}

[ticketing]
backend = "local"
request_timeout = "1s"
"""


@pytest.fixture
def service_port() -> Iterator[int]:
    """A TCP target that is up for the whole test."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield int(listener.getsockname()[1])


def test_the_member_configs_are_valid_and_carry_the_timings(tmp_path: Path) -> None:
    timings = Timings(lease_ttl=1.5, lease_renew=0.5, claim_ttl=3.0, slots=32)
    text = f'[agent]\nstate_dir = "{tmp_path}"\n' + BODY.format(port=9) + timings.toml("east")
    cluster = parse_config(text).cluster
    assert cluster is not None
    assert (cluster.vantage, cluster.slots) == ("east", 32)
    assert (cluster.lease_ttl, cluster.lease_renew, cluster.claim_ttl) == (1.5, 0.5, 3.0)
    assert timings.takeover == 2.0


def test_metrics_sum_the_samples_that_match() -> None:
    metrics = Metrics(
        "# TYPE watchdesk_probes_total counter\n"
        'watchdesk_probes_total{target="a",kind="tcp",result="success"} 3\n'
        'watchdesk_probes_total{target="a",kind="tcp",result="failure"} 1\n'
        'watchdesk_probes_total{target="b",kind="tcp",result="success"} 5\n'
        "# TYPE watchdesk_cluster_slots_owned gauge\n"
        "watchdesk_cluster_slots_owned 21\n"
    )
    assert metrics.value("watchdesk_probes_total") == 9
    assert metrics.value("watchdesk_probes_total", target="a") == 4
    assert metrics.value("watchdesk_probes_total", target="a", result="failure") == 1
    assert metrics.value("watchdesk_cluster_slots_owned") == 21
    assert metrics.value("watchdesk_cluster_agents") is None
    assert metrics.by_label("watchdesk_probes_total", "target") == {"a": 4, "b": 5}


@pytest.mark.slow
@pytest.mark.cluster
def test_agents_share_one_database_and_a_cut_hits_one_agent_only(
    make_cluster: Callable[..., Cluster], service_port: int
) -> None:
    cluster = make_cluster(BODY.format(port=service_port), agents=2)
    cluster.start(0, migrate=True)  # the first one creates the schema, as in compose
    cluster.start(1)
    first = cluster.members[0]
    for member in cluster.members:
        assert member.proxy is not None
        assert member.proxy.counts.accepted >= 1, "each agent reaches the database via its proxy"
    sessions = cluster.query(
        "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = %s AND client_port IS NOT NULL",
        cluster.database,
    )
    assert sessions[0][0] >= 2

    cluster.cut(0, "reset")
    cluster.wait_until(lambda: not cluster.ready(0), "agent 0 to report its store lost", 20)
    assert cluster.ready(1), "the other agent kept its database"
    assert first.get("/healthz")[0] == 200, "agent 0 keeps probing without the database"
    cluster.heal(0)
    cluster.wait_until(lambda: cluster.ready(0), "agent 0 to be ready again after the heal", 30)

    cluster.cut(1, "blackhole")
    cluster.wait_until(lambda: not cluster.ready(1), "agent 1 to notice the dead link", 30)
    assert cluster.ready(0)
    cluster.heal(1)
    cluster.wait_until(lambda: cluster.ready(1), "agent 1 to be ready again after the heal", 30)


@pytest.mark.slow
@pytest.mark.cluster
def test_an_agent_is_killed_restarted_paused_and_resumed(
    make_cluster: Callable[..., Cluster], service_port: int
) -> None:
    cluster = make_cluster(BODY.format(port=service_port), agents=2)
    cluster.start(0, migrate=True)
    cluster.start(1)
    first, second = cluster.members

    cluster.kill(1)
    assert not second.running
    with pytest.raises(urllib.error.URLError, match="Connection refused"):
        second.get("/healthz", timeout=1)
    assert first.get("/healthz")[0] == 200
    cluster.start(1)  # the same config and state directory
    assert second.get("/healthz")[0] == 200
    assert len(second.history) == 2

    cluster.pause(0)
    with pytest.raises(TimeoutError):  # a stopped process answers nothing (the zombie's half)
        first.get("/healthz", timeout=1)
    cluster.resume(0)
    assert first.get("/healthz")[0] == 200
