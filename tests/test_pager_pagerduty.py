"""PagerDutyPager: exact events, then page/resolve against a fake Events API v2 that dedups and
fails like the real one."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import AsyncIterator

import pytest

from tests.fakes.pagerduty import PagerDutyFake
from tests.helpers import FakeProcess, closed_port
from ticketing.errors import OutcomeUnknown, PermanentError, RetryableError
from ticketing.pagers.base import Page
from ticketing.pagers.pagerduty import (
    PagerDutyPager,
    PagerDutySettings,
    pd_dedup_key,
    resolve_payload,
    trigger_payload,
)

ROUTING_KEY = "R0UT1NGKEY0123456789abcdef012345"
TIMEOUT = 0.5

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


def settings(url: str = "https://events.pagerduty.com/v2/enqueue") -> PagerDutySettings:
    return PagerDutySettings.model_validate(
        {"routing_key_env": "PAGERDUTY_ROUTING_KEY", "url": url}
    )


@pytest.fixture
async def fake() -> AsyncIterator[PagerDutyFake]:
    async with PagerDutyFake(routing_key=ROUTING_KEY) as server:
        yield server


@pytest.fixture
async def pager(fake: PagerDutyFake) -> AsyncIterator[PagerDutyPager]:
    client = PagerDutyPager(settings(fake.enqueue_url), ROUTING_KEY, timeout=TIMEOUT)
    yield client
    await client.aclose()


# --- pure payloads ---------------------------------------------------------------------------


def test_trigger_payload_is_exact() -> None:
    assert trigger_payload(PAGE, ROUTING_KEY) == {
        "routing_key": ROUTING_KEY,
        "event_action": "trigger",
        "dedup_key": "watchdesk-web-17",
        "payload": {
            "summary": "[URGENT] web is down",
            "source": "watchdesk",
            "severity": "critical",
            "component": "web",
            "custom_details": {
                "details": "web is down: status 503\nSince: 2026-03-01 10:00 EST",
                "target": "web",
                "priority": "urgent",
                "reason": "open",
                "customer": "acme",
                "ticket": "https://acme.freshdesk.com/a/tickets/1",
            },
        },
        "links": [{"href": "https://acme.freshdesk.com/a/tickets/1", "text": "ticket"}],
    }


def test_trigger_payload_without_ticket_or_customer() -> None:
    page = Page("k-1", "db is down", "db: refused", "low", "escalation", "db")
    assert trigger_payload(page, ROUTING_KEY) == {
        "routing_key": ROUTING_KEY,
        "event_action": "trigger",
        "dedup_key": "k-1",
        "payload": {
            "summary": "db is down",
            "source": "watchdesk",
            "severity": "info",
            "component": "db",
            "custom_details": {
                "details": "db: refused",
                "target": "db",
                "priority": "low",
                "reason": "escalation",
            },
        },
    }


@pytest.mark.parametrize(
    ("priority", "severity"),
    [("urgent", "critical"), ("high", "error"), ("medium", "warning"), ("low", "info")],
)
def test_severities(priority: str, severity: str) -> None:
    page = Page("k", "s", "d", priority, "open", "t")  # type: ignore[arg-type]
    assert trigger_payload(page, ROUTING_KEY)["payload"]["severity"] == severity


def test_limits() -> None:
    page = Page("k" * 300, "x" * 2000, "d", "high", "open", "t")
    event = trigger_payload(page, ROUTING_KEY)
    assert len(event["payload"]["summary"]) == 1024
    assert event["payload"]["summary"].endswith("\u2026")
    assert len(event["dedup_key"]) <= 255
    assert event["dedup_key"] == pd_dedup_key("k" * 300)  # stable: the resolve finds it
    assert resolve_payload("k" * 300, ROUTING_KEY)["dedup_key"] == event["dedup_key"]


def test_resolve_payload_is_exact() -> None:
    assert resolve_payload("watchdesk-web-17", ROUTING_KEY) == {
        "routing_key": ROUTING_KEY,
        "event_action": "resolve",
        "dedup_key": "watchdesk-web-17",
    }


# --- against the fake ------------------------------------------------------------------------


async def test_page_then_resolve(fake: PagerDutyFake, pager: PagerDutyPager) -> None:
    assert pager.name == "pagerduty"
    assert pager.supports_resolve is True
    await pager.page(PAGE)
    alert = fake.alerts["watchdesk-web-17"]
    assert alert["status"] == "triggered"
    assert alert["summary"] == "[URGENT] web is down"
    assert alert["severity"] == "critical"
    assert alert["component"] == "web"
    assert alert["links"] == [{"href": PAGE.ticket_url, "text": "ticket"}]
    assert alert["trigger_count"] == 1
    assert fake.requests_to("enqueue")[0]["json"] == trigger_payload(PAGE, ROUTING_KEY)

    assert await pager.acknowledged("watchdesk-web-17") is None
    await pager.resolve("watchdesk-web-17", "web recovered after 12m")
    assert fake.alerts["watchdesk-web-17"]["status"] == "resolved"
    assert fake.requests_to("enqueue")[1]["json"] == resolve_payload(
        "watchdesk-web-17", ROUTING_KEY
    )


async def test_same_key_twice_is_one_alert(fake: PagerDutyFake, pager: PagerDutyPager) -> None:
    await pager.page(PAGE)
    await pager.page(PAGE)  # e.g. the outbox re-sends after a lost answer
    assert list(fake.alerts) == ["watchdesk-web-17"]
    assert fake.alerts["watchdesk-web-17"]["trigger_count"] == 2

    await pager.resolve(PAGE.dedup_key, "recovered")
    await pager.page(PAGE)  # a resolved alert is not re-opened: a new one starts
    assert fake.alerts["watchdesk-web-17"]["trigger_count"] == 1
    assert fake.alerts["watchdesk-web-17"]["status"] == "triggered"
    assert [a["status"] for a in fake.resolved_alerts] == ["resolved"]


async def test_resolve_of_unknown_key_is_accepted(
    fake: PagerDutyFake, pager: PagerDutyPager
) -> None:
    await pager.resolve("never-triggered", "recovered")  # PagerDuty accepts and drops it
    assert fake.alerts == {}


async def test_bad_routing_key_is_permanent_and_secret_free(fake: PagerDutyFake) -> None:
    wrong = "WRONGKEY0123456789abcdef01234567"
    pager = PagerDutyPager(settings(fake.enqueue_url), wrong, timeout=TIMEOUT)
    try:
        with pytest.raises(PermanentError) as caught:
            await pager.page(PAGE)
    finally:
        await pager.aclose()
    assert "HTTP 400" in caught.value.message
    assert "Invalid routing key" in caught.value.message
    assert "Event object is invalid" in caught.value.message
    assert wrong not in str(caught.value)
    assert ROUTING_KEY not in str(caught.value)
    assert fake.alerts == {}


async def test_short_routing_key_names_the_problem(fake: PagerDutyFake) -> None:
    pager = PagerDutyPager(settings(fake.enqueue_url), "short", timeout=TIMEOUT)
    try:
        with pytest.raises(PermanentError, match="should be 32 characters") as caught:
            await pager.page(PAGE)
    finally:
        await pager.aclose()
    assert "short" not in caught.value.message.replace("should be", "")


async def test_missing_routing_key_is_permanent() -> None:
    pager = PagerDutyPager(settings(), None, timeout=TIMEOUT)
    with pytest.raises(PermanentError, match="no routing key"):
        await pager.page(PAGE)
    await pager.aclose()


async def test_rate_limit_is_retryable_without_retry_after(
    fake: PagerDutyFake, pager: PagerDutyPager
) -> None:
    fake.fail_next("enqueue", "429")
    with pytest.raises(RetryableError) as caught:
        await pager.page(PAGE)
    assert not isinstance(caught.value, OutcomeUnknown)
    assert caught.value.retry_after is None  # PagerDuty sends none: the outbox backs off
    assert "429" in caught.value.message
    assert fake.alerts == {}
    await pager.page(PAGE)
    assert fake.alerts["watchdesk-web-17"]["trigger_count"] == 1


async def test_unavailable_is_retryable(fake: PagerDutyFake, pager: PagerDutyPager) -> None:
    fake.fail_next("enqueue", "503")
    with pytest.raises(RetryableError) as caught:
        await pager.resolve(PAGE.dedup_key, "recovered")
    assert not isinstance(caught.value, OutcomeUnknown)
    assert "503" in caught.value.message


async def test_lost_answer_then_retry_still_alerts_once(
    fake: PagerDutyFake, pager: PagerDutyPager
) -> None:
    fake.fail_next("enqueue", "timeout")
    with pytest.raises(OutcomeUnknown):
        await pager.page(PAGE)
    fake.fail_next("enqueue", "drop")
    with pytest.raises(OutcomeUnknown):
        await pager.page(PAGE)
    await pager.page(PAGE)
    assert list(fake.alerts) == ["watchdesk-web-17"]  # dedup_key makes retries harmless
    assert fake.alerts["watchdesk-web-17"]["trigger_count"] == 3


async def test_nothing_listening_is_retryable() -> None:
    url = f"http://127.0.0.1:{closed_port()}/v2/enqueue"
    pager = PagerDutyPager(settings(url), ROUTING_KEY, timeout=TIMEOUT)
    try:
        with pytest.raises(RetryableError) as caught:
            await pager.page(PAGE)
    finally:
        await pager.aclose()
    assert not isinstance(caught.value, OutcomeUnknown)
    assert "cannot connect" in caught.value.message


def test_standalone_fake_is_controlled_over_http() -> None:
    fake = FakeProcess("pagerduty", "--routing-key", ROUTING_KEY)
    try:
        base = fake.url

        def call(path: str, body: object | None = None) -> object:
            data = json.dumps(body).encode() if body is not None else None
            request = urllib.request.Request(base + path, data=data)
            if data is not None:
                request.add_header("Content-Type", "application/json")
            with urllib.request.urlopen(request, timeout=5) as response:
                return json.loads(response.read())

        assert call("/_fake/fail", {"route": "enqueue", "kind": "429", "count": 1}) == {
            "pending": 1
        }
        event = trigger_payload(PAGE, ROUTING_KEY)
        with pytest.raises(urllib.error.HTTPError) as refused:
            call("/v2/enqueue", event)
        assert refused.value.code == 429
        refused.value.close()
        assert refused.value.headers.get("Retry-After") is None
        assert call("/v2/enqueue", event) == {
            "status": "success",
            "message": "Event processed",
            "dedup_key": "watchdesk-web-17",
        }
        call("/v2/enqueue", event)
        call("/_fake/tickets/watchdesk-web-17", {"status": "acknowledged"})
        state = call("/_fake/state")
        assert isinstance(state, dict)
        alert = state["alerts"]["watchdesk-web-17"]
        assert (alert["trigger_count"], alert["status"]) == (2, "acknowledged")
        assert [r["route"] for r in state["requests"]] == ["enqueue"] * 3
    finally:
        fake.stop()
    assert fake.proc.returncode == 0
