"""A pager that writes the page to the agent's log: for trying policies out.

Each page is one line on the logger ``watchdesk.pager`` at ``level``, e.g.::

    PAGE open [urgent] [URGENT] web is down | target=web customer=acme
    ticket=https://... key=watchdesk-web-17 | web failed 3 checks / last error: status 503

and a resolve ``RESOLVED web recovered after 12m | key=watchdesk-web-17``. It never fails.
"""

from __future__ import annotations

import logging
from typing import Final, Literal

from ticketing.http import DEFAULT_TIMEOUT
from ticketing.pagers.base import Page
from ticketing.settings import IntegrationSettings

LOGGER: Final = "watchdesk.pager"
LEVELS: Final = {"info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}

log = logging.getLogger(LOGGER)


class LogPagerSettings(IntegrationSettings):
    level: Literal["info", "warning", "error"] = "warning"


def one_line(text: str) -> str:
    return " / ".join(line.strip() for line in text.splitlines() if line.strip())


def page_line(page: Page) -> str:
    fields = [f"target={page.target}"]
    if page.customer:
        fields.append(f"customer={page.customer}")
    if page.ticket_url:
        fields.append(f"ticket={page.ticket_url}")
    fields.append(f"key={page.dedup_key}")
    line = f"PAGE {page.reason} [{page.priority}] {one_line(page.summary)} | {' '.join(fields)}"
    details = one_line(page.details)
    return f"{line} | {details}" if details else line


def resolve_line(dedup_key: str, summary: str) -> str:
    return f"RESOLVED {one_line(summary)} | key={dedup_key}"


class LogPager:
    name = "log"
    supports_resolve = True

    def __init__(
        self,
        settings: LogPagerSettings,
        secret: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.settings = settings
        self._level = LEVELS[settings.level]

    async def page(self, page: Page) -> None:
        log.log(self._level, "%s", page_line(page))

    async def resolve(self, dedup_key: str, summary: str) -> None:
        log.log(self._level, "%s", resolve_line(dedup_key, summary))

    async def acknowledged(self, dedup_key: str) -> bool | None:
        return None

    async def aclose(self) -> None:
        return None
