"""FreshdeskBackend: exact payloads, then every call against a fake Freshdesk that really fails."""

from __future__ import annotations

import dataclasses
import json
import urllib.error
import urllib.request
from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.fakes.freshdesk import FreshdeskFake
from tests.helpers import FakeProcess, closed_port
from tests.samples import DRAFT as SAMPLE_DRAFT
from ticketing.backends.freshdesk import (
    FreshdeskBackend,
    FreshdeskSettings,
    create_payload,
    dedup_tag,
    note_payload,
    reply_payload,
    search_query,
    status_payload,
    text_to_html,
    ticket_info,
)
from ticketing.base import TicketDraft, TicketInfo, TicketRef
from ticketing.errors import OutcomeUnknown, PermanentError, RetryableError
from ticketing.http import basic_auth

API_KEY = "fd-secret-key-1234567890"
TIMEOUT = 0.5

DRAFT = dataclasses.replace(
    SAMPLE_DRAFT,
    description="web failed 3 checks since 10:00 UTC\nlast error: status 503 <Service Unavailable>",
)


def settings(url: str = "https://acme.freshdesk.com", **extra: object) -> FreshdeskSettings:
    return FreshdeskSettings.model_validate(
        {
            "url": url,
            "api_key_env": "FRESHDESK_API_KEY",
            "requester_email": "monitoring@acme.example",
            **extra,
        }
    )


@pytest.fixture
async def fake() -> AsyncIterator[FreshdeskFake]:
    async with FreshdeskFake(api_key=API_KEY) as server:
        yield server


@pytest.fixture
async def backend(fake: FreshdeskFake) -> AsyncIterator[FreshdeskBackend]:
    client = FreshdeskBackend(settings(fake.url), API_KEY, timeout=TIMEOUT)
    yield client
    await client.aclose()


# --- pure payloads ---------------------------------------------------------------------------


def test_create_payload_is_exact() -> None:
    assert create_payload(DRAFT, settings()) == {
        "subject": "[URGENT] web is down",
        "description": "web failed 3 checks since 10:00 UTC<br>"
        "last error: status 503 &lt;Service Unavailable&gt;",
        "email": "it@acme.example",
        "priority": 4,
        "status": 2,
        "source": 2,
        "tags": ["watchdesk", "watchdesk-web-17", "web"],
    }


def test_create_payload_optional_fields_and_fallback_requester() -> None:
    draft = TicketDraft(
        dedup_key="watchdesk-db-3",
        subject="db is down",
        description="a & b",
        priority="medium",
        requester_email=None,
        target="db",
    )
    payload = create_payload(draft, settings(group_id=7, ticket_type="Incident"))
    assert payload == {
        "subject": "db is down",
        "description": "a &amp; b",
        "email": "monitoring@acme.example",
        "priority": 2,
        "status": 2,
        "source": 2,
        "tags": ["watchdesk", "watchdesk-db-3"],
        "group_id": 7,
        "type": "Incident",
    }


@pytest.mark.parametrize(
    ("priority", "value"), [("low", 1), ("medium", 2), ("high", 3), ("urgent", 4)]
)
def test_priorities(priority: str, value: int) -> None:
    draft = TicketDraft("k", "s", "d", priority, None, "t")  # type: ignore[arg-type]
    assert create_payload(draft, settings())["priority"] == value


def test_text_to_html() -> None:
    assert text_to_html("a\r\nb\n<c> & 'd'") == "a<br>b<br>&lt;c&gt; &amp; 'd'"


def test_long_dedup_key_becomes_a_stable_short_tag() -> None:
    key = "watchdesk-a-very-long-target-name-for-a-customer-42"
    tag = dedup_tag(key)
    assert len(tag) <= 32
    assert tag == dedup_tag(key)
    assert tag.startswith("watchdesk-")
    assert dedup_tag("watchdesk-web-17") == "watchdesk-web-17"
    draft = TicketDraft(key, "s", "d", "low", None, "t", tags=("watchdesk", key))
    assert create_payload(draft, settings())["tags"] == ["watchdesk", tag]
    assert search_query(key) == f"\"tag:'{tag}'\""


def test_small_payloads_are_exact() -> None:
    assert search_query("watchdesk-web-17") == "\"tag:'watchdesk-web-17'\""
    assert note_payload("up\nagain", private=False) == {"body": "up<br>again", "private": False}
    assert note_payload("x", private=True) == {"body": "x", "private": True}
    assert reply_payload("up") == {"body": "up"}
    assert status_payload("pending") == {"status": 3}
    assert status_payload("resolved") == {"status": 4}


def test_ticket_info_maps_statuses() -> None:
    assert ticket_info({"status": 2, "responder_id": None}) == TicketInfo("open", None, "2")
    pending = ticket_info({"status": 3, "responder_id": 42})
    assert pending == TicketInfo("pending", "42", "3", waiting_on_customer=True)
    assert ticket_info({"status": 4}).status == "resolved"
    assert ticket_info({"status": 5}).status == "closed"
    custom = ticket_info({"status": 7, "responder_id": 9, "group_id": 3})
    assert custom == TicketInfo("open", "9", "7", {"group_id": "3"})


# --- against the fake ------------------------------------------------------------------------


async def test_lifecycle(fake: FreshdeskFake, backend: FreshdeskBackend) -> None:
    ref = await backend.create(DRAFT)
    assert ref == TicketRef(id="1", url=f"{fake.url}/a/tickets/1")
    ticket = fake.tickets[1]
    assert ticket["subject"] == "[URGENT] web is down"
    assert ticket["priority"] == 4
    assert ticket["status"] == 2
    assert ticket["source"] == 2
    assert ticket["tags"] == ["watchdesk", "watchdesk-web-17", "web"]
    assert fake.contacts[ticket["requester_id"]] == "it@acme.example"
    assert fake.requests_to("create")[0]["json"] == create_payload(DRAFT, settings())

    assert await backend.find("watchdesk-web-17") == ref
    assert await backend.find("watchdesk-web-18") is None

    await backend.add_note(ref, "still down\n5 checks", public=True)
    await backend.add_note(ref, "paged oncall", public=False)
    assert [(n["kind"], n["private"], n["body"]) for n in fake.notes[1]] == [
        ("note", False, "still down<br>5 checks"),
        ("note", True, "paged oncall"),
    ]

    assert await backend.get(ref) == TicketInfo(
        status="open", assignee=None, raw_status="2", priority="urgent"
    )
    fake.agent_update("1", {"responder_id": 42})
    assert (await backend.get(ref)).assignee == "42"

    await backend.set_status(ref, "pending")
    assert fake.tickets[1]["status"] == 3
    assert (await backend.get(ref)).status == "pending"
    await backend.set_status(ref, "resolved")
    assert fake.tickets[1]["status"] == 4
    assert (await backend.get(ref)).status == "resolved"


async def test_public_updates_as_replies(fake: FreshdeskFake) -> None:
    backend = FreshdeskBackend(
        settings(fake.url, customer_updates="reply"), API_KEY, timeout=TIMEOUT
    )
    try:
        ref = await backend.create(DRAFT)
        await backend.add_note(ref, "recovered after 12m", public=True)
        await backend.add_note(ref, "internal", public=False)
    finally:
        await backend.aclose()
    assert [(n["kind"], n["private"]) for n in fake.notes[1]] == [
        ("reply", False),
        ("note", True),
    ]
    assert [r["route"] for r in fake.requests] == ["create", "reply", "note"]


async def test_search_lag_hides_a_new_ticket() -> None:
    async with FreshdeskFake(api_key=API_KEY, search_lag=60) as fake:
        backend = FreshdeskBackend(settings(fake.url), API_KEY, timeout=TIMEOUT)
        try:
            await backend.create(DRAFT)
            assert await backend.find(DRAFT.dedup_key) is None
        finally:
            await backend.aclose()


async def test_bad_api_key_is_permanent_and_secret_free(fake: FreshdeskFake) -> None:
    wrong = "wrong-key-0987654321"
    backend = FreshdeskBackend(settings(fake.url), wrong, timeout=TIMEOUT)
    try:
        with pytest.raises(PermanentError) as caught:
            await backend.create(DRAFT)
    finally:
        await backend.aclose()
    assert "You have to be logged in to perform this action" in caught.value.message
    assert "401" in caught.value.message
    assert wrong not in str(caught.value)
    assert API_KEY not in str(caught.value)
    assert fake.tickets == {}


async def test_validation_error_names_the_field(fake: FreshdeskFake) -> None:
    backend = FreshdeskBackend(settings(fake.url, ticket_type="Outage"), API_KEY, timeout=TIMEOUT)
    try:
        with pytest.raises(PermanentError) as caught:
            await backend.create(DRAFT)
    finally:
        await backend.aclose()
    assert '"field":"type"' in caught.value.message
    assert "invalid_value" in caught.value.message
    assert fake.tickets == {}


async def test_fake_refuses_unknown_fields_like_freshdesk(fake: FreshdeskFake) -> None:
    body = {**create_payload(DRAFT, settings()), "external_id": "watchdesk-web-17"}
    async with (
        aiohttp.ClientSession(headers=basic_auth(API_KEY, "X")) as session,
        session.post(f"{fake.url}/api/v2/tickets", json=body) as response,
    ):
        assert response.status == 400
        assert await response.json() == {
            "description": "Validation failed",
            "errors": [
                {
                    "field": "external_id",
                    "message": "Unexpected/invalid field in request",
                    "code": "invalid_field",
                }
            ],
        }


async def test_rate_limit_carries_retry_after(
    fake: FreshdeskFake, backend: FreshdeskBackend
) -> None:
    fake.fail_next("create", "429", retry_after=7)
    with pytest.raises(RetryableError) as caught:
        await backend.create(DRAFT)
    assert not isinstance(caught.value, OutcomeUnknown)
    assert caught.value.retry_after == 7
    assert fake.tickets == {}
    assert (await backend.create(DRAFT)).id == "1"  # the next attempt goes through


async def test_unavailable_is_retryable(fake: FreshdeskFake, backend: FreshdeskBackend) -> None:
    fake.fail_next("update", "503")
    ref = await backend.create(DRAFT)
    with pytest.raises(RetryableError) as caught:
        await backend.set_status(ref, "resolved")
    assert not isinstance(caught.value, OutcomeUnknown)
    assert caught.value.retry_after is None
    assert fake.tickets[1]["status"] == 2


async def test_timeout_after_create_is_unknown_then_found(
    fake: FreshdeskFake, backend: FreshdeskBackend
) -> None:
    fake.fail_next("create", "timeout")
    with pytest.raises(OutcomeUnknown):
        await backend.create(DRAFT)
    assert len(fake.tickets) == 1  # it was created: only the answer was lost
    ref = await backend.find(DRAFT.dedup_key)
    assert ref is not None
    assert ref.id == "1"


async def test_dropped_connection_is_unknown(
    fake: FreshdeskFake, backend: FreshdeskBackend
) -> None:
    fake.fail_next("create", "drop")
    with pytest.raises(OutcomeUnknown):
        await backend.create(DRAFT)
    assert len(fake.tickets) == 1
    fake.fail_next("note", "drop_before")
    with pytest.raises(OutcomeUnknown):
        await backend.add_note(TicketRef("1"), "x", public=True)
    assert fake.notes[1] == []


async def test_nothing_listening_is_retryable() -> None:
    backend = FreshdeskBackend(
        settings(f"http://127.0.0.1:{closed_port()}"), API_KEY, timeout=TIMEOUT
    )
    try:
        with pytest.raises(RetryableError) as caught:
            await backend.create(DRAFT)
    finally:
        await backend.aclose()
    assert not isinstance(caught.value, OutcomeUnknown)


async def test_missing_ticket_is_permanent(backend: FreshdeskBackend) -> None:
    with pytest.raises(PermanentError, match="404"):
        await backend.get(TicketRef("999"))


def test_standalone_fake_is_controlled_over_http() -> None:
    fake = FakeProcess("freshdesk", "--api-key", "K")
    try:
        base = fake.url

        def call(path: str, body: object | None = None, auth: bool = False) -> object:
            data = json.dumps(body).encode() if body is not None else None
            request = urllib.request.Request(base + path, data=data)
            if data is not None:
                request.add_header("Content-Type", "application/json")
            if auth:
                request.headers.update(basic_auth("K", "X"))
            with urllib.request.urlopen(request, timeout=5) as response:
                return json.loads(response.read())

        assert call("/_fake/fail", {"route": "create", "kind": "503", "count": 1}) == {"pending": 1}
        payload = create_payload(DRAFT, settings())
        try:
            call("/api/v2/tickets", payload, auth=True)
            raise AssertionError("the scripted 503 did not happen")
        except urllib.error.HTTPError as error:
            assert error.code == 503
        created = call("/api/v2/tickets", payload, auth=True)
        assert isinstance(created, dict)
        assert created["id"] == 1
        call("/_fake/tickets/1", {"responder_id": 42})
        state = call("/_fake/state")
        assert isinstance(state, dict)
        assert [t["responder_id"] for t in state["tickets"]] == [42]
        assert [r["route"] for r in state["requests"]] == ["create", "create"]
    finally:
        fake.stop()
    assert fake.proc.returncode == 0
