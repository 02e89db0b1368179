"""Every backend that can follow a ticket after recovery, against its stand-in (or the local
tables): the four statuses the agent sets, what ``get`` says about waiting on the customer,
and the customer's replies it reports (only the requester's, only after ``replies_since``)."""

from __future__ import annotations

from tests.helpdesks import Helpdesk
from tests.samples import DRAFT
from ticketing.base import NewStatus, TicketBackend

# Where each status the agent sets leaves the ticket, in tests.helpdesks' words (Jira's Done and
# a closed GitHub issue are where both resolved and closed go).
RESOLVED = {"jira": "closed", "github": "closed"}


async def test_the_statuses_the_agent_sets(
    desk_and_backend: tuple[Helpdesk, TicketBackend],
) -> None:
    desk, backend = desk_and_backend
    ref = await backend.create(DRAFT)
    steps: list[tuple[NewStatus, str]] = [
        ("pending", "pending"),
        ("open", "open"),
        ("resolved", RESOLVED.get(desk.name, "resolved")),
        ("open", "open"),  # a reply reopens a resolved ticket
        ("pending", "pending"),
        ("closed", "closed"),
    ]
    for status, expected in steps:
        await backend.set_status(ref, status)
        assert desk.state(ref.id) == expected, (status, desk.name)
        if expected != "closed":
            info = await backend.get(ref)
            assert info.waiting_on_customer == (status == "pending"), (status, info)


async def test_the_customers_reply_and_only_theirs(
    desk_and_backend: tuple[Helpdesk, TicketBackend],
) -> None:
    desk, backend = desk_and_backend
    ref = await backend.create(DRAFT)
    await backend.set_status(ref, "pending")
    await backend.add_note(ref, "web has recovered at 10:05.", public=True)
    await backend.add_note(ref, "internal: recovered", public=False)
    assert (await backend.get(ref, replies_since=0.0)).last_customer_reply_at is None

    replied = 1_795_520_000.0
    desk.reply(ref.id, replied)
    assert (await backend.get(ref, replies_since=replied - 600)).last_customer_reply_at == replied
    assert (await backend.get(ref, replies_since=replied)).last_customer_reply_at is None
    assert (await backend.get(ref)).last_customer_reply_at is None  # not asked: not looked up
