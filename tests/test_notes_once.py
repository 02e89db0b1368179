"""A note exactly once on every helpdesk that lists a ticket's notes: the recovery note whose
answer was lost is looked for on the ticket and not sent again; one whose request never arrived
is looked for, not found, and sent. Each helpdesk's stand-in loses the answer on the wire."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.agent_harness import Harness
from tests.helpdesks import ENV, Helpdesk, helpdesk
from tests.samples import DRAFT
from ticketing.base import NoteFinder, TicketBackend

TARGET = """
[defaults]
interval = "30s"
timeout = "5s"

[[targets]]
name = "web"
kind = "http"
url = "https://www.acme.example/health"
"""

# Per stand-in: the route a note goes to, and the route that lists a ticket's notes.
ROUTES = {
    "freshdesk": ("note", "conversations"),
    "zendesk": ("update", "comments"),
    "jira": ("comment", "comments"),
    "servicenow": ("update", "journal"),
    "github": ("comment", "comments"),
}


@pytest.fixture(params=sorted(ROUTES))
async def desk(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Helpdesk]:
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    async with helpdesk(request.param) as found:
        yield found


async def recover_with(desk: Helpdesk, tmp_path: Path, kind: str) -> tuple[Harness, str]:
    """An outage of ``web`` with its ticket, then its recovery note's request fails as ``kind``;
    the outbox goes on until nothing is left. Returns the harness and the ticket's id."""
    fake = desk.fake  # type: ignore[attr-defined]
    h = await Harness.create(tmp_path / "state", TARGET + desk.toml())
    await h.fail("web", 3)
    await h.deliver()
    (incident,) = await h.incidents()
    assert incident.ticket_id is not None
    fake.fail_next(ROUTES[desk.name][0], kind)
    await h.succeed("web", 2)
    for _ in range(4):
        await h.deliver()
        h.clock.advance(60)
    return h, incident.ticket_id


async def undone(h: Harness) -> list[str]:
    """The actions of every incident not yet done (a note stuck in retries would be here)."""
    return [
        a.operation
        for i in await h.incidents()
        for a in await h.agent.store.actions_of(i.id)
        if a.state != "done"
    ]


def recovery_notes(desk: Helpdesk, ticket_id: str) -> list[str]:
    written = desk.notes(ticket_id, public=True) + desk.notes(ticket_id, public=False)
    return [note for note in written if "web has recovered" in note]


async def test_a_note_whose_answer_was_lost_is_found_not_sent_twice(
    desk: Helpdesk, tmp_path: Path
) -> None:
    h, ticket_id = await recover_with(desk, tmp_path, "drop")
    try:
        assert len(recovery_notes(desk, ticket_id)) == 1, desk.name
        assert desk.fake.requests_to(ROUTES[desk.name][1]), "the ticket's notes were read"  # type: ignore[attr-defined]
        assert await undone(h) == []
    finally:
        await h.close()


async def test_a_note_whose_request_never_arrived_is_sent(desk: Helpdesk, tmp_path: Path) -> None:
    h, ticket_id = await recover_with(desk, tmp_path, "drop_before")
    try:
        assert len(recovery_notes(desk, ticket_id)) == 1, desk.name
        assert desk.fake.requests_to(ROUTES[desk.name][1]), "looked for before sending again"  # type: ignore[attr-defined]
        assert await undone(h) == []
    finally:
        await h.close()


async def test_only_our_own_note_counts_and_every_page_is_read(
    desk_and_backend: tuple[Helpdesk, TicketBackend],
) -> None:
    """The customer's comment of the same text is not our note; a note of ours written before
    a hundred others is found, as public or internal, whichever it was."""
    desk, backend = desk_and_backend
    assert isinstance(backend, NoteFinder)
    ref = await backend.create(DRAFT)
    desk.reply(ref.id, 1_795_520_000.0)
    reply = "It is broken again, please have a look."
    assert not await backend.has_note(ref, reply, public=True)
    note = "web has recovered at 10:05.\n\nIt was down for 5m."
    await backend.add_note(ref, note, public=False)
    for n in range(100):
        await backend.add_note(ref, f"update {n}", public=True)
    assert await backend.has_note(ref, "  web has recovered at 10:05. It was down for 5m. ", False)
    assert not await backend.has_note(ref, note, public=True)
    assert not await backend.has_note(ref, "web has recovered at 10:06.", public=False)
