"""A note exactly once on every helpdesk that lists a ticket's notes: the recovery note whose
answer was lost is looked for on the ticket and not sent again; one whose request never arrived
is looked for, not found, and sent. Each helpdesk's stand-in loses the answer on the wire."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.agent_harness import Harness
from tests.helpdesks import ENV, Helpdesk, helpdesk

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
