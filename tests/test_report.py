"""`watchdesk report`: uptime from transitions, across a restart, for a target added late."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from monitor.cli.report import as_csv, as_json, as_table, build_report
from monitor.store import SqliteDatabase
from tests.agent_harness import START, Harness
from tests.helpers import run_cli

BASE = """
[defaults]
interval = "30s"
failure_threshold = 3
recovery_threshold = 2

[[targets]]
name = "web"
kind = "http"
url = "https://web.example/"
customer = "acme"

[[targets]]
name = "db"
kind = "tcp"
host = "db.internal"
port = 5432
priority = "high"

[customers.acme]
email = "it@acme.example"
sla = "gold"

[sla.gold]
response_time = { urgent = "5m" }
"""

API = """
[[targets]]
name = "api"
kind = "tcp"
host = "api.internal"
port = 443
customer = "acme"
"""


def at(h: Harness, offset: float) -> None:
    h.clock.set(START + offset)


async def test_uptime_mtta_mttr_across_a_restart_and_a_target_added_late(tmp_path: Path) -> None:
    state = tmp_path / "state"
    h = await Harness.create(state, BASE)
    for offset, target in ((0, "web"), (0, "db")):
        at(h, offset)
        await h.succeed(target)
    # web: first failed check at +600, down at +660 (3rd failure).
    for offset in (600, 630, 660):
        at(h, offset)
        await h.fail("web")
    await h.agent.book.flush()
    await h.close()

    # Restart at +1000 with a target added; web is still down.
    again = await Harness.create(state, BASE + API, start=START + 1000)  # "api" is first seen now
    await again.fail("web")
    at(again, 1000)
    await again.succeed("api")
    await again.deliver()
    again.local.assign(str(again.tickets()[0]["id"]), "alice")
    at(again, 1020)
    await again.agent.policy.sweep()  # notices the assignment: worked at +1020
    # db: a short outage answered by nobody within its 4h policy, resolved after 10 minutes.
    for offset in (1200, 1230, 1260):
        at(again, offset)
        await again.fail("db")
    for offset in (1800, 1830):
        at(again, offset)
        await again.succeed("web")
    for offset in (1860, 1890):
        at(again, offset)
        await again.succeed("db")
    await again.agent.book.flush()

    database = SqliteDatabase(state)  # what `watchdesk report` reads, beside the running agent
    try:
        report = build_report(database, again.config, START, START + 3600)
    finally:
        database.close()
    rows = {row.target: row for row in report.targets}
    web, db, api = rows["web"], rows["db"], rows["api"]
    assert web.downtime_seconds == 1830 - 600  # from the first failed check, across the restart
    assert web.longest_downtime_seconds == 1230
    assert web.uptime_percent == pytest.approx(100 * (1 - 1230 / 3600))
    assert web.incidents == 1
    assert web.mtta_seconds == 1020 - 660
    assert web.mttr_seconds == 1830 - 660
    assert db.downtime_seconds == 1890 - 1200
    assert db.mtta_seconds is None
    assert db.mttr_seconds == 1890 - 1260
    # api exists since +1000 only, and was never down.
    assert api.observed_seconds == 2600
    assert api.uptime_percent == 100.0
    (acme,) = report.customers
    assert acme.targets == 2
    assert acme.downtime_seconds == 1230
    assert acme.uptime_percent == pytest.approx(100 * (1 - 1230 / (3600 + 2600)))
    sla = {entry.priority: entry for entry in report.sla}
    # web: urgent, gold plan answers within 5m; worked after 6m: late.
    assert (sla["urgent"].incidents, sla["urgent"].within, sla["urgent"].response_time_seconds) == (
        1,
        0,
        300,
    )
    # db: high, no plan: the 4h ack timeout; it recovered within it: in time.
    assert (sla["high"].incidents, sla["high"].within) == (1, 1)

    data = json.loads(as_json(report))
    assert {t["target"] for t in data["targets"]} == {"web", "db", "api"}
    table = list(csv.DictReader(io.StringIO(as_csv(report))))
    assert {r["target"]: r["downtime_seconds"] for r in table}["web"] == "1230"
    text = as_table(report)
    assert "web" in text
    assert "65.833%" in text
    await again.close()


def test_report_command_formats(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'[agent]\nstate_dir = "{tmp_path / "state"}"\n' + BASE)
    SqliteDatabase(
        tmp_path / "state"
    ).close()  # an agent has run there (a missing store is refused)
    for fmt in ("table", "json", "csv"):
        result = run_cli("report", "-c", str(config), "--since", "7d", "--format", fmt)
        assert result.returncode == 0, result.stderr
    data = json.loads(run_cli("report", "-c", str(config), "--format", "json").stdout)
    assert [t["target"] for t in data["targets"]] == ["db", "web"]
    bad = run_cli("report", "-c", str(config), "--since", "soon")
    assert bad.returncode == 2
    assert "--since" in bad.stderr


PLAN = """
[defaults]
interval = "30s"
failure_threshold = 3
recovery_threshold = 2

[[targets]]
name = "web"
kind = "http"
url = "https://web.example/"
customer = "acme"

[customers.acme]
email = "it@acme.example"
sla = "gold"

[sla.gold.priority.urgent]
response = "{response}"
resolution = "{resolution}"
"""


async def outage_answered_after(h: Harness, worked: float, resolved: float) -> None:
    """web goes down (its incident opens 60 s later), someone acknowledges it ``worked``
    seconds after it opened, and it is back ``resolved`` seconds after it opened."""
    await h.fail("web", 3)
    await h.sweep()
    (incident,) = [i for i in await h.incidents() if i.status == "open"]
    h.clock.set(incident.opened_at + worked)
    await h.agent.desk.acknowledge(incident.id, "alice")
    h.clock.set(incident.opened_at + resolved - 30)
    await h.succeed("web", 2)
    await h.sweep()


async def test_compliance_is_judged_against_the_targets_in_force_when_it_happened(
    tmp_path: Path,
) -> None:
    """Two outages answered alike (worked after 40 minutes, resolved after 50): the first
    under a 30m/1h plan, the second after the plan changed to 1h/30m. Each is judged against
    its own plan, not against today's (which would pass both responses and fail both
    resolutions)."""
    state = tmp_path / "state"
    before = PLAN.format(response="30m", resolution="1h")
    h = await Harness.create(state, before)
    await h.succeed("web")
    await outage_answered_after(h, 40 * 60, 50 * 60)
    await h.agent.book.flush()
    await h.close()

    after = PLAN.format(response="1h", resolution="30m")
    h = await Harness.create(state, after, start=START + 2 * 3600)  # restarted, plan changed
    try:
        await outage_answered_after(h, 40 * 60, 50 * 60)
        first, second = await h.incidents()
        assert (first.response_target, first.resolution_target) == (1800, 3600)
        assert (second.response_target, second.resolution_target) == (3600, 1800)
        assert first.sla_clock == second.sla_clock == "calendar"
        await h.agent.book.flush()
        database = SqliteDatabase(state)
        try:
            report = build_report(database, h.config, START, START + 4 * 3600)
        finally:
            database.close()
    finally:
        await h.close()
    (urgent,) = report.sla
    assert (urgent.incidents, urgent.within) == (2, 1)  # the second, within its hour
    assert (urgent.resolution_incidents, urgent.resolution_within) == (2, 1)  # the first
    assert urgent.response_targets == [1800, 3600]
    assert urgent.resolution_targets == [1800, 3600]
    text = as_table(report)
    assert "30m / 1h" in text
    assert "50.0%" in text


async def test_compliance_leaves_out_the_time_the_ticket_waited_on_the_customer(
    tmp_path: Path,
) -> None:
    """A 1h response target; the ticket waits on the customer from +10m to +40m and nobody
    works it before web is back at +80m: answered 20 minutes late by the wall clock, within
    its target once the paused half hour is left out, as the breach counter says too."""
    state = tmp_path / "state"
    h = await Harness.create(state, PLAN.format(response="1h", resolution="2h"))
    try:
        await h.fail("web", 3)
        await h.deliver()
        (incident,) = await h.incidents()
        opened, ticket = incident.opened_at, str(incident.ticket_id)
        for offset, status in ((600, "pending"), (2400, "open")):
            h.clock.set(opened + offset)
            h.local.change_status(ticket, status)
            await h.agent.policy.sweep()
        h.clock.set(opened + 80 * 60 - 30)
        await h.succeed("web", 2)
        (incident,) = await h.incidents()
        assert (incident.status, incident.worked_at) == ("resolved", None)
        assert incident.pauses == ((opened + 600, opened + 2400),)
        assert "watchdesk_sla_breaches_total{" not in h.agent.metrics.exposition().decode()
        await h.agent.book.flush()
        database = SqliteDatabase(state)
        try:
            report = build_report(database, h.config, START, START + 4 * 3600)
        finally:
            database.close()
    finally:
        await h.close()
    (urgent,) = report.sla
    assert (urgent.incidents, urgent.within) == (1, 1)
    assert (urgent.resolution_incidents, urgent.resolution_within) == (1, 1)
