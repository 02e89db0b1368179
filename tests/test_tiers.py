"""The escalation tier an incident reached, where people see it: the ack and resolve
histograms and the closure counter (``tier`` label), ``watchdesk tickets``, ``/api/incidents``
and ``watchdesk report``."""

from __future__ import annotations

import json
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from monitor.config import parse_config
from monitor.reporting.figures import build_report
from monitor.reporting.text import as_json, as_table
from monitor.reporting.timelines import ReportData
from monitor.web.server import make_app
from tests.agent_harness import START, Harness
from tests.helpers import run_cli
from tests.report_scenario import ACME

CONFIG = (
    ACME
    + """
[pagers.engineer]
type = "log"
[pagers.senior]
type = "log"
[pagers.head]
type = "log"

[escalation]
page_on_open = ["engineer"]
chain = [
  { tier = "L2", role = "senior engineer", after = "30m", page = ["senior"] },
  { tier = "L3", role = "IT head", after = "1h", page = ["head"] },
]
repeat = 1
"""
)


def samples(h: Harness, name: str) -> dict[tuple[str, ...], float]:
    """label values (sorted by label name) -> value of every sample of ``name``."""
    found = {}
    for family in text_string_to_metric_families(h.agent.metrics.exposition().decode()):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(v for _, v in sorted(sample.labels.items()))] = sample.value
    return found


async def policy(h: Harness, minutes: float) -> None:
    h.clock.advance(minutes * 60)
    await h.agent.policy.sweep()
    await h.deliver()


def test_the_tier_reached_is_the_furthest_level_of_the_chain() -> None:
    escalation = parse_config(CONFIG).escalation
    assert [escalation.tier_after(n) for n in range(5)] == ["L1", "L2", "L3", "L3", "L3"]
    own = parse_config(CONFIG.replace("repeat = 1", 'repeat = 1\nfirst_tier = "T1"'))
    assert own.escalation.tier_after(0) == "T1"
    default = parse_config("[escalation]\npage_on_escalation = []\n").escalation
    assert [default.tier_after(n) for n in range(3)] == ["L1", "L2", "L2"]


async def test_tickets_api_metrics_and_report_show_the_tier(tmp_path: Path) -> None:
    state = tmp_path / "state"
    h = await Harness.create(state, CONFIG)
    try:
        await h.fail("web", 3)  # opens at +60s: L1, the engineer is paged
        await h.fail("db", 3)
        await h.sweep()
        await h.deliver()
        await policy(h, 31)  # both: L2 after 30 minutes
        (web, db) = await h.incidents()
        await h.agent.desk.acknowledge(db.id, "bob")  # db is worked at L2
        await policy(h, 61)  # web: L3 an hour later
        (web, db) = await h.incidents()
        assert (web.tier, db.tier) == ("L3", "L2")
        await h.agent.desk.acknowledge(web.id, "alice")
        await h.succeed("web", 2)
        await h.sweep()
        ack = samples(h, "watchdesk_incident_ack_seconds_count")
        # labels sorted by name: customer, priority, tier
        assert ack == {("acme", "urgent", "L2"): 1.0, ("acme", "urgent", "L3"): 1.0}
        resolved = samples(h, "watchdesk_incidents_resolved_total")
        assert resolved == {("acme", "urgent", "L3"): 1.0}
        assert samples(h, "watchdesk_incident_resolve_seconds_count") == resolved

        async with TestClient(TestServer(make_app(h.agent))) as client:
            rows = await (await client.get("/api/incidents")).json()
        assert {row["target"]: row["tier"] for row in rows} == {"web": "L3", "db": "L2"}

        data = await ReportData.fetch(h.agent.store)
        report = build_report(data, h.config, START - 3600, h.clock.now())
        assert [(t.tier, t.incidents, t.worked, t.resolved) for t in report.tiers] == [
            ("L2", 1, 1, 0),
            ("L3", 1, 1, 1),
        ]
        assert json.loads(as_json(report))["tiers"][1] == {
            "tier": "L3",
            "incidents": 1,
            "worked": 1,
            "resolved": 1,
        }
        assert "TIER  INCIDENTS  WORKED  RESOLVED\nL2    1" in as_table(report)
    finally:
        await h.close()

    config = tmp_path / "config.toml"
    config.write_text(f'[agent]\nstate_dir = "{state}"\n' + CONFIG)
    table = run_cli("tickets", "--all", "-c", str(config)).stdout.splitlines()
    assert table[0].split()[:5] == ["INCIDENT", "TARGET", "STATUS", "PRIORITY", "TIER"]
    assert {line.split()[1]: line.split()[4] for line in table[1:]} == {"web": "L3", "db": "L2"}
    listed = json.loads(run_cli("tickets", "--all", "--json", "-c", str(config)).stdout)
    assert {row["target"]: row["tier"] for row in listed} == {"web": "L3", "db": "L2"}
