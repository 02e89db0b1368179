"""ZendeskBackend: exact payloads, then every call against a fake Zendesk that really fails."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.fakes.zendesk import ZendeskFake
from tests.samples import DRAFT
from ticketing.backends.zendesk import (
    ZendeskBackend,
    ZendeskSettings,
    comment_payload,
    create_payload,
    status_payload,
    ticket_info,
)
from ticketing.base import TicketDraft, TicketInfo, TicketRef
from ticketing.errors import OutcomeUnknown, PermanentError, RetryableError

EMAIL = "bot@acme.example"
TOKEN = "zd-secret-token-1234567890"
TIMEOUT = 0.5


def settings(url: str = "https://acme.zendesk.com", **extra: object) -> ZendeskSettings:
    return ZendeskSettings.model_validate(
        {
            "url": url,
            "email": EMAIL,
            "api_token_env": "ZENDESK_API_TOKEN",
            "requester_email": "monitoring@acme.example",
            **extra,
        }
    )


@pytest.fixture
async def fake() -> AsyncIterator[ZendeskFake]:
    async with ZendeskFake(email=EMAIL, token=TOKEN) as server:
        yield server


@pytest.fixture
async def backend(fake: ZendeskFake) -> AsyncIterator[ZendeskBackend]:
    client = ZendeskBackend(settings(fake.url), TOKEN, timeout=TIMEOUT)
    yield client
    await client.aclose()


# --- pure payloads ---------------------------------------------------------------------------


def test_create_payload_is_exact() -> None:
    assert create_payload(DRAFT, settings()) == {
        "ticket": {
            "subject": "[URGENT] web is down",
            "comment": {
                "body": "web failed 3 checks since 10:00 UTC\nlast error: status 503",
                "public": True,
            },
            "priority": "urgent",
            "requester": {"email": "it@acme.example", "name": "acme"},
            "tags": ["watchdesk", "watchdesk-web-17", "web"],
            "external_id": "watchdesk-web-17",
        }
    }


def test_create_payload_fallbacks_and_group() -> None:
    draft = TicketDraft("watchdesk-db-3", "db is down", "d", "medium", None, "db")
    assert create_payload(draft, settings(group_id=360001)) == {
        "ticket": {
            "subject": "db is down",
            "comment": {"body": "d", "public": True},
            "priority": "normal",
            "requester": {"email": "monitoring@acme.example", "name": "monitoring"},
            "tags": ["watchdesk", "watchdesk-db-3"],
            "external_id": "watchdesk-db-3",
            "group_id": 360001,
        }
    }


@pytest.mark.parametrize(
    ("priority", "value"),
    [("low", "low"), ("medium", "normal"), ("high", "high"), ("urgent", "urgent")],
)
def test_priorities(priority: str, value: str) -> None:
    draft = TicketDraft("k", "s", "d", priority, None, "t")  # type: ignore[arg-type]
    assert create_payload(draft, settings())["ticket"]["priority"] == value


def test_small_payloads_are_exact() -> None:
    assert comment_payload("up again", public=True) == {
        "ticket": {"comment": {"body": "up again", "public": True}}
    }
    assert comment_payload("x", public=False) == {
        "ticket": {"comment": {"body": "x", "public": False}}
    }
    assert status_payload("pending") == {"ticket": {"status": "pending"}}
    assert status_payload("resolved") == {"ticket": {"status": "solved"}}


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        ("new", "open"),
        ("open", "open"),
        ("pending", "pending"),
        ("hold", "pending"),
        ("solved", "resolved"),
        ("closed", "closed"),
    ],
)
def test_ticket_info_maps_statuses(raw: str, status: str) -> None:
    waiting = raw == "pending"  # hold waits on a third party: someone is on it
    assert ticket_info({"status": raw, "assignee_id": None}) == TicketInfo(
        status,  # type: ignore[arg-type]
        None,
        raw,
        waiting_on_customer=waiting,
    )


def test_ticket_info_assignee() -> None:
    assert ticket_info({"status": "open", "assignee_id": 7, "group_id": 2}) == TicketInfo(
        "open", "7", "open", {"group_id": "2"}
    )


# --- against the fake ------------------------------------------------------------------------


async def test_lifecycle(fake: ZendeskFake, backend: ZendeskBackend) -> None:
    ref = await backend.create(DRAFT)
    assert ref == TicketRef(id="1", url=f"{fake.url}/agent/tickets/1")
    ticket = fake.tickets[1]
    assert ticket["subject"] == "[URGENT] web is down"
    assert ticket["priority"] == "urgent"
    assert ticket["status"] == "new"
    assert ticket["external_id"] == "watchdesk-web-17"
    assert ticket["tags"] == ["watchdesk", "watchdesk-web-17", "web"]
    assert fake.users[ticket["requester_id"]]["email"] == "it@acme.example"
    assert [(c["body"], c["public"]) for c in fake.comments[1]] == [(DRAFT.description, True)]

    assert await backend.find("watchdesk-web-17") == ref
    assert await backend.find("watchdesk-web-18") is None

    await backend.add_note(ref, "still down", public=True)
    await backend.add_note(ref, "paged oncall", public=False)
    assert [(c["body"], c["public"]) for c in fake.comments[1][1:]] == [
        ("still down", True),
        ("paged oncall", False),
    ]

    assert await backend.get(ref) == TicketInfo(
        status="open", assignee=None, raw_status="new", priority="urgent"
    )
    fake.agent_update("1", {"assignee_id": 99, "status": "open"})
    assert await backend.get(ref) == TicketInfo(
        status="open", assignee="99", raw_status="open", priority="urgent"
    )

    await backend.set_status(ref, "pending")
    assert fake.tickets[1]["status"] == "pending"
    await backend.set_status(ref, "resolved")
    assert fake.tickets[1]["status"] == "solved"
    assert (await backend.get(ref)).status == "resolved"


async def test_bad_token_is_permanent_and_secret_free(fake: ZendeskFake) -> None:
    wrong = "wrong-token-0987654321"
    backend = ZendeskBackend(settings(fake.url), wrong, timeout=TIMEOUT)
    try:
        with pytest.raises(PermanentError) as caught:
            await backend.create(DRAFT)
    finally:
        await backend.aclose()
    assert "Couldn't authenticate you" in caught.value.message
    assert wrong not in str(caught.value)
    assert TOKEN not in str(caught.value)
    assert fake.tickets == {}


async def test_validation_error_names_the_field(fake: ZendeskFake) -> None:
    draft = TicketDraft("watchdesk-x-1", "x is down", "d", "high", "not-an-email", "x")
    backend = ZendeskBackend(settings(fake.url), TOKEN, timeout=TIMEOUT)
    try:
        with pytest.raises(PermanentError) as caught:
            await backend.create(draft)
    finally:
        await backend.aclose()
    assert "422" in caught.value.message
    assert '"requester"' in caught.value.message
    assert "Requester: Email is invalid" in caught.value.message


async def test_closed_ticket_refuses_updates(fake: ZendeskFake, backend: ZendeskBackend) -> None:
    ref = await backend.create(DRAFT)
    fake.agent_update(ref.id, {"status": "closed"})
    with pytest.raises(PermanentError, match="closed prevents ticket update"):
        await backend.add_note(ref, "recovered", public=True)
    assert (await backend.get(ref)).status == "closed"


async def test_rate_limit_carries_retry_after(fake: ZendeskFake, backend: ZendeskBackend) -> None:
    fake.fail_next("create", "429", retry_after=7)
    with pytest.raises(RetryableError) as caught:
        await backend.create(DRAFT)
    assert not isinstance(caught.value, OutcomeUnknown)
    assert caught.value.retry_after == 7
    assert "requests per minute exceeded" in caught.value.message
    assert fake.tickets == {}


async def test_unavailable_is_retryable(fake: ZendeskFake, backend: ZendeskBackend) -> None:
    ref = await backend.create(DRAFT)
    fake.fail_next("get", "503")
    with pytest.raises(RetryableError) as caught:
        await backend.get(ref)
    assert not isinstance(caught.value, OutcomeUnknown)


async def test_timeout_after_create_is_unknown_then_found(
    fake: ZendeskFake, backend: ZendeskBackend
) -> None:
    fake.fail_next("create", "timeout")
    with pytest.raises(OutcomeUnknown):
        await backend.create(DRAFT)
    assert len(fake.tickets) == 1
    ref = await backend.find(DRAFT.dedup_key)
    assert ref is not None
    assert ref.id == "1"


async def test_dropped_connection_is_unknown(fake: ZendeskFake, backend: ZendeskBackend) -> None:
    fake.fail_next("create", "drop")
    with pytest.raises(OutcomeUnknown):
        await backend.create(DRAFT)
    assert len(fake.tickets) == 1
    # PUT is idempotent: aiohttp retries it once on a dropped connection, so drop it twice.
    fake.fail_next("update", "drop", count=2)
    with pytest.raises(OutcomeUnknown):
        await backend.set_status(TicketRef("1"), "pending")
    assert fake.tickets[1]["status"] == "pending"  # done twice, answered never


async def test_missing_ticket_is_permanent(backend: ZendeskBackend) -> None:
    with pytest.raises(PermanentError, match="RecordNotFound"):
        await backend.get(TicketRef("999"))
