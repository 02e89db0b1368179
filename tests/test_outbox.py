"""Nothing lost, nothing twice: the outbox against a Freshdesk stand-in that fails on purpose."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from tests.agent_harness import Harness
from tests.fakes.freshdesk import FreshdeskFake

API_KEY = "fd-test-key-0123456789"

TARGET = """
[defaults]
interval = "30s"
timeout = "5s"

[[targets]]
name = "web"
kind = "http"
url = "https://www.acme.example/health"
customer = "acme"

[customers.acme]
email = "it@acme.example"
"""


def freshdesk_config(url: str, key_env: str = "FD_TEST_KEY") -> str:
    return (
        TARGET
        + '[ticketing]\nbackend = "freshdesk"\nrequest_timeout = "500ms"\n'
        + f'[ticketing.freshdesk]\nurl = "{url}"\napi_key_env = "{key_env}"\n'
        + 'requester_email = "monitoring@acme.example"\n'
    )


@pytest.fixture
async def freshdesk() -> AsyncIterator[FreshdeskFake]:
    async with FreshdeskFake(api_key=API_KEY) as fake:
        yield fake


@pytest.fixture
async def harness(
    tmp_path: Path, freshdesk: FreshdeskFake, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Callable[..., Harness]]:
    monkeypatch.setenv("FD_TEST_KEY", API_KEY)
    made: list[Harness] = []

    def build(text: str | None = None) -> Harness:
        h = Harness(tmp_path / "state", text or freshdesk_config(freshdesk.url))
        made.append(h)
        return h

    yield build
    for h in made:
        await h.close()


def pending(h: Harness) -> list[tuple[str, str]]:
    return [
        (a.operation, a.state)
        for i in h.incidents()
        for a in h.agent.store.actions_of(i.id)
        if a.state != "done"
    ]


async def test_the_ticket_arrives_with_the_real_freshdesk_fields(
    harness: Callable[..., Harness], freshdesk: FreshdeskFake
) -> None:
    h = harness()
    h.fail("web", 3, reason="status 503")
    await h.deliver()
    (ticket,) = freshdesk.tickets.values()
    assert ticket["subject"] == "[URGENT] web is down"
    assert ticket["priority"] == 4
    assert ticket["status"] == 2
    assert freshdesk.contacts[ticket["requester_id"]] == "it@acme.example"
    assert "watchdesk" in ticket["tags"]
    (incident,) = h.incidents()
    assert incident.ticket_id == str(ticket["id"])
    assert incident.ticket_url == f"{freshdesk.url}/a/tickets/{ticket['id']}"


async def test_a_helpdesk_outage_delays_the_ticket_and_loses_nothing(
    harness: Callable[..., Harness], freshdesk: FreshdeskFake
) -> None:
    h = harness()
    freshdesk.fail_next("create", "503", count=3)
    h.fail("web", 3)
    for _ in range(3):
        await h.deliver()
        assert freshdesk.tickets == {}
        h.clock.advance(700)  # past any backoff
    await h.deliver()
    assert len(freshdesk.tickets) == 1
    assert len(freshdesk.requests_to("create")) == 4
    text = h.agent.metrics.exposition().decode()
    assert 'operation="create",result="retry"} 3.0' in text
    assert 'operation="create",result="success"} 1.0' in text


async def test_429_waits_for_retry_after(
    harness: Callable[..., Harness], freshdesk: FreshdeskFake
) -> None:
    h = harness()
    freshdesk.fail_next("create", "429", retry_after=7)
    h.fail("web", 3)
    await h.deliver()
    (action,) = h.agent.store.actions_of(h.incidents()[0].id)
    assert 7 <= action.next_attempt_at - h.clock.now() <= 8.01
    h.clock.advance(6)
    await h.deliver()
    assert len(freshdesk.requests_to("create")) == 1  # not hammered before Retry-After
    h.clock.advance(3)
    await h.deliver()
    assert len(freshdesk.tickets) == 1


@pytest.mark.parametrize("kind", ["timeout", "drop"])
async def test_a_create_whose_answer_was_lost_is_reconciled_not_duplicated(
    harness: Callable[..., Harness], freshdesk: FreshdeskFake, kind: str
) -> None:
    h = harness()
    freshdesk.fail_next("create", kind)  # the ticket is created, the answer never arrives
    h.fail("web", 3)
    await h.deliver()
    assert len(freshdesk.tickets) == 1
    assert h.incidents()[0].ticket_id is None
    h.clock.advance(700)
    await h.deliver()
    (ticket,) = freshdesk.tickets.values()
    assert h.incidents()[0].ticket_id == str(ticket["id"])
    assert len(freshdesk.requests_to("search")) >= 1
    assert len(freshdesk.requests_to("create")) == 1


async def test_a_lagging_search_index_is_waited_for_before_creating_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FD_TEST_KEY", API_KEY)
    async with FreshdeskFake(api_key=API_KEY, search_lag=3600) as fake:
        h = Harness(tmp_path / "state", freshdesk_config(fake.url))
        try:
            fake.fail_next("create", "timeout")
            h.fail("web", 3)
            await h.deliver()
            # The search cannot see the ticket yet: "not found" is no proof, so no second create
            # while the index may still be catching up.
            for _ in range(4):
                h.clock.advance(30)
                await h.deliver()
            assert len(fake.requests_to("create")) == 1
            assert len(fake.tickets) == 1
        finally:
            await h.close()


async def test_bad_credentials_are_logged_once_not_hammered_and_retried_after_a_fix(
    harness: Callable[..., Harness],
    freshdesk: FreshdeskFake,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("FD_TEST_KEY", "wrong-key-value")
    h = harness()
    h.fail("web", 3)
    await h.deliver()
    for _ in range(3):
        h.clock.advance(3600)
        await h.deliver()
    assert len(freshdesk.requests_to("create")) == 1
    refusals = [r for r in caplog.records if "refused create" in r.getMessage()]
    assert len(refusals) == 1
    assert "HTTP 401" in refusals[0].getMessage()
    assert "wrong-key-value" not in caplog.text
    assert pending(h) == [("create", "failed")]
    text = h.agent.metrics.exposition().decode()
    assert 'operation="create",result="error"} 1.0' in text
    assert "watchdesk_outbox_pending 1.0" in text
    await h.close()

    # Fixed credentials and a restart: the refused create goes out, exactly once.
    monkeypatch.setenv("FD_TEST_KEY", API_KEY)
    again = harness()
    await again.deliver()
    assert len(freshdesk.tickets) == 1
    assert pending(again) == []


async def test_notes_wait_behind_their_create_and_survive_a_dropped_connection(
    harness: Callable[..., Harness], freshdesk: FreshdeskFake
) -> None:
    h = harness()
    freshdesk.fail_next("create", "503")
    h.fail("web", 3)
    h.succeed("web", 2)  # recovery note and pending status queued behind the create
    await h.deliver()
    assert freshdesk.tickets == {}
    assert freshdesk.requests_to("note") == []
    freshdesk.fail_next("note", "drop_before")
    h.clock.advance(700)
    await h.deliver()
    h.clock.advance(700)
    await h.deliver()
    (ticket,) = freshdesk.tickets.values()
    (note,) = freshdesk.notes[ticket["id"]]
    assert "web has recovered" in note["body"]
    assert note["private"] is False
    assert ticket["status"] == 3  # pending: waiting on the customer
    assert pending(h) == []
