"""The ticket after recovery, against every helpdesk that can report a customer's reply (the
local one and each stand-in, through the real backends), on a manual clock:

(a) a ticket left pending without a reply for ``auto_close_after`` gets one closing note and is
    closed once, restarts or not;
(b) a customer's reply opens it again (watchdesk sets it open when the helpdesk does not do so
    itself), a private note says so, and the SLA clocks count again from the reply;
(c) during an outage, a ticket a person set pending on the customer stops the SLA clocks: the
    breach moves by exactly the paused time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from monitor.actions import SetStatus
from monitor.store import Incident
from tests.agent_harness import START, Harness
from tests.helpdesks import ENV, NAMES, Helpdesk, helpdesk
from tests.test_sla_policy import series

CONFIG = """
[defaults]
interval = "30s"
failure_threshold = 3
recovery_threshold = 2

[[targets]]
name = "web"
kind = "http"
url = "https://www.acme.example/health"
customer = "acme"

[customers.acme]
email = "it@acme.example"
name = "Acme"

[escalation]
poll_interval = "1m"
"""
DAY = 86400.0
CLOSING = "closed after 7 days without reply"


@pytest.fixture(params=NAMES)
async def desk(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Helpdesk]:
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    async with helpdesk(request.param) as found:
        yield found


async def start(tmp_path: Path, desk: Helpdesk, at: float = START, extra: str = "") -> Harness:
    """The agent (again, after a restart: same store, same helpdesk) at ``at``."""
    h = await Harness.create(tmp_path / "state", CONFIG + desk.toml() + extra, start=at)
    desk.bind(lambda: h.local)
    return h


async def restart(h: Harness, tmp_path: Path, desk: Helpdesk, later: float = 0.0) -> Harness:
    at = h.clock.now() + later
    await h.close()
    return await start(tmp_path, desk, at)


async def outage_and_recovery(h: Harness) -> Incident:
    """web goes down (its ticket opens), recovers (its ticket is set pending)."""
    await h.fail("web", 3)
    await h.deliver()
    await h.succeed("web", 2)
    await h.deliver()
    (incident,) = await h.incidents()
    return incident


async def follow(h: Harness) -> None:
    """What the housekeeping's follow-up and the outbox do."""
    await h.agent.policy.follow_up.sweep()
    await h.deliver()


async def statuses(h: Harness, incident: Incident) -> list[SetStatus]:
    return [
        action
        for row in await h.agent.store.actions_of(incident.id)
        if isinstance(action := row.action(), SetStatus)
    ]


async def test_a_pending_ticket_without_a_reply_is_closed_once_after_7_days(
    desk: Helpdesk, tmp_path: Path
) -> None:
    h = await start(tmp_path, desk)
    incident = await outage_and_recovery(h)
    ticket = str(incident.ticket_id)
    assert desk.state(ticket) == "pending"
    assert (incident.ticket_state, incident.pending_since) == ("pending", h.clock.now())
    waits_from = h.clock.now()

    h.clock.set(waits_from + 7 * DAY - 60)
    await follow(h)
    h = await restart(h, tmp_path, desk)
    await follow(h)
    assert desk.state(ticket) == "pending"
    assert not [note for note in desk.notes(ticket, public=True) if CLOSING in note]

    h = await restart(h, tmp_path, desk, later=120)  # the 7 days are over
    await h.agent.policy.follow_up.sweep()  # decided...
    h = await restart(h, tmp_path, desk)  # ...and the agent stops before delivering
    await h.deliver()
    for _ in range(3):
        h.clock.advance(DAY)
        await follow(h)

    closing = [note for note in desk.notes(ticket, public=True) if CLOSING in note]
    assert len(closing) == 1
    assert "reply, and the ticket will open again" in closing[0]
    assert desk.state(ticket) == "closed"
    (incident,) = await h.incidents()
    assert (incident.ticket_state, incident.closed_at) == ("closed", waits_from + 7 * DAY + 60)
    assert await statuses(h, incident) == [SetStatus("pending"), SetStatus("closed")]
    await h.close()


async def test_a_customer_reply_reopens_the_ticket_and_restarts_the_sla_clocks(
    desk: Helpdesk, tmp_path: Path
) -> None:
    h = await start(tmp_path, desk)
    incident = await outage_and_recovery(h)
    ticket = str(incident.ticket_id)
    h.clock.advance(2 * 3600)
    replied_at = h.clock.now()
    desk.reply(ticket, replied_at)
    h.clock.advance(60)
    await follow(h)

    assert desk.state(ticket) == "open"
    (incident,) = await h.incidents()
    assert (incident.ticket_state, incident.reopened_at, incident.reopens) == (
        "reopened",
        replied_at,
        1,
    )
    (note,) = desk.notes(ticket, public=False)
    assert "The customer replied" in note
    assert "open again" in note
    # Freshdesk and Zendesk reopen a ticket on the requester's reply themselves.
    reopened_by_us = [s for s in await statuses(h, incident) if s.status == "open"]
    assert len(reopened_by_us) == (0 if desk.name in ("freshdesk", "zendesk") else 1)
    # A new round: an urgent issue is answered within the hour, solved within two, from the reply.
    timeliness = h.agent.policy.timeliness
    assert timeliness.response_due(incident) == replied_at + 3600
    assert timeliness.resolution_due(incident) == replied_at + 2 * 3600
    assert series(h, "watchdesk_tickets_reopened_total", priority="urgent", customer="acme") == 1

    h.clock.set(replied_at + 3600 + 60)  # nobody has answered within the hour
    await h.agent.policy.sweep()
    assert series(h, "watchdesk_sla_breaching", kind="response") == 1

    desk.set_pending(ticket)  # someone answers and waits on the customer again
    await follow(h)
    (incident,) = await h.incidents()
    assert (incident.ticket_state, incident.pending_since) == ("pending", h.clock.now())
    labels = {"priority": "urgent", "customer": "acme"}
    assert series(h, "watchdesk_sla_breaches_total", kind="response", **labels) == 1
    assert series(h, "watchdesk_sla_breaches_total", kind="resolution", **labels) == 0
    await h.agent.policy.sweep()
    assert series(h, "watchdesk_sla_breaching", kind="response") == 0

    h.clock.advance(7 * DAY + 60)  # the same cycle: no reply for 7 days, closed
    await follow(h)
    assert desk.state(ticket) == "closed"
    assert len([note for note in desk.notes(ticket, public=True) if CLOSING in note]) == 1
    assert series(h, "watchdesk_tickets_auto_closed_total", **labels) == 1
    await h.close()


async def test_a_ticket_pending_on_the_customer_during_an_outage_moves_the_breach(
    desk: Helpdesk, tmp_path: Path
) -> None:
    """Urgent (every hour counts): response within 1h, resolution within 2h, escalation after
    1h. Pending on the customer from +10m to +40m, with a restart in between: each moves by
    exactly 30 minutes, and pending is no work on the ticket."""
    h = await start(tmp_path, desk)
    await h.fail("web", 3)
    await h.deliver()
    (incident,) = await h.incidents()
    opened, ticket = incident.opened_at, str(incident.ticket_id)
    await h.agent.policy.sweep()
    h.clock.set(opened + 600)
    desk.set_pending(ticket)
    await h.agent.policy.sweep()
    h = await restart(h, tmp_path, desk)
    h.clock.set(opened + 2400)
    desk.set_open(ticket)
    await h.agent.policy.sweep()

    (incident,) = await h.incidents()
    assert incident.pauses == ((opened + 600, opened + 2400),)
    assert incident.worked_at is None
    timeliness = h.agent.policy.timeliness
    assert timeliness.response_due(incident) == opened + 3600 + 1800
    assert timeliness.resolution_due(incident) == opened + 2 * 3600 + 1800

    h.clock.set(opened + 3600 + 1800 - 30)
    await h.agent.policy.sweep()
    assert (await h.incidents())[0].escalated_at is None
    assert series(h, "watchdesk_sla_breaching", kind="response") == 0
    h.clock.set(opened + 3600 + 1800 + 30)
    await h.agent.policy.sweep()
    assert (await h.incidents())[0].escalated_at == h.clock.now()
    assert series(h, "watchdesk_sla_breaching", kind="response") == 1

    h.clock.set(opened + 2 * 3600 + 1800 - 30)
    await h.agent.policy.sweep()
    assert series(h, "watchdesk_sla_breaching", kind="resolution") == 0
    h.clock.set(opened + 2 * 3600 + 1800 + 30)
    await h.agent.policy.sweep()
    assert series(h, "watchdesk_sla_breaching", kind="resolution") == 1
    await h.close()
