"""Issue 11's lease bounds, read from outside the agents: a new agent holds its fair share
within two renews, a graceful stop hands the slots over within 2 s, and a killed agent's targets
are probed again within ``lease_ttl + lease_renew + interval``.

They need agents that split slots (SCALEOUT.md's core: ``watchdesk_cluster_slots_owned``); on
a watchdesk without it they skip and say so. Which agent probes a target is read from each
agent's ``watchdesk_probes_total{target=...}``.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator

import pytest

from tests.cluster_harness import Cluster

pytestmark = [pytest.mark.slow, pytest.mark.cluster]

INTERVAL = 0.2
TARGETS = 24
SLACK = 1.0  # process scheduling on a loaded 2-core box


@pytest.fixture
def service_port() -> Iterator[int]:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(256)
        yield int(listener.getsockname()[1])


def body(port: int) -> str:
    targets = "".join(
        f'[[targets]]\nname = "t{i:02d}"\nkind = "tcp"\nhost = "127.0.0.1"\nport = {port}\n'
        for i in range(TARGETS)
    )
    return (
        f'[defaults]\ninterval = "{int(INTERVAL * 1000)}ms"\ntimeout = "150ms"\n{targets}'
        '[ticketing]\nbackend = "local"\nrequest_timeout = "1s"\n'
    )


def started(make_cluster: Callable[..., Cluster], port: int, agents: int) -> Cluster:
    """The agents, started; a skip (after the first one only) where they do not split slots."""
    cluster: Cluster = make_cluster(body(port), agents=agents)
    cluster.start(0, migrate=True)
    deadline = time.monotonic() + 2 * cluster.timings.lease_renew
    while not cluster.splits_slots():
        if time.monotonic() > deadline:
            pytest.skip("these agents do not split slots (no watchdesk_cluster_slots_owned)")
        time.sleep(0.1)
    if agents > 1:
        cluster.start(*range(1, agents))
    return cluster


def probes_by_target(cluster: Cluster, index: int) -> dict[str, float]:
    return cluster.members[index].metrics().by_label("watchdesk_probes_total", "target")


def probed_lately(cluster: Cluster, index: int, over: float) -> set[str]:
    """Targets agent ``index`` probed during the next ``over`` seconds."""
    before = probes_by_target(cluster, index)
    time.sleep(over)
    after = probes_by_target(cluster, index)
    return {name for name, count in after.items() if count > before.get(name, 0.0)}


def test_a_new_agent_holds_its_fair_share_within_two_renews(
    make_cluster: Callable[..., Cluster], service_port: int
) -> None:
    cluster = started(make_cluster, service_port, agents=3)
    renew = cluster.timings.lease_renew
    cluster.stop(2)
    cluster.wait_balanced(timeout=cluster.timings.takeover + 2 * renew + SLACK)
    cluster.start(2)
    joined = time.monotonic()
    counts = cluster.wait_balanced(timeout=2 * renew + SLACK)
    assert time.monotonic() - joined <= 2 * renew + SLACK, counts
    assert len(counts) == 3


def test_a_graceful_stop_hands_the_slots_over_within_2_s(
    make_cluster: Callable[..., Cluster], service_port: int
) -> None:
    cluster = started(make_cluster, service_port, agents=2)
    cluster.wait_balanced(timeout=2 * cluster.timings.lease_renew + SLACK)
    stopping = time.monotonic()
    assert cluster.stop(1) == 0
    cluster.wait_until(
        lambda: cluster.slots_owned()[0] == cluster.timings.slots,
        "agent 0 to hold every slot",
        timeout=2.0 + SLACK,
    )
    assert time.monotonic() - stopping <= 2.0 + SLACK


def test_a_killed_agents_targets_are_probed_again_in_time(
    make_cluster: Callable[..., Cluster], service_port: int
) -> None:
    cluster = started(make_cluster, service_port, agents=2)
    timings = cluster.timings
    cluster.wait_balanced(timeout=2 * timings.lease_renew + SLACK)
    victims = probed_lately(cluster, 1, over=2 * INTERVAL + 0.2)
    survivors = probed_lately(cluster, 0, over=2 * INTERVAL + 0.2)
    assert victims, "agent 1 probes some targets"
    assert not victims & survivors, "no target is probed by both agents"

    killed = cluster.kill(1)
    bound = timings.lease_ttl + timings.lease_renew + INTERVAL
    before = probes_by_target(cluster, 0)

    def taken_over() -> bool:
        now = probes_by_target(cluster, 0)
        return all(now.get(name, 0.0) > before.get(name, 0.0) for name in victims)

    cluster.wait_until(taken_over, "agent 0 to probe agent 1's targets", timeout=bound + SLACK)
    assert time.monotonic() - killed <= bound + SLACK
