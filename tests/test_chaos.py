"""Issue 8, "one outage, one ticket, even when the agent is killed and the helpdesk misbehaves".

A real agent process watches 20 TCP targets that a flapper takes down for long outages (seconds)
and blips (shorter than one probe interval) for about 150 s, while the test SIGKILLs the agent
at random moments (30+ times, restarting it each time on the same state) and the Freshdesk
stand-in first stores tickets but drops the answers, then refuses everything (503s and 429s with
Retry-After) for 35-50 s. Then the judge (tests/chaos/checker.py) reads the stand-ins' records
and the flapper's ground truth, never the agent's store.

The same run on two agents sharing one PostgreSQL database (marked ``cluster`` too: ``make
chaos-cluster``): the kills are spread over both, each restarted on its own state dir, and the
same checker judges the stand-ins' records against the stretches during which the cluster
surely watched every target (tests/chaos/cluster.py: a killed agent's targets are unwatched
until its leases expire and another agent takes them).

Replay a run: ``WATCHDESK_CHAOS_SEED=N``. Keep the evidence: ``WATCHDESK_CHAOS_EVIDENCE=DIR``.
Run it: ``.venv/bin/pytest -m chaos -s tests/test_chaos.py``.
"""

from __future__ import annotations

import copy
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from tests.chaos.checker import check
from tests.chaos.cluster import ClusterTimings
from tests.chaos.runner import ChaosCluster, ChaosRun
from tests.chaos.scenario import chaos_seed, make_scenario
from tests.cluster_harness import Cluster
from tests.pg import PostgresServer

pytestmark = [pytest.mark.slow, pytest.mark.chaos]

WALL_LIMIT = 240.0


def save_evidence(evidence: dict[str, Any], tmp_path: Path) -> list[Path]:
    text = json.dumps(evidence, indent=1)
    places = [tmp_path]
    extra = os.environ.get("WATCHDESK_CHAOS_EVIDENCE", "").strip()
    if extra:
        places.append(Path(extra))
    saved = []
    for place in places:
        place.mkdir(parents=True, exist_ok=True)
        path = place / f"chaos-evidence-{evidence['seed']}-{int(time.time())}.json"
        path.write_text(text)
        saved.append(path)
    return saved


def doctored_with_a_duplicate(evidence: dict[str, Any]) -> tuple[dict[str, Any], int] | None:
    """A copy of the evidence with one more ticket: a twin (same outage, same dedup tag, same
    notes) of the first ticket."""
    doctored = copy.deepcopy(evidence)
    tickets = doctored["freshdesk"]["tickets"]
    if not tickets:
        return None
    original = tickets[0]
    twin = copy.deepcopy(original)
    twin["id"] = max(int(t["id"]) for t in tickets) + 1
    tickets.append(twin)
    notes = doctored["freshdesk"]["notes"]
    if str(original["id"]) in notes:
        notes[str(twin["id"])] = copy.deepcopy(notes[str(original["id"])])
    return doctored, twin["id"]


def judge(evidence: dict[str, Any], tmp_path: Path) -> tuple[list[Any], Any]:
    """Check the evidence, print and save what a reader of the log needs, and assert that the
    run was what it claims to be (else a failure is the test's, not the agent's)."""
    saved = save_evidence(evidence, tmp_path)
    violations, figures = check(evidence)
    print(figures.line(), flush=True)
    print(figures.extra_line(), flush=True)
    print(
        f"chaos: settled={evidence['settled']} "
        f"outbox_pending_at_end={evidence['outbox_pending_at_end']}",
        flush=True,
    )
    print(f"chaos: evidence in {', '.join(str(p) for p in saved)}", flush=True)
    for violation in violations:
        print(f"chaos: {violation}", flush=True)

    assert figures.wall < WALL_LIMIT, figures.wall
    assert figures.kills >= 30, figures.kills
    assert figures.outages >= 60, figures.line()
    assert figures.blips >= 20, figures.line()
    assert figures.ambiguous == 0, "the flapper fell behind: some blip lasted over 0.12 s"
    assert not evidence["truth"]["errors"], evidence["truth"]["errors"]
    assert evidence["truth"]["max_lag"] < 0.05, evidence["truth"]["max_lag"]

    # The judge can fail on this very evidence: one more ticket for an outage is a duplicate.
    doctored = doctored_with_a_duplicate(evidence)
    if doctored is not None:
        bad, twin = doctored
        bad_violations, bad_figures = check(bad)
        assert bad_figures.dup == figures.dup + 1
        assert any(v.kind == "dup_ticket" and str(twin) in v.detail for v in bad_violations)
    return violations, figures


def test_one_outage_one_ticket_under_chaos(tmp_path: Path) -> None:
    seed = chaos_seed()
    print(f"chaos seed: {seed}", flush=True)
    scenario = make_scenario(seed)
    assert scenario.planned["outages"] >= 60, scenario.planned
    assert scenario.planned["blips"] >= 20, scenario.planned
    evidence = ChaosRun(scenario, tmp_path).run()
    violations, figures = judge(evidence, tmp_path)
    assert not violations, f"{len(violations)} violations ({figures.counts}); {figures.line()}"


def agents_split_slots(pg_server: PostgresServer, workdir: Path) -> bool:
    """Whether this watchdesk shares targets between agents (SCALEOUT.md's leases): an agent
    on PostgreSQL exports the slots it owns. Without that, two agents both probe and act on
    every target, and this test would only measure that."""
    body = '[[targets]]\nname = "probe"\nkind = "tcp"\nhost = "127.0.0.1"\nport = 9\n'
    body += '[ticketing]\nbackend = "local"\nrequest_timeout = "1s"\n'
    probe = Cluster(pg_server, workdir, body, agents=1, proxied=False)
    try:
        probe.start()
        deadline = time.monotonic() + 3 * probe.timings.lease_renew
        while time.monotonic() < deadline:
            if probe.splits_slots():
                return True
            time.sleep(0.2)
        return False
    finally:
        probe.close()


@pytest.mark.cluster
def test_one_outage_one_ticket_under_chaos_on_two_agents(
    tmp_path: Path, pg_server: PostgresServer
) -> None:
    """Issue 11, test 6: the chaos run against 2 agents on PostgreSQL, kills spread over both:
    0 duplicates, 0 lost. Skipped, saying so, while agents do not split slots, unless
    ``WATCHDESK_CHAOS_CLUSTER=force`` (to see what two agents without leases do)."""
    forced = os.environ.get("WATCHDESK_CHAOS_CLUSTER", "").strip() == "force"
    if not forced and not agents_split_slots(pg_server, tmp_path / "probe"):
        pytest.skip(
            "these agents do not split slots (no watchdesk_cluster_slots_owned): the cluster "
            "core of SCALEOUT.md is not here; WATCHDESK_CHAOS_CLUSTER=force runs it anyway"
        )
    seed = chaos_seed()
    print(f"chaos seed: {seed} (2 agents on PostgreSQL)", flush=True)
    scenario = make_scenario(seed, agents=2)
    kills_per_agent = scenario.describe()["kills_per_agent"]
    assert min(kills_per_agent) >= 15, kills_per_agent
    url = pg_server.new_database()
    try:
        cluster = ChaosCluster(url, agents=2, timings=ClusterTimings())
        evidence = ChaosRun(scenario, tmp_path, cluster=cluster).run()
    finally:
        pg_server.drop(url)
    violations, figures = judge(evidence, tmp_path)
    # Enough outages fell outside the takeover windows for "lost" to mean something.
    assert figures.observable >= 30, figures.extra_line()
    assert not violations, f"{len(violations)} violations ({figures.counts}); {figures.line()}"
