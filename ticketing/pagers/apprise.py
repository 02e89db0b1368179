"""Any apprise URL: Slack, Teams, Telegram, SMS gateways... (https://github.com/caronc/apprise).

An apprise URL carries its tokens inside it, so the URLs themselves are the secret: the secret
text holds one or more URLs separated by whitespace or new lines (lines starting with ``#`` are
comments). No message of ours ever contains a URL, only apprise's service names ("JSON",
"Slack").

Used as documented (https://github.com/caronc/apprise/wiki/Development_API): ``Apprise()``,
``add(url)`` (False for a URL apprise does not understand), ``await async_notify(body=,
title=, notify_type=, body_format=)``, whose result is falsy when any service failed; apprise
2.x also takes ``timeout`` (seconds for the whole call) and reports per service. A page goes out
as notify type ``failure``, a resolve as ``success``, both as plain text. The generic
``json://host/path`` service posts ``{"version": "1.0", "title", "message", "attachments": [],
"type"}`` (https://github.com/caronc/apprise/wiki/Notify_Custom_JSON; checked against
``apprise/plugins/custom_json.py`` of apprise 2.2).

Apprise cannot say whether someone acknowledged: ``acknowledged`` answers None. A failed
delivery is retried by the outbox; that re-sends to every URL, so a URL that worked gets the
page again: apprise has no per-URL idempotency.
"""

from __future__ import annotations

import functools
import inspect
import logging
from typing import TYPE_CHECKING, Any, ClassVar, Final, Literal

from ticketing.errors import PermanentError, RetryableError
from ticketing.http import DEFAULT_TIMEOUT
from ticketing.pagers.base import Page
from ticketing.settings import IntegrationSettings

if TYPE_CHECKING:
    # apprise (and its plugins) load when a pager is built, not when a config is validated.
    import apprise

log = logging.getLogger(__name__)

REASONS: Final = {
    "open": "new incident",
    "escalation": "escalation: nobody is working the ticket yet",
    "test": "test page, nothing is down",
    "database": "watchdesk cannot reach its database: nothing opens or is sent",
}


@functools.cache
def _has_timeout() -> bool:
    """apprise >= 2 limits a whole call with ``timeout``; 1.x has no such argument."""
    import apprise

    return "timeout" in inspect.signature(apprise.Apprise.notify).parameters


class AppriseSettings(IntegrationSettings):
    SECRETS: ClassVar[tuple[str, ...]] = ("urls",)
    REQUIRED_SECRETS: ClassVar[tuple[str, ...]] = ("urls",)

    urls_env: str | None = None
    urls_file: str | None = None


# --- pure text building --------------------------------------------------------------------


def parse_urls(text: str | None) -> list[str]:
    """The URLs of the secret text: separated by whitespace, ``#`` lines are comments."""
    urls: list[str] = []
    for line in (text or "").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            urls.extend(line.split())
    return urls


def scheme(url: str) -> str:
    """What may be said about a URL without its tokens: its scheme."""
    head, sep, _ = url.partition("://")
    return head if sep and head.isalnum() else "?"


def page_notification(page: Page) -> tuple[str, str]:
    """(title, body) of a page: the summary, then what failed, the ticket, the key."""
    lines = [line.rstrip() for line in page.details.strip().splitlines()]
    if page.ticket_url:
        lines.append(f"Ticket: {page.ticket_url}")
    lines.append(f"Priority: {page.priority}, {REASONS.get(page.reason, page.reason)}")
    lines.append(f"Key: {page.dedup_key}")
    return page.summary, "\n".join(lines)


def resolve_notification(dedup_key: str, summary: str) -> tuple[str, str]:
    return f"[RESOLVED] {summary}", f"{summary}\nKey: {dedup_key}"


# --- the pager -----------------------------------------------------------------------------


class ApprisePager:
    name = "apprise"
    supports_resolve = True

    def __init__(
        self, settings: AppriseSettings, secret: str | None, timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        self.settings = settings
        self._timeout = timeout
        import apprise

        self._apprise: apprise.Apprise = apprise.Apprise()
        self._configured = 0
        self._invalid: list[str] = []
        for number, url in enumerate(parse_urls(secret), start=1):
            self._configured += 1
            if not self._apprise.add(url):
                # The URL holds tokens: say which one by position and scheme only.
                self._invalid.append(f"#{number} ({scheme(url)}://)")
        if self._invalid:
            log.warning(
                "apprise: %d of %d URLs are not valid apprise URLs and are skipped: %s",
                len(self._invalid),
                self._configured,
                ", ".join(self._invalid),
            )

    async def _notify(self, title: str, body: str, kind: Literal["FAILURE", "SUCCESS"]) -> None:
        import apprise

        if len(self._apprise) == 0:
            if self._configured == 0:
                raise PermanentError(f"{self.name}: no URLs configured")
            raise PermanentError(
                f"{self.name}: none of the {self._configured} URLs is a valid apprise URL "
                f"({', '.join(self._invalid)})"
            )
        options: dict[str, Any] = {"timeout": self._timeout} if _has_timeout() else {}
        try:
            result = await self._apprise.async_notify(
                body=body,
                title=title,
                notify_type=getattr(apprise.NotifyType, kind),
                body_format=apprise.NotifyFormat.TEXT,
                **options,
            )
        except Exception as exc:  # a plugin's own crash; its text may hold a URL
            raise RetryableError(f"{self.name}: delivery failed: {type(exc).__name__}") from None
        if result:
            return
        failed = sorted({str(r.name) for r in result if not r}) if _has_timeout() else []
        where = f" ({', '.join(failed)})" if failed else ""
        raise RetryableError(f"{self.name}: delivery failed to one or more URLs{where}")

    async def page(self, page: Page) -> None:
        title, body = page_notification(page)
        await self._notify(title, body, "FAILURE")

    async def resolve(self, dedup_key: str, summary: str) -> None:
        title, body = resolve_notification(dedup_key, summary)
        await self._notify(title, body, "SUCCESS")

    async def acknowledged(self, dedup_key: str) -> bool | None:
        return None

    async def aclose(self) -> None:
        return None  # apprise opens a connection per notification: nothing held open
