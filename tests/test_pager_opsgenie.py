"""OpsgeniePager: exact alert JSON, then create/close/acknowledged against a fake Alert API."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import AsyncIterator

import pytest

from tests.fakes.opsgenie import OpsgenieFake
from tests.helpers import FakeProcess, closed_port
from ticketing.errors import OutcomeUnknown, PermanentError, RetryableError
from ticketing.pagers.base import Page
from ticketing.pagers.opsgenie import (
    OpsgeniePager,
    OpsgenieSettings,
    alert_path,
    close_payload,
    create_payload,
)

API_KEY = "og-api-key-0f1e2d3c4b5a"
TIMEOUT = 0.5
RESPONDERS = [{"type": "team", "name": "ops"}, {"type": "user", "username": "jane@acme.example"}]

PAGE = Page(
    dedup_key="watchdesk-web-17",
    summary="[URGENT] web is down",
    details="web is down: status 503\nSince: 2026-03-01 10:00 EST",
    priority="urgent",
    reason="open",
    target="web",
    customer="acme",
    ticket_url="https://acme.freshdesk.com/a/tickets/1",
)


def settings(url: str = "https://api.opsgenie.com", **extra: object) -> OpsgenieSettings:
    return OpsgenieSettings.model_validate({"api_key_env": "OPSGENIE_KEY", "url": url, **extra})


@pytest.fixture
async def fake() -> AsyncIterator[OpsgenieFake]:
    async with OpsgenieFake(api_key=API_KEY) as server:
        yield server


@pytest.fixture
async def pager(fake: OpsgenieFake) -> AsyncIterator[OpsgeniePager]:
    client = OpsgeniePager(settings(fake.url, responders=RESPONDERS), API_KEY, timeout=TIMEOUT)
    yield client
    await client.aclose()


# --- pure payloads ---------------------------------------------------------------------------


def test_create_payload_is_exact() -> None:
    assert create_payload(PAGE, settings(responders=RESPONDERS)) == {
        "message": "[URGENT] web is down",
        "alias": "watchdesk-web-17",
        "description": "web is down: status 503\nSince: 2026-03-01 10:00 EST\n"
        "Ticket: https://acme.freshdesk.com/a/tickets/1",
        "priority": "P1",
        "source": "watchdesk",
        "entity": "web",
        "tags": ["watchdesk", "web", "urgent", "open", "acme"],
        "details": {
            "target": "web",
            "priority": "urgent",
            "reason": "open",
            "customer": "acme",
            "ticket": "https://acme.freshdesk.com/a/tickets/1",
        },
        "responders": RESPONDERS,
    }


def test_create_payload_minimal() -> None:
    page = Page("k-1", "db is down", "db: refused", "medium", "escalation", "db")
    assert create_payload(page, settings()) == {
        "message": "db is down",
        "alias": "k-1",
        "description": "db: refused",
        "priority": "P3",
        "source": "watchdesk",
        "entity": "db",
        "tags": ["watchdesk", "db", "medium", "escalation"],
        "details": {"target": "db", "priority": "medium", "reason": "escalation"},
    }


@pytest.mark.parametrize(
    ("priority", "reason", "expected"),
    [
        ("urgent", "open", "P1"),
        ("high", "open", "P2"),
        ("medium", "escalation", "P3"),
        ("low", "open", "P4"),
        ("urgent", "test", "P5"),
    ],
)
def test_priorities(priority: str, reason: str, expected: str) -> None:
    page = Page("k", "s", "d", priority, reason, "t")  # type: ignore[arg-type]
    assert create_payload(page, settings())["priority"] == expected


def test_limits() -> None:
    page = Page("k" * 600, "m" * 200, "d" * 20000, "low", "open", "t" * 60)
    payload = create_payload(page, settings())
    assert len(payload["message"]) == 130
    assert len(payload["alias"]) <= 512
    assert len(payload["description"]) == 15000
    assert all(len(tag) <= 50 for tag in payload["tags"])
    assert alert_path("k" * 600) == f"/v2/alerts/{payload['alias']}"  # close finds it


def test_close_payload_and_path() -> None:
    assert close_payload("web recovered after 12m") == {
        "source": "watchdesk",
        "note": "web recovered after 12m",
    }
    assert alert_path("watchdesk-web-17", "close") == "/v2/alerts/watchdesk-web-17/close"
    assert alert_path("a b/c") == "/v2/alerts/a%20b%2Fc"


# --- against the fake ------------------------------------------------------------------------


async def test_page_acknowledge_close(fake: OpsgenieFake, pager: OpsgeniePager) -> None:
    assert pager.name == "opsgenie"
    assert pager.supports_resolve is True
    assert await pager.acknowledged(PAGE.dedup_key) is False  # not created (yet)

    await pager.page(PAGE)
    alert = fake.alerts["watchdesk-web-17"]
    assert alert["message"] == "[URGENT] web is down"
    assert alert["priority"] == "P1"
    assert alert["responders"] == RESPONDERS
    assert alert["status"] == "open"
    assert fake.requests_to("create")[0]["json"] == create_payload(
        PAGE, settings(responders=RESPONDERS)
    )

    assert await pager.acknowledged(PAGE.dedup_key) is False
    fake.acknowledge("watchdesk-web-17")  # someone picks it up on their phone
    assert await pager.acknowledged(PAGE.dedup_key) is True
    get = fake.requests_to("get")[-1]
    assert get["path"] == "/v2/alerts/watchdesk-web-17"
    assert get["query"] == {"identifierType": "alias"}

    await pager.resolve(PAGE.dedup_key, "web recovered after 12m")
    assert alert["status"] == "closed"
    assert alert["notes"] == ["web recovered after 12m"]
    close = fake.requests_to("close")[0]
    assert close["query"] == {"identifierType": "alias"}
    assert close["json"] == {"source": "watchdesk", "note": "web recovered after 12m"}


async def test_closed_by_hand_counts_as_worked(fake: OpsgenieFake, pager: OpsgeniePager) -> None:
    await pager.page(PAGE)
    fake.agent_update("watchdesk-web-17", {"status": "closed"})
    assert await pager.acknowledged(PAGE.dedup_key) is True


async def test_same_alias_twice_is_one_alert(fake: OpsgenieFake, pager: OpsgeniePager) -> None:
    await pager.page(PAGE)
    await pager.page(PAGE)
    assert list(fake.alerts) == ["watchdesk-web-17"]
    assert fake.alerts["watchdesk-web-17"]["count"] == 2
    await pager.resolve(PAGE.dedup_key, "recovered")
    await pager.page(PAGE)  # after a close, the alias opens a new alert
    assert fake.alerts["watchdesk-web-17"]["count"] == 1
    assert [a["status"] for a in fake.closed] == ["closed"]


async def test_bad_key_is_permanent_and_secret_free(fake: OpsgenieFake) -> None:
    wrong = "og-wrong-key-999999"
    pager = OpsgeniePager(settings(fake.url), wrong, timeout=TIMEOUT)
    try:
        with pytest.raises(PermanentError) as caught:
            await pager.page(PAGE)
        with pytest.raises(PermanentError):
            await pager.acknowledged(PAGE.dedup_key)  # 401 is not "no such alert"
    finally:
        await pager.aclose()
    assert "HTTP 401" in caught.value.message
    assert "Could not authenticate" in caught.value.message
    assert wrong not in str(caught.value)
    assert API_KEY not in str(caught.value)
    assert fake.alerts == {}


async def test_unprocessable_names_the_field(fake: OpsgenieFake) -> None:
    pager = OpsgeniePager(
        settings(fake.url, responders=[{"type": "room", "name": "x"}]), API_KEY, timeout=TIMEOUT
    )
    try:
        with pytest.raises(PermanentError) as caught:
            await pager.page(PAGE)
    finally:
        await pager.aclose()
    assert "HTTP 422" in caught.value.message
    assert "Invalid recipient type 'room'" in caught.value.message


async def test_rate_limit_and_unavailable_are_retryable(
    fake: OpsgenieFake, pager: OpsgeniePager
) -> None:
    fake.fail_next("create", "429")
    with pytest.raises(RetryableError) as caught:
        await pager.page(PAGE)
    assert not isinstance(caught.value, OutcomeUnknown)
    assert caught.value.retry_after is None
    fake.fail_next("close", "503")
    with pytest.raises(RetryableError, match="503"):
        await pager.resolve(PAGE.dedup_key, "recovered")
    fake.fail_next("get", "503")
    with pytest.raises(RetryableError):
        await pager.acknowledged(PAGE.dedup_key)
    assert fake.alerts == {}


async def test_lost_answer_is_unknown_and_retry_is_harmless(
    fake: OpsgenieFake, pager: OpsgeniePager
) -> None:
    fake.fail_next("create", "timeout")
    with pytest.raises(OutcomeUnknown):
        await pager.page(PAGE)
    fake.fail_next("create", "drop")
    with pytest.raises(OutcomeUnknown):
        await pager.page(PAGE)
    await pager.page(PAGE)
    assert fake.alerts["watchdesk-web-17"]["count"] == 3


async def test_nothing_listening_is_retryable() -> None:
    pager = OpsgeniePager(settings(f"http://127.0.0.1:{closed_port()}"), API_KEY, timeout=TIMEOUT)
    try:
        with pytest.raises(RetryableError) as caught:
            await pager.page(PAGE)
    finally:
        await pager.aclose()
    assert not isinstance(caught.value, OutcomeUnknown)


async def test_missing_key_is_permanent() -> None:
    pager = OpsgeniePager(settings(), None, timeout=TIMEOUT)
    with pytest.raises(PermanentError, match="no API key"):
        await pager.page(PAGE)
    await pager.aclose()


def test_standalone_fake_is_controlled_over_http() -> None:
    fake = FakeProcess("opsgenie", "--api-key", "K")
    try:
        base = fake.url

        def call(path: str, body: object | None = None, auth: bool = False) -> object:
            data = json.dumps(body).encode() if body is not None else None
            request = urllib.request.Request(base + path, data=data)
            if data is not None:
                request.add_header("Content-Type", "application/json")
            if auth:
                request.add_header("Authorization", "GenieKey K")
            with urllib.request.urlopen(request, timeout=5) as response:
                return json.loads(response.read())

        assert call("/_fake/fail", {"route": "create", "kind": "503"}) == {"pending": 1}
        payload = create_payload(PAGE, settings())
        with pytest.raises(urllib.error.HTTPError) as refused:
            call("/v2/alerts", payload, auth=True)
        assert refused.value.code == 503
        refused.value.close()
        created = call("/v2/alerts", payload, auth=True)
        assert isinstance(created, dict)
        assert created["result"] == "Request will be processed"
        status = call(f"/v2/alerts/requests/{created['requestId']}", auth=True)
        assert isinstance(status, dict)
        assert status["data"]["status"] == "Created alert"
        call("/_fake/alerts/watchdesk-web-17/acknowledge", {})
        alert = call("/v2/alerts/watchdesk-web-17?identifierType=alias", auth=True)
        assert isinstance(alert, dict)
        assert alert["data"]["acknowledged"] is True
        state = call("/_fake/state")
        assert isinstance(state, dict)
        assert state["alerts"]["watchdesk-web-17"]["owner"] == "oncall@example.com"
    finally:
        fake.stop()
    assert fake.proc.returncode == 0
