"""PagerDuty Events API v2 (https://developer.pagerduty.com/docs/events-api-v2/overview/).

What is used, as documented there:

- Send an alert event: ``POST https://events.pagerduty.com/v2/enqueue`` with ``routing_key``
  (the integration key), ``event_action`` (``trigger`` / ``acknowledge`` / ``resolve``),
  ``dedup_key`` (at most 255 characters) and, for a trigger, ``payload.summary`` (at most 1024
  characters), ``payload.source``, ``payload.severity`` (``critical``, ``error``, ``warning``,
  ``info``), ``payload.component``, ``payload.custom_details`` and top-level ``links``
  (``[{"href", "text"}]``)
  (https://developer.pagerduty.com/docs/events-api-v2/trigger-events/, source:
  github.com/PagerDuty/developer-docs docs/events-API-v2/02-Trigger-Events.md).
- De-duplication: a trigger with the ``dedup_key`` of an open alert is added to that alert
  instead of opening another, so a page that is sent twice alerts once. A resolve needs only
  ``routing_key``, ``dedup_key`` and ``event_action``.
- Answers: 202 ``{"status": "success", "message": "Event processed", "dedup_key"}``; 400 for an
  invalid event (``{"status": "invalid event", "message", "errors": [...]}``), not retried; 429
  (no ``Retry-After``: we back off on our own) and 5xx, retried
  (docs/events-API-v2/01-Overview.md, "Response Codes & Retry Logic").
- The Events API cannot say whether a person acknowledged an alert (that is the REST API,
  with another kind of key), so ``acknowledged`` answers None.
"""

from __future__ import annotations

import hashlib
from typing import Any, ClassVar, Final

from pydantic import HttpUrl

from ticketing.base import Priority
from ticketing.errors import DeliveryError, PermanentError, without_secret
from ticketing.http import DEFAULT_TIMEOUT, JsonHttp, truncate
from ticketing.pagers.base import Page
from ticketing.settings import IntegrationSettings

SEVERITIES: Final[dict[Priority, str]] = {
    "urgent": "critical",
    "high": "error",
    "medium": "warning",
    "low": "info",
}
MAX_SUMMARY: Final = 1024
MAX_DEDUP_KEY: Final = 255


class PagerDutySettings(IntegrationSettings):
    SECRETS: ClassVar[tuple[str, ...]] = ("routing_key", "webhook_secret")
    REQUIRED_SECRETS: ClassVar[tuple[str, ...]] = ("routing_key",)

    routing_key_env: str | None = None
    routing_key_file: str | None = None
    url: HttpUrl = HttpUrl("https://events.pagerduty.com/v2/enqueue")
    # The signing secret of a v3 webhook subscription that sends this service's
    # incident.acknowledged events to POST /api/webhooks/pagerduty (acks then count as work).
    webhook_secret_env: str | None = None
    webhook_secret_file: str | None = None


# --- pure payload building -----------------------------------------------------------------


def pd_dedup_key(dedup_key: str) -> str:
    """The key PagerDuty accepts (at most 255 characters): the key itself, else a stable digest."""
    if len(dedup_key) <= MAX_DEDUP_KEY:
        return dedup_key
    return "watchdesk-" + hashlib.sha256(dedup_key.encode()).hexdigest()


def custom_details(page: Page) -> dict[str, str]:
    details = {
        "details": page.details,
        "target": page.target,
        "priority": page.priority,
        "reason": page.reason,
    }
    if page.customer:
        details["customer"] = page.customer
    if page.ticket_url:
        details["ticket"] = page.ticket_url
    return details


def trigger_payload(page: Page, routing_key: str) -> dict[str, Any]:
    event: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": pd_dedup_key(page.dedup_key),
        "payload": {
            "summary": truncate(page.summary, MAX_SUMMARY),
            "source": page.source,
            "severity": SEVERITIES[page.priority],
            "component": page.target,
            "custom_details": custom_details(page),
        },
    }
    if page.ticket_url:
        event["links"] = [{"href": page.ticket_url, "text": "ticket"}]
    return event


def resolve_payload(dedup_key: str, routing_key: str) -> dict[str, Any]:
    return {
        "routing_key": routing_key,
        "event_action": "resolve",
        "dedup_key": pd_dedup_key(dedup_key),
    }


# --- the pager -----------------------------------------------------------------------------


class PagerDutyPager:
    name = "pagerduty"
    supports_resolve = True

    def __init__(
        self, settings: PagerDutySettings, secret: str | None, timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        self.settings = settings
        self._routing_key = secret or ""
        self._http = JsonHttp(self.name, str(settings.url), timeout=timeout)

    async def _send(self, event: dict[str, Any]) -> None:
        if not self._routing_key:
            raise PermanentError(f"{self.name}: no routing key configured")
        try:
            await self._http.request("POST", "", json_body=event)
        except DeliveryError as error:
            raise without_secret(error, self._routing_key) from None

    async def page(self, page: Page) -> None:
        await self._send(trigger_payload(page, self._routing_key))

    async def resolve(self, dedup_key: str, summary: str) -> None:
        # PagerDuty keeps the trigger's summary; a resolve carries only the key.
        await self._send(resolve_payload(dedup_key, self._routing_key))

    async def acknowledged(self, dedup_key: str) -> bool | None:
        return None  # the Events API cannot tell; that takes the REST API and another key

    async def aclose(self) -> None:
        await self._http.aclose()
