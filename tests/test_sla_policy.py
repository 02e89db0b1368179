"""The support policy per SLA plan and priority: who is paged, when, and how often the requester
hears from us. Defaults reproduce the policy documents (only urgent issues page; status
updates for urgent and high only); ``[sla.NAME.priority.P]`` changes any of it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from monitor.config import parse_config
from monitor.policy.timeliness import deadline
from tests.agent_harness import Harness
from tests.fakes.opsgenie import OpsgenieFake
from tests.fakes.pagerduty import PagerDutyFake
from tests.test_calendar import brute_deadline
from tests.test_policy import OG_KEY, PD_KEY, TORONTO, policy_config, run, toronto

MORE_TARGETS = """
[[targets]]
name = "vip-report"
kind = "http"
url = "https://vip.example/report"
customer = "bigco"
priority = "low"

[[targets]]
name = "vip-api"
kind = "http"
url = "https://vip.example/api"
customer = "bigco"
priority = "high"

[[targets]]
name = "shop-blog"
kind = "http"
url = "https://shop.example/blog"
customer = "smallco"
priority = "medium"
"""

Make = Callable[[str], Awaitable[Harness]]


@pytest.fixture
async def make(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[Make, PagerDutyFake]]:
    monkeypatch.setenv("PD_TEST_KEY", PD_KEY)
    monkeypatch.setenv("OG_TEST_KEY", OG_KEY)
    made: list[Harness] = []
    async with PagerDutyFake(routing_key=PD_KEY) as pd, OpsgenieFake(api_key=OG_KEY) as og:

        async def build(extra: str = "") -> Harness:
            text = policy_config(pd.enqueue_url, og.url) + MORE_TARGETS + extra
            h = await Harness.create(tmp_path / f"state{len(made)}", text)
            made.append(h)
            return h

        yield build, pd
        for h in made:
            await h.close()


def paged(pd: PagerDutyFake) -> set[str]:
    return {
        event["payload"]["summary"] for event in pd.events if event["event_action"] == "trigger"
    }


async def test_by_default_only_urgent_issues_page(make: tuple[Make, PagerDutyFake]) -> None:
    build, pd = make
    h = await build("")
    for name in ("vip-web", "vip-report", "vip-api"):
        await h.fail(name, 3)
    await run(h)
    assert len(h.tickets()) == 3  # every outage gets its ticket
    assert paged(pd) == {"[URGENT] vip-web is down"}  # a VIP low ticket pages nobody


async def test_a_plan_can_page_high_issues_in_business_hours_only(
    make: tuple[Make, PagerDutyFake],
) -> None:
    build, pd = make
    h = await build('[sla.vip.priority.high]\npage = true\npage_hours = "business"\n')
    await h.fail("vip-api", 3)  # 05:01 in Toronto
    await run(h)
    assert paged(pd) == set()
    h.clock.set(toronto(8, 0))
    await run(h)
    assert paged(pd) == {"[HIGH] vip-api is down"}


async def test_status_updates_go_to_urgent_and_high_issues_only_by_default(
    make: tuple[Make, PagerDutyFake],
) -> None:
    build, _ = make
    h = await build("")
    for name in ("vip-web", "vip-api", "vip-report", "shop-blog"):
        await h.fail(name, 3)
    await run(h)
    h.clock.advance(3700)
    await run(h)
    updated = {
        str(ticket["subject"]).split()[1]
        for ticket in h.tickets()
        if any("is still down" in note for note in h.notes(ticket["id"]))
    }
    assert updated == {"vip-web", "vip-api"}


async def test_a_plan_can_give_medium_issues_updates_of_their_own_pace(
    make: tuple[Make, PagerDutyFake],
) -> None:
    build, _ = make
    h = await build('[sla.essentials.priority.medium]\nupdate_interval = "2h"\n')
    await h.fail("shop-blog", 3)
    await run(h)
    h.clock.advance(3700)
    await run(h)
    (ticket,) = h.tickets()
    assert not any("is still down" in note for note in h.notes(ticket["id"]))
    h.clock.advance(3600)
    await run(h)
    assert any("is still down" in note for note in h.notes(ticket["id"]))


def test_the_defaults_are_the_policy_documents() -> None:
    config = parse_config(
        "[customers.x]\nsla = 'vip'\n[sla.vip]\npage_hours = 'always'\n"
        "[sla.vip.priority.low]\nupdate_interval = 'off'\nresolution = '48h'\n"
    )
    urgent = config.policy_for("x", "urgent")
    assert (urgent.page, urgent.response, urgent.resolution, urgent.clock) == (
        True,
        3600.0,
        7200.0,
        "calendar",
    )
    high = config.policy_for("x", "high")
    assert (high.page, high.update_interval, high.response, high.resolution, high.clock) == (
        False,
        3600.0,
        4 * 3600.0,
        4 * 3600.0,
        "business",
    )
    low = config.policy_for("x", "low")
    assert (low.update_interval, low.response, low.resolution) == (None, 48 * 3600.0, 48 * 3600.0)
    assert config.policy_for(None, "medium").update_interval is None


def test_a_plan_that_pages_in_business_hours_counts_working_hours_even_for_urgent() -> None:
    """Nobody is paged at night for such a plan, so the night cannot count against it: its
    urgent issue opened at 02:00 is due an hour after the office opens, not at 03:00."""
    config = parse_config(
        "[customers.x]\nsla = 'office'\n[customers.y]\nsla = 'oncall'\n"
        "[sla.office]\npage_hours = 'business'\n"
        "[sla.oncall]\npage_hours = 'business'\n[sla.oncall.priority.urgent]\n"
        "page_hours = 'always'\n"
    )
    assert config.policy_for("x", "urgent").clock == "business"
    assert config.policy_for("x", "medium").clock == "business"
    # Where the plan pages an urgent issue 24/7, its targets count every hour again.
    assert config.policy_for("y", "urgent").clock == "calendar"
    assert config.policy_for(None, "urgent").clock == "calendar"


def test_a_bad_priority_table_names_its_key() -> None:
    from monitor.errors import ConfigError

    with pytest.raises(ConfigError) as raised:
        parse_config("[sla.vip.priority.critical]\npage = true\n[sla.vip.priority.low]\npgae = 1\n")
    paths = {problem.path for problem in raised.value.problems}
    assert "sla.vip.priority.critical" in paths
    assert "sla.vip.priority.low.pgae" in paths


def series(h: Harness, name: str, **labels: str) -> float:
    """The value of one series in /metrics, whatever the order of its labels (0 when absent)."""
    for family in text_string_to_metric_families(h.agent.metrics.exposition().decode()):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return 0.0


async def test_closure_and_breaches_of_an_urgent_issue_count_every_hour(
    make: tuple[Make, PagerDutyFake],
) -> None:
    build, _ = make
    h = await build("")
    await h.fail("vip-web", 3)  # opens 05:01 in Toronto; nobody picks it up
    await run(h)
    h.clock.advance(2.5 * 3600)
    await run(h)
    assert series(h, "watchdesk_sla_breaching", kind="response") == 1
    assert series(h, "watchdesk_sla_breaching", kind="resolution") == 1
    await h.succeed("vip-web", 2)
    await run(h)
    labels = {"priority": "urgent", "customer": "bigco"}
    # Resolved after its escalation to L2: counted in the tier it had reached.
    assert series(h, "watchdesk_incidents_resolved_total", tier="L2", **labels) == 1
    assert series(h, "watchdesk_incident_resolve_seconds_count", tier="L2", **labels) == 1
    assert series(h, "watchdesk_incidents_resolved_total", tier="L1", **labels) == 0
    assert series(h, "watchdesk_sla_breaches_total", kind="resolution", **labels) == 1
    assert series(h, "watchdesk_sla_breaches_total", kind="response", **labels) == 1
    assert series(h, "watchdesk_sla_breaching", kind="resolution") == 0


async def test_a_high_issue_counts_working_hours_only(make: tuple[Make, PagerDutyFake]) -> None:
    """Opened at 05:00 (before business hours), resolved at 11:00: six hours on the wall, three
    working hours, within both 4-hour targets."""
    build, _ = make
    h = await build("")
    await h.fail("vip-api", 3)
    await run(h)
    h.clock.set(toronto(11, 0))
    await h.succeed("vip-api", 2)
    await run(h)
    labels = {"priority": "high", "customer": "bigco"}
    assert series(h, "watchdesk_incidents_resolved_total", tier="L1", **labels) == 1
    assert series(h, "watchdesk_sla_breaches_total", kind="resolution", **labels) == 0
    assert series(h, "watchdesk_sla_breaches_total", kind="response", **labels) == 0
    # The same issue on a calendar clock would have missed them.
    h2 = await build('[sla.vip.priority.high]\nclock = "calendar"\n')
    await h2.fail("vip-api", 3)
    await run(h2)
    h2.clock.set(toronto(11, 0))
    await h2.succeed("vip-api", 2)
    await run(h2)
    assert series(h2, "watchdesk_sla_breaches_total", kind="resolution", **labels) == 1


async def test_a_priority_change_by_reload_is_told_to_the_requester(
    make: tuple[Make, PagerDutyFake], tmp_path: Path
) -> None:
    build, _ = make
    h = await build("")
    await h.fail("vip-api", 3)  # high
    await run(h)
    # The same config with vip-api raised to urgent, as a file the agent reloads.
    raised = policy_config("http://127.0.0.1:9/v2/enqueue", "http://127.0.0.1:9") + (
        MORE_TARGETS.replace('priority = "high"', 'priority = "urgent"')
    )
    state_dir = h.agent.config.agent.state_dir
    config = tmp_path / "reloaded.toml"
    config.write_text(raised.replace("[agent]\n", f'[agent]\nstate_dir = "{state_dir}"\n', 1))
    h.agent.config_path = str(config)
    assert await h.agent.reload()
    await run(h)
    (incident,) = await h.incidents()
    assert incident.priority == "urgent"
    (ticket,) = h.tickets()
    assert any("from high to urgent" in note for note in h.notes(ticket["id"]))


async def test_pending_on_the_customer_pauses_a_business_hours_target_by_its_open_time(
    make: tuple[Make, PagerDutyFake],
) -> None:
    """A VIP high issue opened at 05:01 (before business hours) is due at 12:00: four working
    hours from 08:00. Someone sets its ticket pending on the customer from 06:00 to 07:30 (the
    night costs nothing) and from 09:00 to 10:00 (an hour of open time): due at 13:00."""
    build, _ = make
    h = await build("")
    await h.fail("vip-api", 3)
    await run(h)
    (incident,) = await h.incidents()
    ticket = str(incident.ticket_id)
    for hour, minute, status in ((6, 0, "pending"), (7, 30, "open"), (9, 0, "pending")):
        h.clock.set(toronto(hour, minute))
        h.local.change_status(ticket, status)
        await run(h)
    h.clock.set(toronto(10, 0))
    h.local.change_status(ticket, "open")
    await run(h)
    (incident,) = await h.incidents()
    assert incident.pauses == (
        (toronto(6, 0), toronto(7, 30)),
        (toronto(9, 0), toronto(10, 0)),
    )
    assert h.agent.policy.timeliness.resolution_due(incident) == toronto(13, 0)
    h.clock.set(toronto(12, 59))
    await run(h)
    assert series(h, "watchdesk_sla_breaching", kind="resolution") == 0
    h.clock.set(toronto(13, 1))
    await run(h)
    assert series(h, "watchdesk_sla_breaching", kind="resolution") == 1
    await h.succeed("vip-api", 2)
    labels = {"priority": "high", "customer": "bigco"}
    assert series(h, "watchdesk_sla_breaches_total", kind="resolution", **labels) == 1


SUPPORT_CALENDAR = """
[agent]
timezone = "America/Toronto"

[calendars.support]
"mon-fri" = "10:00-17:40"
sat = "09:30-13:30"
sun = "closed"
holidays = [2026-11-02]

[sla.vip]
calendar = "support"

[customers.bigco]
sla = "vip"
"""


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from(["urgent", "high", "medium", "low"]),
    st.integers(0, 5 * 24 * 60),
    st.lists(st.tuples(st.integers(-600, 3 * 24 * 60), st.integers(1, 600)), max_size=3),
)
def test_a_plans_deadlines_with_pauses_match_the_minute_by_minute_definition(
    priority: str, offset: int, paused: list[tuple[int, int]]
) -> None:
    """The plan's own clock (every hour for urgent, the support calendar's open hours for the
    rest, across the 2026-11-01 DST change and a holiday), pauses of a ticket pending on the
    customer left out: the same answer as counting minute by minute."""
    config = parse_config(SUPPORT_CALENDAR)
    policy = config.policy_for("bigco", priority)  # type: ignore[arg-type]
    start = datetime(2026, 10, 30, 9, 0, tzinfo=TORONTO).timestamp() + offset * 60
    pauses = [(start + a * 60, start + (a + n) * 60) for a, n in paused]
    calendar = None if policy.clock == "calendar" else policy.calendar
    minutes = int(policy.response // 60)
    expected = brute_deadline(calendar, start, minutes, list(pauses), 10 * 24 * 60)
    due = deadline(policy, start, policy.response, pauses)
    assert due == expected if expected is not None else due > start + 10 * 86400
