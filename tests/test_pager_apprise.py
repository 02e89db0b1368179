"""ApprisePager: the title and body, then real deliveries through apprise's ``json://`` service
to a local receiver (apprise posts ``{"version", "title", "message", "attachments", "type"}``)."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from tests.helpers import closed_port
from ticketing.errors import PermanentError, RetryableError
from ticketing.pagers.apprise import (
    ApprisePager,
    AppriseSettings,
    page_notification,
    parse_urls,
    resolve_notification,
)
from ticketing.pagers.base import Page

TIMEOUT = 2.0  # apprise posts from a worker thread with requests: leave it room
TOKEN = "tok3n-s3cret"

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
PAGE_BODY = (
    "web is down: status 503\n"
    "Since: 2026-03-01 10:00 EST\n"
    "Ticket: https://acme.freshdesk.com/a/tickets/1\n"
    "Priority: urgent, new incident\n"
    "Key: watchdesk-web-17"
)
SETTINGS = AppriseSettings.model_validate({"urls_env": "APPRISE_URLS"})


class Receiver:
    """Records what apprise posts; answers ``status``."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.status = 200
        self.port = 0
        self._runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        self.received.append(
            {
                "path": request.path,
                "headers": dict(request.headers),
                "json": json.loads(await request.read()),
            }
        )
        return web.Response(status=self.status)

    def url(self, path: str = "/notify", auth: str = "") -> str:
        return f"json://{auth}127.0.0.1:{self.port}{path}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    server = Receiver()
    await server.start()
    yield server
    await server.stop()


# --- pure text -------------------------------------------------------------------------------


def test_parse_urls() -> None:
    text = "# on-call chat\njson://a/x  json://b/y\n\n  tgram://bot/chat  \n#json://off/z\n"
    assert parse_urls(text) == ["json://a/x", "json://b/y", "tgram://bot/chat"]
    assert parse_urls(None) == []


def test_page_notification_is_exact() -> None:
    assert page_notification(PAGE) == ("[URGENT] web is down", PAGE_BODY)
    bare = Page("k-1", "[LOW] db is down", "db is down: refused", "low", "test", "db")
    assert page_notification(bare) == (
        "[LOW] db is down",
        "db is down: refused\nPriority: low, test page, nothing is down\nKey: k-1",
    )


def test_resolve_notification_is_exact() -> None:
    assert resolve_notification("watchdesk-web-17", "web recovered after 12m") == (
        "[RESOLVED] web recovered after 12m",
        "web recovered after 12m\nKey: watchdesk-web-17",
    )


# --- through apprise -------------------------------------------------------------------------


async def test_page_and_resolve_post_json(receiver: Receiver) -> None:
    pager = ApprisePager(SETTINGS, receiver.url(), timeout=TIMEOUT)
    assert (pager.name, pager.supports_resolve) == ("apprise", True)
    await pager.page(PAGE)
    await pager.resolve("watchdesk-web-17", "web recovered after 12m")
    await pager.aclose()
    page, resolved = receiver.received
    assert page["path"] == "/notify"
    assert page["headers"]["Content-Type"] == "application/json"
    assert page["json"] == {
        "version": "1.0",
        "title": "[URGENT] web is down",
        "message": PAGE_BODY,
        "attachments": [],
        "type": "failure",
    }
    assert resolved["json"] == {
        "version": "1.0",
        "title": "[RESOLVED] web recovered after 12m",
        "message": "web recovered after 12m\nKey: watchdesk-web-17",
        "attachments": [],
        "type": "success",
    }
    assert await pager.acknowledged("watchdesk-web-17") is None


async def test_every_url_gets_it(receiver: Receiver) -> None:
    urls = f"{receiver.url('/one')}\n{receiver.url('/two', auth=f'bot:{TOKEN}@')}"
    await ApprisePager(SETTINGS, urls, timeout=TIMEOUT).page(PAGE)
    assert sorted(r["path"] for r in receiver.received) == ["/one", "/two"]
    two = next(r for r in receiver.received if r["path"] == "/two")
    assert two["headers"]["Authorization"] == "Basic " + base64.b64encode(
        f"bot:{TOKEN}".encode()
    ).decode("ascii")


async def test_failure_is_retryable_and_never_shows_the_url(receiver: Receiver) -> None:
    receiver.status = 500
    urls = f"{receiver.url('/ok')} {receiver.url(f'/{TOKEN}', auth=f'bot:{TOKEN}@')}"
    pager = ApprisePager(SETTINGS, urls, timeout=TIMEOUT)
    with pytest.raises(RetryableError) as caught:
        await pager.page(PAGE)
    assert caught.value.message == "apprise: delivery failed to one or more URLs (JSON)"
    assert TOKEN not in str(caught.value)
    assert str(receiver.port) not in str(caught.value)


async def test_nothing_listening_is_retryable() -> None:
    pager = ApprisePager(SETTINGS, f"json://127.0.0.1:{closed_port()}/x", timeout=TIMEOUT)
    with pytest.raises(RetryableError, match="delivery failed"):
        await pager.page(PAGE)


async def test_invalid_urls(receiver: Receiver, caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(PermanentError) as caught:
        await ApprisePager(SETTINGS, f"nosuch://{TOKEN}@host", timeout=TIMEOUT).page(PAGE)
    assert caught.value.message == (
        "apprise: none of the 1 URLs is a valid apprise URL (#1 (nosuch://))"
    )
    with pytest.raises(PermanentError, match="no URLs configured"):
        await ApprisePager(SETTINGS, "  \n", timeout=TIMEOUT).page(PAGE)

    caplog.set_level(logging.WARNING, logger="ticketing.pagers.apprise")
    pager = ApprisePager(SETTINGS, f"nosuch://{TOKEN}@host\n{receiver.url()}", timeout=TIMEOUT)
    assert "#1 (nosuch://)" in caplog.text
    assert TOKEN not in caplog.text
    await pager.page(PAGE)  # the valid one still works
    assert len(receiver.received) == 1
