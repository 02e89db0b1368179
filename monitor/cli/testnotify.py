"""``watchdesk test-notify``: a test ticket and a test page through every configured channel.

Each channel is tried once, directly (not through the outbox: a person is watching), and
reported on one line with ok or the channel's own error. Test tickets are resolved at once and
test alerts resolved where the pager can, so they leave nothing open behind them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from monitor.config import Config
from monitor.delivery.integrations import build_backend, build_pager
from monitor.errors import SecretError
from ticketing.base import TicketDraft
from ticketing.errors import DeliveryError
from ticketing.pagers.base import Page


@dataclass(frozen=True)
class ChannelResult:
    channel: str
    kind: str
    ok: bool
    detail: str


async def run_test_notify(config: Config) -> list[ChannelResult]:
    key = f"watchdesk-test-{int(time.time())}"
    results = [await _test_ticket(config, key)]
    results += await _test_pages(config, key)
    return results


async def _test_ticket(config: Config, key: str) -> ChannelResult:
    kind = config.ticketing.backend
    try:
        backend = build_backend(config)
    except SecretError as error:
        return ChannelResult("ticketing", kind, False, str(error))
    draft = TicketDraft(
        dedup_key=key,
        subject="[TEST] watchdesk test ticket",
        description=(
            "This is a test ticket from `watchdesk test-notify`: the helpdesk connection works.\n"
            "It is resolved right away; nothing needs to be done."
        ),
        priority="low",
        requester_email=getattr(config.backend_settings, "requester_email", None),
        target="watchdesk-test",
        tags=("watchdesk", key),
    )
    try:
        ref = await backend.create(draft)
        await backend.set_status(ref, "resolved")
        return ChannelResult(
            "ticketing", kind, True, f"ticket {ref.id}" + (f" {ref.url}" if ref.url else "")
        )
    except DeliveryError as error:
        return ChannelResult("ticketing", kind, False, error.message)
    finally:
        await backend.aclose()


async def _test_pages(config: Config, key: str) -> list[ChannelResult]:
    page = Page(
        dedup_key=key,
        summary="[TEST] watchdesk test page",
        details="A test page from `watchdesk test-notify`: this channel reaches you. No action.",
        priority="low",
        reason="test",
        target="watchdesk-test",
    )
    results = []
    for name in config.pagers:
        kind = config.pager_types[name]
        try:
            pager = build_pager(config, name)
        except SecretError as error:
            results.append(ChannelResult(f"pagers.{name}", kind, False, str(error)))
            continue
        try:
            await pager.page(page)
            if pager.supports_resolve:
                await pager.resolve(key, "test page resolved")
            results.append(ChannelResult(f"pagers.{name}", kind, True, "sent"))
        except DeliveryError as error:
            results.append(ChannelResult(f"pagers.{name}", kind, False, error.message))
        finally:
            await pager.aclose()
    return results
