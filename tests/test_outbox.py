"""Nothing lost, nothing twice: the outbox against a Freshdesk stand-in that fails on purpose."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from checks import ProbeResult
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
) -> AsyncIterator[Callable[..., Awaitable[Harness]]]:
    monkeypatch.setenv("FD_TEST_KEY", API_KEY)
    made: list[Harness] = []

    async def build(text: str | None = None) -> Harness:
        h = await Harness.create(tmp_path / "state", text or freshdesk_config(freshdesk.url))
        made.append(h)
        return h

    yield build
    for h in made:
        await h.close()


async def pending(h: Harness) -> list[tuple[str, str]]:
    return [
        (a.operation, a.state)
        for i in (await h.incidents())
        for a in await h.agent.store.actions_of(i.id)
        if a.state != "done"
    ]


async def test_the_ticket_arrives_with_the_real_freshdesk_fields(
    harness: Callable[..., Awaitable[Harness]], freshdesk: FreshdeskFake
) -> None:
    h = await harness()
    await h.fail("web", 3, reason="status 503")
    await h.deliver()
    (ticket,) = freshdesk.tickets.values()
    assert ticket["subject"] == "[URGENT] web is down"
    assert ticket["priority"] == 4
    assert ticket["status"] == 2
    assert freshdesk.contacts[ticket["requester_id"]] == "it@acme.example"
    assert "watchdesk" in ticket["tags"]
    (incident,) = await h.incidents()
    assert incident.ticket_id == str(ticket["id"])
    assert incident.ticket_url == f"{freshdesk.url}/a/tickets/{ticket['id']}"


async def test_a_helpdesk_outage_delays_the_ticket_and_loses_nothing(
    harness: Callable[..., Awaitable[Harness]], freshdesk: FreshdeskFake
) -> None:
    h = await harness()
    freshdesk.fail_next("create", "503", count=3)
    await h.fail("web", 3)
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
    harness: Callable[..., Awaitable[Harness]], freshdesk: FreshdeskFake
) -> None:
    h = await harness()
    freshdesk.fail_next("create", "429", retry_after=7)
    await h.fail("web", 3)
    await h.deliver()
    (action,) = await h.agent.store.actions_of((await h.incidents())[0].id)
    assert 7 <= action.next_attempt_at - h.clock.now() <= 8.01
    h.clock.advance(6)
    await h.deliver()
    assert len(freshdesk.requests_to("create")) == 1  # not hammered before Retry-After
    h.clock.advance(3)
    await h.deliver()
    assert len(freshdesk.tickets) == 1


@pytest.mark.parametrize("kind", ["timeout", "drop"])
async def test_a_create_whose_answer_was_lost_is_reconciled_not_duplicated(
    harness: Callable[..., Awaitable[Harness]], freshdesk: FreshdeskFake, kind: str
) -> None:
    h = await harness()
    freshdesk.fail_next("create", kind)  # the ticket is created, the answer never arrives
    await h.fail("web", 3)
    await h.deliver()
    assert len(freshdesk.tickets) == 1
    assert (await h.incidents())[0].ticket_id is None
    h.clock.advance(700)
    await h.deliver()
    (ticket,) = freshdesk.tickets.values()
    assert (await h.incidents())[0].ticket_id == str(ticket["id"])
    assert len(freshdesk.requests_to("search")) >= 1
    assert len(freshdesk.requests_to("create")) == 1


async def test_a_lagging_search_index_is_waited_for_before_creating_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FD_TEST_KEY", API_KEY)
    async with FreshdeskFake(api_key=API_KEY, search_lag=3600) as fake:
        h = await Harness.create(tmp_path / "state", freshdesk_config(fake.url))
        try:
            fake.fail_next("create", "timeout")
            await h.fail("web", 3)
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
    harness: Callable[..., Awaitable[Harness]],
    freshdesk: FreshdeskFake,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("FD_TEST_KEY", "wrong-key-value")
    h = await harness()
    await h.fail("web", 3)
    await h.deliver()
    for _ in range(3):
        h.clock.advance(3600)
        await h.deliver()
    assert len(freshdesk.requests_to("create")) == 1
    refusals = [r for r in caplog.records if "refused create" in r.getMessage()]
    assert len(refusals) == 1
    assert "HTTP 401" in refusals[0].getMessage()
    assert "wrong-key-value" not in caplog.text
    assert await pending(h) == [("create", "failed")]
    text = h.agent.metrics.exposition().decode()
    assert 'operation="create",result="error"} 1.0' in text
    assert "watchdesk_outbox_pending 1.0" in text
    await h.close()

    # Fixed credentials and a restart: the refused create goes out, exactly once.
    monkeypatch.setenv("FD_TEST_KEY", API_KEY)
    again = await harness()
    await again.deliver()
    assert len(freshdesk.tickets) == 1
    assert await pending(again) == []


async def test_notes_wait_behind_their_create_and_survive_a_dropped_connection(
    harness: Callable[..., Awaitable[Harness]], freshdesk: FreshdeskFake
) -> None:
    h = await harness()
    freshdesk.fail_next("create", "503")
    await h.fail("web", 3)
    await h.succeed("web", 2)  # recovery note and pending status queued behind the create
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
    assert await pending(h) == []


async def test_a_note_whose_answer_was_lost_is_looked_for_not_sent_twice(
    harness: Callable[..., Awaitable[Harness]], freshdesk: FreshdeskFake
) -> None:
    """Freshdesk stored the recovery note but the connection closed before its answer: the
    next attempt finds it among the ticket's conversations and sends nothing."""
    h = await harness()
    await h.fail("web", 3)
    await h.deliver()
    freshdesk.fail_next("note", "drop")
    await h.succeed("web", 2)
    for _ in range(3):
        await h.deliver()
        h.clock.advance(30)
    (ticket,) = freshdesk.tickets.values()
    (note,) = freshdesk.notes[ticket["id"]]
    assert "web has recovered" in note["body"]
    assert len(freshdesk.requests_to("note")) == 1
    assert freshdesk.requests_to("conversations")
    assert ticket["status"] == 3
    assert await pending(h) == []


async def test_maybe_sent_sticks_through_failed_searches_until_one_answers(
    harness: Callable[..., Awaitable[Harness]], freshdesk: FreshdeskFake
) -> None:
    """A lost answer, then the searches themselves get 503 and 429: no attempt in between may
    create again; the first search that answers finds the ticket."""
    h = await harness()
    freshdesk.fail_next("create", "drop")  # created, connection closed before the answer
    freshdesk.fail_next("search", "503")
    freshdesk.fail_next("search", "429", retry_after=2)
    freshdesk.fail_next("search", "drop_before")
    await h.fail("web", 3)
    for _ in range(6):
        await h.deliver()
        h.clock.advance(200)  # past the channel's backoff and Freshdesk's 180 s search lag
    assert len(freshdesk.requests_to("create")) == 1
    assert len(freshdesk.requests_to("search")) == 4
    (ticket,) = freshdesk.tickets.values()
    assert (await h.incidents())[0].ticket_id == str(ticket["id"])


async def test_maybe_sent_survives_a_restart(
    harness: Callable[..., Awaitable[Harness]], freshdesk: FreshdeskFake
) -> None:
    h = await harness()
    freshdesk.fail_next("create", "timeout")
    await h.fail("web", 3)
    await h.deliver()
    await h.close()
    again = await harness()
    again.clock.advance(200)
    await again.deliver()
    assert len(freshdesk.requests_to("create")) == 1
    assert (await again.incidents())[0].ticket_id == str(next(iter(freshdesk.tickets)))


async def test_a_gateway_error_on_a_create_is_treated_as_maybe_sent(
    harness: Callable[..., Awaitable[Harness]], freshdesk: FreshdeskFake
) -> None:
    h = await harness(
        freshdesk_config(freshdesk.url).replace("[ticketing]\n", '[ticketing]\nsearch_lag = "0s"\n')
    )
    freshdesk.fail_next("create", "502")
    await h.fail("web", 3)
    await h.deliver()
    h.clock.advance(20)
    await h.deliver()
    assert [r["route"] for r in freshdesk.requests] == ["create", "search", "create"]
    assert len(freshdesk.tickets) == 1


async def test_a_recovered_helpdesk_drains_its_whole_backlog_at_once(
    harness: Callable[..., Awaitable[Harness]], freshdesk: FreshdeskFake
) -> None:
    """Ten minutes of 503 with 20 incidents queued: the helpdesk is asked about once per
    backoff, not once per action, and once it answers everything goes within one backoff."""
    text = freshdesk_config(freshdesk.url)
    for n in range(19):
        text += f'\n[[targets]]\nname = "web{n}"\nkind = "tcp"\nhost = "127.0.0.1"\nport = 9\n'
    h = await harness(text)
    freshdesk.fail_next("*", "503", count=10_000)
    for name in ["web", *(f"web{n}" for n in range(19))]:
        await h.fail(name, 3)
    await h.deliver()
    for _ in range(600):
        h.clock.advance(1)
        await h.deliver()
    during = len(freshdesk.requests)
    assert during < 80  # a probe every <= 15 s, not 20 actions x exponential retries
    assert freshdesk.tickets == {}
    freshdesk.reset_failures()
    waited = 0
    while len(freshdesk.tickets) < 20 and waited < 30:
        h.clock.advance(1)
        waited += 1
        await h.deliver()
    assert len(freshdesk.tickets) == 20
    assert waited <= 16  # one channel backoff at most, whatever each action's own backoff


async def test_retry_after_is_honoured_exactly_for_the_whole_channel(
    harness: Callable[..., Awaitable[Harness]], freshdesk: FreshdeskFake
) -> None:
    text = freshdesk_config(freshdesk.url)
    text += '\n[[targets]]\nname = "db"\nkind = "tcp"\nhost = "127.0.0.1"\nport = 9\n'
    h = await harness(text)
    freshdesk.fail_next("create", "429", retry_after=7)
    await h.fail("web", 3)
    await h.deliver()
    for _ in range(3):  # a second incident, opened now: it waits for the channel too
        await h.agent.apply_result(h.agent.targets["db"], ProbeResult(False, 0.01, "refused"))
    h.clock.advance(6.9)
    await h.deliver()
    assert len(freshdesk.requests_to("create")) == 1
    h.clock.advance(0.1)
    await h.deliver()
    assert len(freshdesk.tickets) == 2


async def test_order_per_incident_holds_across_a_channel_outage(
    harness: Callable[..., Awaitable[Harness]], freshdesk: FreshdeskFake
) -> None:
    h = await harness()
    freshdesk.fail_next("*", "503", count=5)
    await h.fail("web", 3)
    await h.succeed("web", 2)
    for _ in range(40):
        await h.deliver()
        h.clock.advance(5)
    routes = [r["route"] for r in freshdesk.requests if r["route"] != "search"]
    assert routes[-3:] == ["create", "note", "update"]
    (ticket,) = freshdesk.tickets.values()
    assert ticket["status"] == 3


async def test_actions_waiting_behind_a_backed_off_create_do_not_wake_the_worker(
    harness: Callable[..., Awaitable[Harness]], freshdesk: FreshdeskFake
) -> None:
    """The recovery note and status are due "now" but wait behind their create: the worker's
    next wake-up is the create's retry, not now (which made it spin at 100% of a core)."""
    h = await harness()
    freshdesk.fail_next("create", "503")
    await h.fail("web", 3)
    await h.succeed("web", 2)
    await h.deliver()
    (create, *behind) = await h.agent.store.actions_of((await h.incidents())[0].id)
    assert behind
    assert all(a.next_attempt_at <= h.clock.now() for a in behind)
    next_at = await h.agent.store.next_action_time()
    assert next_at == create.next_attempt_at
    assert next_at is not None
    assert next_at > h.clock.now()
