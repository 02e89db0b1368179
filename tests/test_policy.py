"""The support policy on a manual clock: pages, business hours, escalation, hourly updates.

Pagers are real adapters talking to PagerDuty and Opsgenie stand-ins; tickets go to the local
helpdesk. An hour of policy runs in milliseconds.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tests.agent_harness import Harness
from tests.fakes.opsgenie import OpsgenieFake
from tests.fakes.pagerduty import PagerDutyFake

PD_KEY = "0123456789abcdef0123456789abcdef"
OG_KEY = "opsgenie-test-key"
TORONTO = ZoneInfo("America/Toronto")
# START is Tuesday 2026-11-24 10:00 UTC = 05:00 in Toronto: before business hours.


def toronto(hour: int, minute: int = 0, day: int = 24) -> float:
    return datetime(2026, 11, day, hour, minute, tzinfo=TORONTO).timestamp()


def policy_config(pd_url: str, og_url: str, escalation: str = "") -> str:
    return f"""
[agent]
timezone = "America/Toronto"

[defaults]
interval = "30s"
failure_threshold = 3
recovery_threshold = 2

[[targets]]
name = "vip-web"
kind = "http"
url = "https://vip.example/health"
customer = "bigco"

[[targets]]
name = "shop"
kind = "http"
url = "https://shop.example/"
customer = "smallco"

[customers.bigco]
email = "ops@bigco.example"
sla = "vip"

[customers.smallco]
email = "owner@smallco.example"
sla = "essentials"

[sla.vip]
page_hours = "always"

[sla.essentials]
page_hours = "business"

[business_hours]
days = ["mon", "tue", "wed", "thu", "fri"]
start = "08:00"
end = "17:00"

[pagers.oncall]
type = "pagerduty"
routing_key_env = "PD_TEST_KEY"
url = "{pd_url}"

[pagers.manager]
type = "opsgenie"
api_key_env = "OG_TEST_KEY"
url = "{og_url}"

[escalation]
{escalation or 'page_on_open = ["oncall"]'}
ack_timeout = {{ urgent = "1h" }}
page_on_escalation = ["manager"]
status_update_interval = "1h"
poll_interval = "5m"
"""


class Stand:
    def __init__(
        self,
        pagerduty: PagerDutyFake,
        opsgenie: OpsgenieFake,
        make: Callable[..., Awaitable[Harness]],
    ) -> None:
        self.pagerduty = pagerduty
        self.opsgenie = opsgenie
        self.make = make


@pytest.fixture
async def stand(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Stand]:
    monkeypatch.setenv("PD_TEST_KEY", PD_KEY)
    monkeypatch.setenv("OG_TEST_KEY", OG_KEY)
    made: list[Harness] = []
    async with PagerDutyFake(routing_key=PD_KEY) as pd, OpsgenieFake(api_key=OG_KEY) as og:

        async def make(escalation: str = "") -> Harness:
            h = await Harness.create(
                tmp_path / "state", policy_config(pd.enqueue_url, og.url, escalation)
            )
            made.append(h)
            return h

        yield Stand(pd, og, make)
        for h in made:
            await h.close()


async def run(h: Harness) -> None:
    """What the agent's housekeeping and outbox do every few seconds."""
    await h.sweep()
    await h.agent.policy.sweep()
    await h.deliver()


def metric(h: Harness, line_start: str) -> float:
    for line in h.agent.metrics.exposition().decode().splitlines():
        if line.startswith(line_start):
            return float(line.split()[-1])
    return 0.0


async def test_the_manager_is_paged_once_when_an_urgent_ticket_opens(stand: Stand) -> None:
    h = await stand.make()
    await h.fail("vip-web", 3, reason="status 503")
    await run(h)
    (incident,) = await h.incidents()
    alert = stand.pagerduty.alerts[incident.dedup_key]
    assert alert["severity"] == "critical"
    assert alert["summary"] == "[URGENT] vip-web is down"
    assert alert["trigger_count"] == 1
    assert h.tickets()[0]["subject"] == "[URGENT] vip-web is down"
    for _ in range(3):
        await h.fail("vip-web", 2)
        await run(h)
    assert alert["trigger_count"] == 1
    assert metric(h, 'watchdesk_pages_total{pager="oncall",reason="open",result="success"}') == 1
    await h.close()

    # A restart does not page again.
    again = await stand.make()
    again.clock.set(h.clock.now())
    await again.fail("vip-web", 1)
    await run(again)
    assert len(stand.pagerduty.events) == 1
    assert alert["trigger_count"] == 1


async def test_a_business_hours_customer_gets_the_ticket_now_and_the_page_at_8(
    stand: Stand,
) -> None:
    h = await stand.make()
    await h.fail("shop", 3)
    await run(h)
    assert len(h.tickets()) == 1  # the ticket at once, at 05:01
    assert stand.pagerduty.events == []
    h.clock.set(toronto(7, 59))
    await h.fail("shop", 1)
    await run(h)
    assert stand.pagerduty.events == []
    h.clock.set(toronto(8, 0))
    await run(h)
    (event,) = stand.pagerduty.events
    assert event["event_action"] == "trigger"
    assert event["payload"]["summary"] == "[URGENT] shop is down"


async def test_a_page_waiting_for_business_hours_is_dropped_if_the_outage_ended(
    stand: Stand,
) -> None:
    h = await stand.make()
    await h.fail("shop", 3)
    await run(h)
    assert metric(h, "watchdesk_outbox_held") == 1
    await h.succeed("shop", 2)
    await run(h)
    # Dropped when the outage ends, in the night: not held until the office opens.
    assert metric(h, 'watchdesk_pages_total{pager="oncall",reason="open",result="skipped"}') == 1
    assert metric(h, "watchdesk_outbox_held") == 0
    assert metric(h, "watchdesk_outbox_pending") == 0
    h.clock.set(toronto(8, 0))
    await run(h)
    assert stand.pagerduty.events == []


async def test_friday_evening_waits_for_monday_and_holidays_are_skipped(stand: Stand) -> None:
    import dataclasses

    h = await stand.make()
    hours = h.config.calendar_of("smallco")  # [business_hours], the plan's calendar
    friday_evening = toronto(18, 0, day=27)
    assert hours.next_open(friday_evening) == toronto(8, 0, day=30)
    christmas_eve = datetime(2026, 12, 24, 18, 0, tzinfo=TORONTO).timestamp()
    holidays = dataclasses.replace(hours, holidays=frozenset({datetime(2026, 12, 25).date()}))
    expected = datetime(2026, 12, 28, 8, 0, tzinfo=TORONTO).timestamp()  # Fri 25th off, then Mon
    assert holidays.next_open(christmas_eve) == expected


async def test_escalation_exactly_at_the_ack_timeout_and_never_twice(stand: Stand) -> None:
    h = await stand.make()
    await h.fail("vip-web", 3)
    await run(h)
    (incident,) = await h.incidents()
    deadline = incident.opened_at + 3600
    h.clock.set(deadline - 1)
    await run(h)
    assert stand.opsgenie.alerts == {}
    h.clock.set(deadline)
    await run(h)
    (alert,) = stand.opsgenie.alerts.values()
    assert alert["alias"] == incident.dedup_key
    assert alert["priority"] == "P1"
    assert "nobody has picked it up" in alert["message"]
    notes = h.local.notes(str(h.tickets()[0]["id"]))
    escalated = [n for n in notes if str(n["body"]).startswith("Escalated to L2")]
    assert [str(n["body"]) for n in escalated] == [
        "Escalated to L2 (on-call manager): nobody has started working this ticket within 1h;"
        " paged manager."
    ]
    assert escalated[0]["public"] is False  # for the team
    # ... and the requester is told, as the policy says every escalation must be.
    told = [
        n
        for n in notes
        if n["public"] and "has been escalated to our on-call manager" in str(n["body"])
    ]
    assert len(told) == 1
    for hours in (2, 3, 5):
        h.clock.set(deadline + hours * 3600)
        await run(h)
    assert len([r for r in stand.opsgenie.requests if r["route"] == "create"]) == 1
    assert (
        metric(h, 'watchdesk_pages_total{pager="manager",reason="escalation",result="success"}')
        == 1
    )


async def test_no_escalation_when_someone_took_the_ticket(stand: Stand) -> None:
    h = await stand.make()
    await h.fail("vip-web", 3)
    await run(h)
    (incident,) = await h.incidents()
    h.clock.set(incident.opened_at + 1800)
    h.local.assign(str(h.tickets()[0]["id"]), "alice")
    h.clock.set(incident.opened_at + 3600)
    await run(h)
    assert stand.opsgenie.alerts == {}
    assert (await h.incidents())[0].worked_at is not None


async def test_no_escalation_when_the_page_was_acknowledged(stand: Stand) -> None:
    h = await stand.make('page_on_open = ["manager"]')
    await h.fail("vip-web", 3)
    await run(h)
    (incident,) = await h.incidents()
    stand.opsgenie.acknowledge(incident.dedup_key)
    h.clock.set(incident.opened_at + 3600)
    await run(h)
    # Only the opening page: no escalation page was created.
    assert len([r for r in stand.opsgenie.requests if r["route"] == "create"]) == 1
    assert (await h.incidents())[0].escalated_at is None


async def test_hourly_customer_updates_until_recovery(stand: Stand) -> None:
    h = await stand.make()
    await h.fail("vip-web", 3, reason="status 502")
    await run(h)
    (incident,) = await h.incidents()
    ticket = h.tickets()[0]["id"]

    def updates() -> list[str]:
        return [n for n in h.notes(ticket) if "it is still down" in n]

    h.clock.set(incident.opened_at + 3599)
    await run(h)
    assert updates() == []
    h.clock.set(incident.opened_at + 3600)
    await run(h)
    (first,) = updates()
    assert "An update on vip-web: it is still down, for 1h1m now" in first
    assert "Last error: status 502" in first
    assert first.startswith("Hello")  # the policy's correspondence: a polite opening,
    assert "our operations team has been notified" in first  # what happens next (not worked),
    assert "just reply to this ticket" in first  # an offer of help,
    assert "Thank you" in first  # and thanks
    h.clock.set(incident.opened_at + 5400)
    await run(h)
    assert len(updates()) == 1
    h.clock.set(incident.opened_at + 7200)
    await run(h)
    assert len(updates()) == 2
    await h.succeed("vip-web", 2)
    await run(h)
    h.clock.set(incident.opened_at + 4 * 3600)
    await run(h)
    assert len(updates()) == 2
    assert all(
        note["public"]
        for note in h.local.notes(str(ticket))
        if "it is still down" in str(note["body"])
    )


async def test_recovery_resolves_the_page(stand: Stand) -> None:
    h = await stand.make()
    await h.fail("vip-web", 3)
    await run(h)
    (incident,) = await h.incidents()
    await h.succeed("vip-web", 2)
    await run(h)
    assert stand.pagerduty.alerts[incident.dedup_key]["status"] == "resolved"


async def test_a_page_held_for_business_hours_is_not_backlog(stand: Stand) -> None:
    h = await stand.make()
    await h.fail("shop", 3)
    await run(h)
    assert metric(h, "watchdesk_outbox_held") == 1
    assert metric(h, "watchdesk_outbox_pending") == 0  # the backlog alert stays quiet at night
    h.clock.set(toronto(8, 0))
    await run(h)
    assert metric(h, "watchdesk_outbox_held") == 0
    assert metric(h, "watchdesk_outbox_pending") == 0


CHAIN = """page_on_open = ["oncall"]
chain = [
  { tier = "L2", role = "senior engineer", after = "30m", page = ["manager"] },
  { tier = "L3", role = "IT head", after = "1h", page = ["oncall"] },
]
repeat = 1"""


async def test_the_escalation_chain_climbs_tier_by_tier_and_repeats(stand: Stand) -> None:
    h = await stand.make(CHAIN)
    await h.fail("vip-web", 3)
    await run(h)
    (incident,) = await h.incidents()
    start = incident.opened_at
    for at, tiers in [
        (start + 1799, []),
        (start + 1800, ["L2"]),  # 30 minutes: the senior engineer
        (start + 5399, ["L2"]),
        (start + 5400, ["L2", "L3"]),  # an hour later: the IT head
        (start + 7200, ["L2", "L3", "L2"]),  # repeat once from the first level
        (start + 10800, ["L2", "L3", "L2", "L3"]),
        (start + 86400, ["L2", "L3", "L2", "L3"]),  # and then no more
    ]:
        h.clock.set(at)
        await run(h)
        notes = h.local.notes(str(h.tickets()[0]["id"]))
        private = [str(n["body"]) for n in notes if not n["public"]]
        assert [body.split()[2] for body in private if body.startswith("Escalated")] == tiers
    public = [str(n["body"]) for n in notes if n["public"]]
    assert sum("escalated to our senior engineer" in body for body in public) == 2
    assert sum("escalated to our IT head" in body for body in public) == 2
    assert len(stand.opsgenie.alerts) == 1  # L2 pages the manager (one alert per incident)
    assert metric(h, 'watchdesk_escalations_total{priority="urgent",tier="L2"}') == 2
    assert metric(h, 'watchdesk_escalations_total{priority="urgent",tier="L3"}') == 2


async def test_the_chain_stops_when_someone_works_the_ticket(stand: Stand) -> None:
    h = await stand.make(CHAIN)
    await h.fail("vip-web", 3)
    await run(h)
    (incident,) = await h.incidents()
    h.clock.set(incident.opened_at + 1800)
    await run(h)
    h.local.assign(str(h.tickets()[0]["id"]), "bob")
    h.clock.set(incident.opened_at + 5400)
    await run(h)
    notes = h.local.notes(str(h.tickets()[0]["id"]))
    assert [str(n["body"]).split()[2] for n in notes if str(n["body"]).startswith("Escalated")] == [
        "L2"
    ]


async def test_a_held_page_is_not_followed_by_its_escalation_in_the_same_minute(
    stand: Stand,
) -> None:
    """Opened at 05:00 for a business-hours customer: the page goes at 08:00, and the one-hour
    escalation counts from then (09:00), not from the night."""
    h = await stand.make()
    await h.fail("shop", 3)
    await run(h)
    h.clock.set(toronto(8, 0))
    await run(h)
    assert len(stand.pagerduty.events) == 1  # the open page
    assert stand.opsgenie.alerts == {}  # no escalation yet
    h.clock.set(toronto(8, 59))
    await run(h)
    assert stand.opsgenie.alerts == {}
    h.clock.set(toronto(9, 0))
    await run(h)
    assert len(stand.opsgenie.alerts) == 1
