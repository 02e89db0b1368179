"""WebhookPager: exact JSON and signature, then POSTs to a real local receiver."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web

from tests.helpers import closed_port
from ticketing.errors import DeliveryError, OutcomeUnknown, PermanentError, RetryableError
from ticketing.pagers.base import Page
from ticketing.pagers.webhook import (
    WebhookPager,
    WebhookPagerSettings,
    encode,
    page_payload,
    request_headers,
    resolve_payload,
    signature,
)

SECRET = "whsec-0123456789"
TIMEOUT = 0.5
NOW = datetime(2026, 3, 1, 15, 4, 5, tzinfo=UTC)

PAGE = Page(
    dedup_key="watchdesk-web-17",
    summary="[URGENT] web is down",
    details="web is down: status 503\nSince: 2026-03-01 10:00 EST",
    priority="urgent",
    reason="escalation",
    target="web",
    customer="acme",
    ticket_url="https://acme.freshdesk.com/a/tickets/1",
)


class Receiver:
    """A webhook endpoint on 127.0.0.1 that records each request and answers ``status``."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.status = 204
        self.headers: dict[str, str] = {}
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        self.received.append({"headers": dict(request.headers), "body": await request.read()})
        return web.Response(status=self.status, headers=self.headers)

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/hooks/watchdesk", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}/hooks/watchdesk"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    server = Receiver()
    await server.start()
    yield server
    await server.stop()


def settings(url: str, **extra: object) -> WebhookPagerSettings:
    return WebhookPagerSettings.model_validate({"url": url, **extra})


# --- pure payloads ---------------------------------------------------------------------------


def test_page_payload_is_exact() -> None:
    assert page_payload(PAGE, NOW) == {
        "event": "page",
        "reason": "escalation",
        "dedup_key": "watchdesk-web-17",
        "summary": "[URGENT] web is down",
        "details": "web is down: status 503\nSince: 2026-03-01 10:00 EST",
        "priority": "urgent",
        "target": "web",
        "customer": "acme",
        "ticket_url": "https://acme.freshdesk.com/a/tickets/1",
        "sent_at": "2026-03-01T15:04:05Z",
    }


def test_resolve_payload_is_exact() -> None:
    assert resolve_payload("watchdesk-web-17", "web recovered after 12m", NOW) == {
        "event": "resolve",
        "reason": None,
        "dedup_key": "watchdesk-web-17",
        "summary": "web recovered after 12m",
        "details": None,
        "priority": None,
        "target": None,
        "customer": None,
        "ticket_url": None,
        "sent_at": "2026-03-01T15:04:05Z",
    }


def test_body_and_signature() -> None:
    body = encode({"summary": "café", "n": 1})
    assert body == '{"summary":"café","n":1}'.encode()
    # The well-known HMAC-SHA256 example (key "key"), computed elsewhere.
    known = b"The quick brown fox jumps over the lazy dog"
    assert signature("key", known) == (
        "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
    )
    assert request_headers(body, None) == {"Content-Type": "application/json"}
    assert request_headers(body, "key") == {
        "Content-Type": "application/json",
        "X-Watchdesk-Signature": signature("key", body),
    }


# --- against a receiver ----------------------------------------------------------------------


async def test_signed_page_verifies(receiver: Receiver) -> None:
    pager = WebhookPager(settings(receiver.url, headers={"X-Team": "ops"}), SECRET, timeout=TIMEOUT)
    assert (pager.name, pager.supports_resolve) == ("webhook", True)
    await pager.page(PAGE)
    await pager.aclose()
    (request,) = receiver.received
    raw = request["body"]
    expected = "sha256=" + hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(request["headers"]["X-Watchdesk-Signature"], expected)
    assert request["headers"]["Content-Type"] == "application/json"
    assert request["headers"]["X-Team"] == "ops"
    payload = json.loads(raw)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", payload.pop("sent_at"))
    expected_payload = page_payload(PAGE, NOW)
    del expected_payload["sent_at"]
    assert payload == expected_payload
    assert await pager.acknowledged(PAGE.dedup_key) is None


async def test_resolve_and_unsigned(receiver: Receiver) -> None:
    pager = WebhookPager(settings(receiver.url), None, timeout=TIMEOUT)
    await pager.resolve("watchdesk-web-17", "web recovered after 12m")
    await pager.aclose()
    (request,) = receiver.received
    assert "X-Watchdesk-Signature" not in request["headers"]
    payload = json.loads(request["body"])
    assert (payload["event"], payload["dedup_key"], payload["summary"]) == (
        "resolve",
        "watchdesk-web-17",
        "web recovered after 12m",
    )


@pytest.mark.parametrize(
    ("status", "kind"),
    [(500, RetryableError), (503, RetryableError), (404, PermanentError), (410, PermanentError)],
)
async def test_answers(receiver: Receiver, status: int, kind: type[DeliveryError]) -> None:
    receiver.status = status
    pager = WebhookPager(settings(receiver.url), SECRET, timeout=TIMEOUT)
    try:
        with pytest.raises(kind) as caught:
            await pager.page(PAGE)
    finally:
        await pager.aclose()
    assert f"HTTP {status}" in caught.value.message
    assert SECRET not in caught.value.message


async def test_rate_limit_honours_retry_after(receiver: Receiver) -> None:
    receiver.status = 429
    receiver.headers = {"Retry-After": "3"}
    pager = WebhookPager(settings(receiver.url), SECRET, timeout=TIMEOUT)
    try:
        with pytest.raises(RetryableError) as caught:
            await pager.page(PAGE)
    finally:
        await pager.aclose()
    assert caught.value.retry_after == 3


async def test_nothing_listening_is_retryable() -> None:
    url = f"http://127.0.0.1:{closed_port()}/hook"
    pager = WebhookPager(settings(url), SECRET, timeout=TIMEOUT)
    try:
        with pytest.raises(RetryableError) as caught:
            await pager.page(PAGE)
    finally:
        await pager.aclose()
    assert not isinstance(caught.value, OutcomeUnknown)
