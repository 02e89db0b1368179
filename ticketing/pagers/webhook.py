"""Pages as JSON POSTs to a URL of yours, optionally HMAC-signed.

Every call is one ``POST`` of a JSON object with the same keys (null where a key does not
apply, e.g. ``priority`` on a resolve)::

    {"event": "page" | "resolve", "reason": "open" | "escalation" | "test" | null,
     "dedup_key", "summary", "details", "priority", "target", "customer", "ticket_url",
     "sent_at": "2026-03-01T10:04:00Z"}

With a secret, the header ``X-Watchdesk-Signature: sha256=<hex>`` carries the HMAC-SHA256 of
the raw request body under that secret, the scheme GitHub uses for its webhooks
(https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries): compute it
over the bytes received, compare in constant time, and reject old ``sent_at`` values to stop
replays. Any 2xx answer is a delivery; 408/429/5xx and network failures are retried; other
4xx are not.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any, ClassVar, Final

from pydantic import HttpUrl

from ticketing.errors import DeliveryError
from ticketing.http import DEFAULT_TIMEOUT, JsonHttp
from ticketing.pagers.base import Page
from ticketing.settings import IntegrationSettings

SIGNATURE_HEADER: Final = "X-Watchdesk-Signature"


class WebhookPagerSettings(IntegrationSettings):
    SECRETS: ClassVar[tuple[str, ...]] = ("secret",)

    url: HttpUrl
    secret_env: str | None = None
    secret_file: str | None = None
    headers: dict[str, str] = {}


# --- pure payload building -----------------------------------------------------------------


def timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def page_payload(page: Page, now: datetime) -> dict[str, Any]:
    return {
        "event": "page",
        "reason": page.reason,
        "dedup_key": page.dedup_key,
        "summary": page.summary,
        "details": page.details,
        "priority": page.priority,
        "target": page.target,
        "customer": page.customer,
        "ticket_url": page.ticket_url,
        "sent_at": timestamp(now),
    }


def resolve_payload(dedup_key: str, summary: str, now: datetime) -> dict[str, Any]:
    return {
        "event": "resolve",
        "reason": None,
        "dedup_key": dedup_key,
        "summary": summary,
        "details": None,
        "priority": None,
        "target": None,
        "customer": None,
        "ticket_url": None,
        "sent_at": timestamp(now),
    }


def encode(payload: dict[str, Any]) -> bytes:
    """The exact bytes sent (and signed): compact UTF-8 JSON."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def signature(secret: str, body: bytes) -> str:
    """The ``X-Watchdesk-Signature`` value of ``body``."""
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def request_headers(body: bytes, secret: str | None) -> dict[str, str]:
    headers = {"Content-Type": "application/json"}
    if secret:
        headers[SIGNATURE_HEADER] = signature(secret, body)
    return headers


# --- the pager -----------------------------------------------------------------------------


class WebhookPager:
    name = "webhook"
    supports_resolve = True

    def __init__(
        self,
        settings: WebhookPagerSettings,
        secret: str | None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.settings = settings
        self._secret = secret or None
        self._http = JsonHttp(
            self.name, str(settings.url), headers=dict(settings.headers), timeout=timeout
        )

    async def _post(self, payload: dict[str, Any]) -> None:
        body = encode(payload)
        try:
            await self._http.request(
                "POST", "", data=body, headers=request_headers(body, self._secret)
            )
        except DeliveryError as error:
            if self._secret and self._secret in error.message:
                raise type(error)(
                    error.message.replace(self._secret, "***"), retry_after=error.retry_after
                ) from None
            raise

    async def page(self, page: Page) -> None:
        await self._post(page_payload(page, datetime.now(UTC)))

    async def resolve(self, dedup_key: str, summary: str) -> None:
        await self._post(resolve_payload(dedup_key, summary, datetime.now(UTC)))

    async def acknowledged(self, dedup_key: str) -> bool | None:
        return None

    async def aclose(self) -> None:
        await self._http.aclose()
