"""Issue 11's test 3, the partition: three real agents on one PostgreSQL, each through a TCP proxy
of the test's own, and one of them cut off from the database while a target it probes is down.

The cut agent must go quiet on its own clock (SCALEOUT.md: it fences itself at ``lease_ttl -
margin``), the other two take its slots when its leases run out, the outage still gets exactly
one ticket and one page, and once the link heals the cut agent is back to its fair share within
two renews.

Which agent a helpdesk or pager request came from is read where the stand-ins see it: the cut
agent reaches both stand-ins as ``localhost``, the others as ``127.0.0.1``, so the Host header
each request carries names its sender (tests/fakes/freshdesk.py records it). The page about the
database (``db_lost_page_after``) is a page of the cut agent's by design (it cannot tell its
own cut link from a database down); it is set beyond the test's length here, so any request
from the cut agent after ``cut + lease_ttl`` is one it must not send.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.cluster_harness import Cluster, Timings
from tests.cluster_rig import Service
from tests.helpers import FakeProcess, freshdesk_toml, pagerduty_toml
from tests.tcpproxy import CutMode

pytestmark = [pytest.mark.slow, pytest.mark.cluster]

INTERVAL = 0.3
THRESHOLD = 3
TARGETS = 24  # the cut agent holds a third of the slots: one of these is surely its
CUT = 0  # the agent the test cuts off (it reaches the stand-ins as "localhost")
SLACK = 1.5  # process scheduling on a loaded 2-core box
TIMINGS = Timings(db_lost_page_after=120.0)


@pytest.fixture
def services() -> Iterator[dict[str, Service]]:
    """One TCP service per target, so that the test takes exactly one target down."""
    made = {f"t{i:02d}": Service() for i in range(TARGETS)}
    yield made
    for service in made.values():
        service.stop()


def body(services: dict[str, Service], freshdesk: str, pagerduty: str) -> str:
    targets = "".join(
        f'[[targets]]\nname = "{name}"\nkind = "tcp"\nhost = "127.0.0.1"\n'
        f'port = {service.port}\ncustomer = "acme"\n'
        for name, service in services.items()
    )
    return f"""
[defaults]
interval = "{int(INTERVAL * 1000)}ms"
timeout = "200ms"
failure_threshold = {THRESHOLD}
recovery_threshold = 2
{targets}
[customers.acme]
email = "it@acme.example"
{freshdesk_toml(freshdesk, request_timeout="1s", extra='search_lag = "1s"')}
{pagerduty_toml(pagerduty)}
[escalation]
page_on_open = ["oncall"]
page_on_escalation = []
ack_timeout = "1h"
status_update_interval = "1h"
"""


def sent_by(stand_in: FakeProcess, host: str, after: float, before: float) -> list[dict[str, Any]]:
    """The requests a stand-in received from ``host`` in [after, before] (wall clock)."""
    return [
        r
        for r in stand_in.state()["requests"]
        if r["host"].split(":")[0] == host and after <= r["at"] <= before
    ]


def owned(cluster: Cluster, indexes: list[int]) -> list[float]:
    counts = cluster.slots_owned()
    return [counts[i] or 0.0 for i in indexes]


@pytest.mark.parametrize("mode", ["blackhole", "reset"])
def test_an_agent_cut_from_the_database_goes_quiet_and_its_slots_move(
    make_cluster: Callable[..., Cluster],
    stand_ins: tuple[FakeProcess, FakeProcess],
    services: dict[str, Service],
    mode: CutMode,
) -> None:
    freshdesk, pagerduty = stand_ins
    cluster = make_cluster(body(services, freshdesk.url, pagerduty.url), agents=3, timings=TIMINGS)
    cut_agent = cluster.members[CUT]
    text = cut_agent.config.read_text()
    for url in (freshdesk.url, pagerduty.url):
        text = text.replace(url, url.replace("127.0.0.1", "localhost"))
    cut_agent.config.write_text(text)
    cluster.start()
    timings = cluster.timings
    cluster.wait_balanced(timeout=timings.takeover + 2 * timings.lease_renew + SLACK)
    mine = sorted(cut_agent.process.status()) if cut_agent.process else []
    assert mine, "the agent to cut probes some targets"
    down = mine[0]

    services[down].stop()
    cluster.wait_until(
        lambda: (
            (cut_agent.process.status()[down]["consecutive_failures"] or 0) >= 1  # type: ignore[union-attr]
            or None
        ),
        f"the cut agent to see {down} fail",
    )
    cluster.cut(CUT, mode)
    cut_at, cut_wall = time.monotonic(), time.time()

    # Its slots move to the others once its leases run out.
    others = [i for i in range(3) if i != CUT]
    cluster.wait_until(
        lambda: sum(owned(cluster, others)) == timings.slots or None,
        "the other agents to hold every slot",
        timeout=timings.takeover + SLACK + 2,
    )
    moved = time.monotonic() - cut_at
    assert moved <= timings.takeover + SLACK
    assert not cluster.ready(CUT)
    code, view = cut_agent.get("/api/cluster")
    assert code == 200
    assert json.loads(view)["live"] is False

    # The outage gets its ticket and its page, from the others.
    cluster.wait_until(lambda: freshdesk.state()["tickets"], "the ticket", 15)
    cluster.wait_until(lambda: pagerduty.state()["alerts"], "the page", 15)

    # Heal: the cut agent gets its fair share back within two renews.
    time.sleep(1.0)  # anything the cut agent still had would arrive now
    healed_wall = time.time()
    cluster.heal(CUT)
    healed = time.monotonic()
    counts = cluster.wait_balanced(timeout=2 * timings.lease_renew + 2 * SLACK)
    back = time.monotonic() - healed
    assert back <= 2 * timings.lease_renew + SLACK, counts
    assert cluster.ready(CUT)

    services[down].start()
    cluster.wait_until(
        lambda: [t["status"] for t in freshdesk.state()["tickets"]] == [3], "the ticket pending"
    )
    cluster.wait_until(
        lambda: {a["status"] for a in pagerduty.state()["alerts"].values()} == {"resolved"},
        "the alert resolved",
    )
    time.sleep(1.0)

    quiet_from = cut_wall + timings.lease_ttl
    assert sent_by(freshdesk, "localhost", quiet_from, healed_wall) == []
    assert sent_by(pagerduty, "localhost", quiet_from, healed_wall) == []
    creates = [r for r in freshdesk.state()["requests"] if r["route"] == "create"]
    assert len(creates) == 1
    assert creates[0]["host"].startswith("127.0.0.1")
    events = pagerduty.state()["events"]
    assert [e["event_action"] for e in events].count("trigger") == 1
    assert len(pagerduty.state()["alerts"]) == 1
    print(f"{mode}: cut -> slots moved {moved:.2f}s; heal -> fair share {back:.2f}s")


# When SIGTERM comes: right after the cut, with the agent's calls stuck on the silent link and
# its leases still live; or once it has fenced itself (its leases not renewed).
SIGTERM_POINTS = ["calls_in_flight", "fenced"]


@pytest.mark.parametrize("point", SIGTERM_POINTS)
def test_sigterm_with_the_database_blackholed_exits_within_5_s(
    make_cluster: Callable[..., Cluster], services: dict[str, Service], point: str
) -> None:
    """CONTRACT: ``watchdesk run`` exits 0 within 5 s of SIGTERM. A blackholed database answers
    nothing, not even a reset: before, the stop waited on it for over a minute."""
    body = "".join(
        f'[[targets]]\nname = "{name}"\nkind = "tcp"\nhost = "127.0.0.1"\nport = {s.port}\n'
        for name, s in services.items()
    )
    cluster = make_cluster(
        f'[defaults]\ninterval = "{int(INTERVAL * 1000)}ms"\ntimeout = "200ms"\n{body}'
        '[ticketing]\nbackend = "local"\nrequest_timeout = "1s"\n',
        agents=2,
        timings=TIMINGS,
    )
    cluster.start()
    timings = cluster.timings
    cluster.wait_balanced(timeout=timings.takeover + 2 * timings.lease_renew + SLACK)
    cut_agent = cluster.members[CUT]
    assert cut_agent.process is not None
    mine = sorted(cut_agent.process.status())
    for name in mine:  # its targets go down: state to write, incidents to open, all stuck
        services[name].stop()
    cluster.cut(CUT, "blackhole")
    if point == "fenced":
        cluster.wait_until(lambda: not cluster.ready(CUT), "the cut agent to fence itself")
    else:
        time.sleep(INTERVAL * THRESHOLD)  # its transitions' writes now wait on the link

    asked = time.monotonic()
    cut_agent.process.signal(signal.SIGTERM)
    code = cut_agent.process.proc.wait(timeout=30)
    took = time.monotonic() - asked
    assert code == 0, cut_agent.log_tail()
    assert took < 5.0, cut_agent.log_tail()
    assert "stopped" in cut_agent.log_tail(5)
    # Its leases run out on their own and the other agent takes its targets.
    cluster.wait_until(
        lambda: owned(cluster, [1]) == [timings.slots] or None,
        "the other agent to hold every slot",
        timeout=timings.takeover + SLACK,
    )
    print(f"{point}: SIGTERM -> exit {took:.2f}s")
