"""ServiceNowBackend: exact payloads, then every call against a fake Table API that really fails."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.fakes.servicenow import ServiceNowFake
from tests.samples import DRAFT
from ticketing.backends.servicenow import (
    ServiceNowBackend,
    ServiceNowSettings,
    create_payload,
    find_params,
    note_payload,
    status_payload,
    ticket_info,
)
from ticketing.base import TicketDraft, TicketInfo, TicketRef
from ticketing.errors import OutcomeUnknown, PermanentError, RetryableError

USER = "watchdesk.integration"
PASSWORD = "sn-secret-password-1234567890"
TIMEOUT = 0.5


def settings(url: str = "https://acme.service-now.com", **extra: object) -> ServiceNowSettings:
    return ServiceNowSettings.model_validate(
        {"url": url, "username": USER, "password_env": "SN_PASSWORD", **extra}
    )


@pytest.fixture
async def fake() -> AsyncIterator[ServiceNowFake]:
    async with ServiceNowFake(username=USER, password=PASSWORD) as server:
        yield server


@pytest.fixture
async def backend(fake: ServiceNowFake) -> AsyncIterator[ServiceNowBackend]:
    client = ServiceNowBackend(
        settings(fake.url, caller_id="abc123", assignment_group="Service Desk"),
        PASSWORD,
        timeout=TIMEOUT,
    )
    yield client
    await client.aclose()


# --- pure payloads ---------------------------------------------------------------------------


def test_create_payload_is_exact() -> None:
    assert create_payload(DRAFT, settings(caller_id="abc123", assignment_group="Service Desk")) == {
        "short_description": "[URGENT] web is down",
        "description": "web failed 3 checks since 10:00 UTC\nlast error: status 503",
        "urgency": "1",
        "impact": "1",
        "correlation_id": "watchdesk-web-17",
        "correlation_display": "watchdesk",
        "caller_id": "abc123",
        "assignment_group": "Service Desk",
    }


def test_create_payload_without_optional_fields() -> None:
    payload = create_payload(DRAFT, settings())
    assert "caller_id" not in payload
    assert "assignment_group" not in payload


@pytest.mark.parametrize(
    ("priority", "urgency", "impact"),
    [("urgent", "1", "1"), ("high", "1", "2"), ("medium", "2", "2"), ("low", "3", "2")],
)
def test_priorities(priority: str, urgency: str, impact: str) -> None:
    draft = TicketDraft("k", "s", "d", priority, None, "t")  # type: ignore[arg-type]
    payload = create_payload(draft, settings())
    assert (payload["urgency"], payload["impact"]) == (urgency, impact)


def test_small_payloads_are_exact() -> None:
    assert find_params("watchdesk-web-17") == {
        "sysparm_query": "correlation_id=watchdesk-web-17^ORDERBYsys_created_on",
        "sysparm_limit": "1",
        "sysparm_fields": "sys_id,number",
    }
    assert find_params("a^b")["sysparm_query"].startswith("correlation_id=a^^b^")
    assert note_payload("up", public=True) == {"comments": "up"}
    assert note_payload("x", public=False) == {"work_notes": "x"}
    assert status_payload("pending", settings()) == {"state": "3", "hold_reason": "1"}
    assert status_payload("resolved", settings(close_code="Solved (Permanently)")) == {
        "state": "6",
        "close_code": "Solved (Permanently)",
        "close_notes": "Resolved by watchdesk: the monitored service answers again.",
    }


def test_ticket_info_maps_states_and_references() -> None:
    assert ticket_info({"state": "1", "assigned_to": "", "number": "INC0010001"}) == TicketInfo(
        "open", None, "1", {"number": "INC0010001", "state_label": "New"}
    )
    assert ticket_info({"state": "2", "assigned_to": "u1"}).assignee == "u1"
    linked = {
        "state": "3",
        "assigned_to": {"link": "https://x/api/now/table/sys_user/u2", "value": "u2"},
    }
    assert ticket_info(linked).assignee == "u2"
    assert ticket_info(linked).status == "pending"
    assert ticket_info({"state": "6"}).status == "resolved"
    assert ticket_info({"state": "7"}).status == "closed"
    assert ticket_info({"state": "8"}).status == "closed"
    assert ticket_info({"state": "-5"}) == TicketInfo("open", None, "-5")


# --- against the fake ------------------------------------------------------------------------


async def test_lifecycle(fake: ServiceNowFake, backend: ServiceNowBackend) -> None:
    ref = await backend.create(DRAFT)
    [sys_id] = fake.tickets
    assert ref == TicketRef(id=sys_id, url=f"{fake.url}/nav_to.do?uri=incident.do?sys_id={sys_id}")
    record = fake.tickets[sys_id]
    assert record["short_description"] == "[URGENT] web is down"
    assert (record["urgency"], record["impact"], record["priority"]) == ("1", "1", "1")
    assert record["correlation_id"] == "watchdesk-web-17"
    assert record["correlation_display"] == "watchdesk"
    assert record["caller_id"] == "abc123"
    assert record["assignment_group"] == "Service Desk"
    assert record["state"] == "1"

    assert await backend.find("watchdesk-web-17") == ref
    assert await backend.find("watchdesk-web-18") is None

    await backend.add_note(ref, "still down", public=True)
    await backend.add_note(ref, "paged oncall", public=False)
    assert [(j["element"], j["value"]) for j in fake.journal[sys_id]] == [
        ("comments", "still down"),
        ("work_notes", "paged oncall"),
    ]

    assert await backend.get(ref) == TicketInfo(
        "open", None, "1", {"number": record["number"], "state_label": "New"}, priority="urgent"
    )
    fake.agent_update(sys_id, {"assigned_to": "user42", "state": "2"})
    info = await backend.get(ref)
    assert (info.status, info.assignee, info.raw_status) == ("open", "user42", "2")

    await backend.set_status(ref, "pending")
    assert (record["state"], record["hold_reason"]) == ("3", "1")
    assert (await backend.get(ref)).status == "pending"
    await backend.set_status(ref, "resolved")
    assert record["state"] == "6"
    assert record["close_code"] == "Solution provided"
    assert record["close_notes"]
    assert (await backend.get(ref)).status == "resolved"


async def test_find_takes_the_first_created(
    fake: ServiceNowFake, backend: ServiceNowBackend
) -> None:
    first = await backend.create(DRAFT)
    await backend.create(DRAFT)
    assert len(fake.tickets) == 2
    assert await backend.find(DRAFT.dedup_key) == first


async def test_bad_password_is_permanent_and_secret_free(fake: ServiceNowFake) -> None:
    wrong = "wrong-password-0987654321"
    backend = ServiceNowBackend(settings(fake.url), wrong, timeout=TIMEOUT)
    try:
        with pytest.raises(PermanentError) as caught:
            await backend.create(DRAFT)
    finally:
        await backend.aclose()
    assert "User Not Authenticated" in caught.value.message
    assert wrong not in str(caught.value)
    assert PASSWORD not in str(caught.value)
    assert fake.tickets == {}


async def test_data_policy_names_the_fields(fake: ServiceNowFake) -> None:
    backend = ServiceNowBackend(settings(fake.url, close_code=""), PASSWORD, timeout=TIMEOUT)
    try:
        ref = await backend.create(DRAFT)
        with pytest.raises(PermanentError) as caught:
            await backend.set_status(ref, "resolved")
    finally:
        await backend.aclose()
    assert "403" in caught.value.message
    assert "Data Policy Exception" in caught.value.message
    assert "Resolution code" in caught.value.message
    assert fake.tickets[ref.id]["state"] == "1"


async def test_rate_limit_carries_retry_after(
    fake: ServiceNowFake, backend: ServiceNowBackend
) -> None:
    fake.fail_next("create", "429", retry_after=7)
    with pytest.raises(RetryableError) as caught:
        await backend.create(DRAFT)
    assert not isinstance(caught.value, OutcomeUnknown)
    assert caught.value.retry_after == 7
    assert fake.tickets == {}


async def test_unavailable_is_retryable(fake: ServiceNowFake, backend: ServiceNowBackend) -> None:
    ref = await backend.create(DRAFT)
    fake.fail_next("update", "503")
    with pytest.raises(RetryableError) as caught:
        await backend.add_note(ref, "x", public=True)
    assert not isinstance(caught.value, OutcomeUnknown)
    assert fake.journal[ref.id] == []


async def test_timeout_after_create_is_unknown_then_found(
    fake: ServiceNowFake, backend: ServiceNowBackend
) -> None:
    fake.fail_next("create", "timeout")
    with pytest.raises(OutcomeUnknown):
        await backend.create(DRAFT)
    [sys_id] = fake.tickets
    ref = await backend.find(DRAFT.dedup_key)
    assert ref is not None
    assert ref.id == sys_id


async def test_dropped_connection_is_unknown(
    fake: ServiceNowFake, backend: ServiceNowBackend
) -> None:
    fake.fail_next("create", "drop_before")
    with pytest.raises(OutcomeUnknown):
        await backend.create(DRAFT)
    assert fake.tickets == {}
    fake.fail_next("create", "drop")
    with pytest.raises(OutcomeUnknown):
        await backend.create(DRAFT)
    assert len(fake.tickets) == 1


async def test_missing_record_is_permanent(backend: ServiceNowBackend) -> None:
    with pytest.raises(PermanentError, match="No Record found"):
        await backend.get(TicketRef("0" * 32))
