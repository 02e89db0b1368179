"""LogPager: one line per page on ``watchdesk.pager`` at the configured level; never fails."""

from __future__ import annotations

import logging

import pytest

from ticketing.pagers.base import Page
from ticketing.pagers.log import LogPager, LogPagerSettings, page_line, resolve_line

PAGE = Page(
    dedup_key="watchdesk-web-17",
    summary="[URGENT] web is down",
    details="web is down: status 503\nSince: 2026-03-01 10:00 EST\n",
    priority="urgent",
    reason="open",
    target="web",
    customer="acme",
    ticket_url="https://acme.freshdesk.com/a/tickets/1",
)


def test_lines_are_exact() -> None:
    assert page_line(PAGE) == (
        "PAGE open [urgent] [URGENT] web is down | target=web customer=acme "
        "ticket=https://acme.freshdesk.com/a/tickets/1 key=watchdesk-web-17 | "
        "web is down: status 503 / Since: 2026-03-01 10:00 EST"
    )
    bare = Page("k-1", "db is down", "", "low", "test", "db")
    assert page_line(bare) == "PAGE test [low] db is down | target=db key=k-1"
    assert resolve_line("k-1", "db recovered\nafter 3m") == (
        "RESOLVED db recovered / after 3m | key=k-1"
    )


@pytest.mark.parametrize(
    ("level", "number"),
    [("info", logging.INFO), ("warning", logging.WARNING), ("error", logging.ERROR)],
)
async def test_logs_at_the_configured_level(
    caplog: pytest.LogCaptureFixture, level: str, number: int
) -> None:
    caplog.set_level(logging.DEBUG, logger="watchdesk.pager")
    pager = LogPager(LogPagerSettings.model_validate({"level": level}), None, timeout=0.5)
    assert (pager.name, pager.supports_resolve) == ("log", True)
    await pager.page(PAGE)
    await pager.resolve("watchdesk-web-17", "web recovered after 12m")
    assert await pager.acknowledged("watchdesk-web-17") is None
    await pager.aclose()
    assert [(r.name, r.levelno, r.getMessage()) for r in caplog.records] == [
        ("watchdesk.pager", number, page_line(PAGE)),
        ("watchdesk.pager", number, "RESOLVED web recovered after 12m | key=watchdesk-web-17"),
    ]


def test_default_level_is_warning() -> None:
    assert LogPagerSettings().level == "warning"
