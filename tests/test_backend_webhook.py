"""WebhookBackend: exact events and signatures, then every call against a real receiver."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from tests.fakes.webhook_receiver import WebhookReceiver
from tests.samples import DRAFT
from ticketing.backends.webhook import (
    WebhookBackend,
    WebhookBackendSettings,
    create_event,
    encode,
    find_event,
    get_event,
    info_from_answer,
    note_event,
    ref_from_answer,
    signature,
    signed_headers,
    status_event,
)
from ticketing.base import TicketInfo, TicketRef
from ticketing.errors import OutcomeUnknown, PermanentError, RetryableError

SECRET = "whsec-signing-secret-123456"
TIMEOUT = 0.5
AT = datetime(2026, 5, 1, 10, 0, 0, tzinfo=UTC)
REF = TicketRef("WH-1", "https://tickets.example/1")


def settings(
    url: str = "https://hooks.example/watchdesk", **extra: object
) -> WebhookBackendSettings:
    return WebhookBackendSettings.model_validate({"url": url, **extra})


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    async with WebhookReceiver(SECRET) as server:
        yield server


@pytest.fixture
async def backend(receiver: WebhookReceiver) -> AsyncIterator[WebhookBackend]:
    client = WebhookBackend(settings(receiver.hook_url), SECRET, timeout=TIMEOUT)
    yield client
    await client.aclose()


# --- pure payloads ---------------------------------------------------------------------------


def test_create_event_is_exact() -> None:
    assert create_event(DRAFT, AT) == {
        "event": "create",
        "dedup_key": "watchdesk-web-17",
        "ticket": {
            "subject": "[URGENT] web is down",
            "description": "web failed 3 checks since 10:00 UTC\nlast error: status 503",
            "priority": "urgent",
            "requester_email": "it@acme.example",
            "target": "web",
            "customer": "acme",
            "tags": ["watchdesk", "watchdesk-web-17", "web"],
        },
        "sent_at": "2026-05-01T10:00:00Z",
    }


def test_other_events_are_exact() -> None:
    ticket = {"id": "WH-1", "url": "https://tickets.example/1"}
    assert note_event(REF, "paged oncall", False, AT) == {
        "event": "note",
        "dedup_key": None,
        "ticket": ticket,
        "note": {"body": "paged oncall", "public": False},
        "sent_at": "2026-05-01T10:00:00Z",
    }
    assert status_event(REF, "resolved", AT) == {
        "event": "status",
        "dedup_key": None,
        "ticket": ticket,
        "status": "resolved",
        "sent_at": "2026-05-01T10:00:00Z",
    }
    assert find_event("watchdesk-web-17", AT) == {
        "event": "find",
        "dedup_key": "watchdesk-web-17",
        "ticket": None,
        "sent_at": "2026-05-01T10:00:00Z",
    }
    assert get_event(TicketRef("watchdesk-web-17"), AT) == {
        "event": "get",
        "dedup_key": None,
        "ticket": {"id": "watchdesk-web-17", "url": None},
        "sent_at": "2026-05-01T10:00:00Z",
    }


def test_signature_and_headers() -> None:
    event = find_event("k", AT)
    body = encode(event)
    assert (
        body == b'{"event":"find","dedup_key":"k","ticket":null,"sent_at":"2026-05-01T10:00:00Z"}'
    )
    expected = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert signature(SECRET, body) == f"sha256={expected}"
    assert signed_headers(event, body, SECRET, AT) == {
        "Content-Type": "application/json",
        "X-Watchdesk-Event": "find",
        "X-Watchdesk-Signature": f"sha256={expected}",
        "X-Watchdesk-Timestamp": str(int(AT.timestamp())),
    }
    assert signed_headers(event, body, None, AT) == {
        "Content-Type": "application/json",
        "X-Watchdesk-Event": "find",
    }


def test_answers() -> None:
    assert ref_from_answer({"id": 42, "url": "https://t/42"}, "k") == TicketRef(
        "42", "https://t/42"
    )
    assert ref_from_answer({"ok": True}, "k") == TicketRef("k")
    assert ref_from_answer(None, "k") == TicketRef("k")
    assert ref_from_answer({}, None) is None
    assert info_from_answer({"status": "pending", "assignee": "mia"}) == TicketInfo(
        "pending", "mia", "pending", waiting_on_customer=True
    )
    assert info_from_answer({"status": "weird"}) == TicketInfo("open", None, "weird")
    assert info_from_answer(None) == TicketInfo("open")


# --- against the receiver --------------------------------------------------------------------


async def test_lifecycle_signed(receiver: WebhookReceiver, backend: WebhookBackend) -> None:
    ref = await backend.create(DRAFT)
    assert ref == TicketRef("WH-1", f"{receiver.url}/tickets/1")
    assert receiver.tickets["watchdesk-web-17"]["ticket"]["subject"] == "[URGENT] web is down"

    assert await backend.find("watchdesk-web-17") == ref
    assert await backend.find("watchdesk-web-18") is None

    await backend.add_note(ref, "still down", public=True)
    await backend.add_note(ref, "paged oncall", public=False)
    assert receiver.tickets["watchdesk-web-17"]["notes"] == [
        {"body": "still down", "public": True},
        {"body": "paged oncall", "public": False},
    ]

    assert await backend.get(ref) == TicketInfo("open", None, "open")
    receiver.agent_update("WH-1", {"assignee": "mia"})
    assert await backend.get(ref) == TicketInfo("open", "mia", "open")

    await backend.set_status(ref, "pending")
    assert receiver.tickets["watchdesk-web-17"]["status"] == "pending"
    await backend.set_status(ref, "resolved")
    assert (await backend.get(ref)).status == "resolved"

    assert [e["event"] for e in receiver.events] == [
        "create", "find", "find", "note", "note", "get", "get", "status", "status", "get",
    ]  # fmt: skip
    for event in receiver.events:
        raw, headers = event["raw"], event["headers"]
        expected = hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
        assert headers["X-Watchdesk-Signature"] == f"sha256={expected}"
        assert headers["X-Watchdesk-Event"] == event["event"]
        assert headers["Content-Type"] == "application/json"
        sent_at = datetime.strptime(json.loads(raw)["sent_at"], "%Y-%m-%dT%H:%M:%S%z")
        assert int(headers["X-Watchdesk-Timestamp"]) == int(sent_at.timestamp())


async def test_wrong_secret_is_refused_for_good(receiver: WebhookReceiver) -> None:
    backend = WebhookBackend(settings(receiver.hook_url), "not-the-secret", timeout=TIMEOUT)
    try:
        with pytest.raises(PermanentError) as caught:
            await backend.create(DRAFT)
    finally:
        await backend.aclose()
    assert "401" in caught.value.message
    assert "bad signature" in caught.value.message
    assert "not-the-secret" not in str(caught.value)
    assert receiver.tickets == {}


async def test_unsigned_without_a_secret_and_ids_from_dedup_key() -> None:
    async with WebhookReceiver(None, assign_ids=False) as receiver:
        backend = WebhookBackend(
            settings(receiver.hook_url, headers={"Authorization": "Bearer relay-token"}),
            None,
            timeout=TIMEOUT,
        )
        try:
            ref = await backend.create(DRAFT)
            await backend.add_note(ref, "recovered", public=True)
        finally:
            await backend.aclose()
    assert ref == TicketRef("watchdesk-web-17", None)
    assert receiver.tickets["watchdesk-web-17"]["notes"] == [{"body": "recovered", "public": True}]
    for event in receiver.events:
        assert "X-Watchdesk-Signature" not in event["headers"]
        assert "X-Watchdesk-Timestamp" not in event["headers"]
        assert event["headers"]["Authorization"] == "Bearer relay-token"
    assert receiver.events[1]["json"]["ticket"] == {"id": "watchdesk-web-17", "url": None}


async def test_receiver_without_queries() -> None:
    async with WebhookReceiver(SECRET, supports_queries=False) as receiver:
        backend = WebhookBackend(settings(receiver.hook_url), SECRET, timeout=TIMEOUT)
        quiet = WebhookBackend(
            settings(receiver.hook_url, send_queries=False), SECRET, timeout=TIMEOUT
        )
        try:
            ref = await backend.create(DRAFT)
            assert await backend.find(DRAFT.dedup_key) is None  # 404: not supported
            assert await backend.get(ref) == TicketInfo("open")
            assert await quiet.find(DRAFT.dedup_key) is None
            assert await quiet.get(ref) == TicketInfo("open")
        finally:
            await backend.aclose()
            await quiet.aclose()
    assert [e["event"] for e in receiver.events] == ["create", "find", "get"]


async def test_rate_limit_carries_retry_after(
    receiver: WebhookReceiver, backend: WebhookBackend
) -> None:
    receiver.fail_next("hook", "429", retry_after=7)
    with pytest.raises(RetryableError) as caught:
        await backend.create(DRAFT)
    assert not isinstance(caught.value, OutcomeUnknown)
    assert caught.value.retry_after == 7
    assert receiver.tickets == {}


async def test_unavailable_is_retryable(receiver: WebhookReceiver, backend: WebhookBackend) -> None:
    receiver.fail_next("hook", "503")
    with pytest.raises(RetryableError) as caught:
        await backend.set_status(REF, "resolved")
    assert not isinstance(caught.value, OutcomeUnknown)


async def test_timeout_after_create_is_unknown_then_found(
    receiver: WebhookReceiver, backend: WebhookBackend
) -> None:
    receiver.fail_next("hook", "timeout")
    with pytest.raises(OutcomeUnknown):
        await backend.create(DRAFT)
    assert list(receiver.tickets) == ["watchdesk-web-17"]
    assert await backend.find(DRAFT.dedup_key) == TicketRef("WH-1", f"{receiver.url}/tickets/1")


async def test_dropped_connection_is_unknown(
    receiver: WebhookReceiver, backend: WebhookBackend
) -> None:
    receiver.fail_next("hook", "drop")
    with pytest.raises(OutcomeUnknown):
        await backend.create(DRAFT)
    assert list(receiver.tickets) == ["watchdesk-web-17"]
