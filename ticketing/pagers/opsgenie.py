"""Opsgenie Alert API v2 (https://docs.opsgenie.com/docs/alert-api).

What is used, as documented there:

- Authentication: ``Authorization: GenieKey <api key>`` of an API integration
  (https://docs.opsgenie.com/docs/authentication); EU accounts use https://api.eu.opsgenie.com.
- Create alert: ``POST /v2/alerts`` with ``message`` (mandatory, at most 130 characters),
  ``alias`` (at most 512, the key of de-duplication: while an alert with that alias is open, a
  second create only raises its count), ``description`` (15,000), ``responders``
  (``[{"type": "team"|"user"|"escalation"|"schedule", "id"|"name"|"username"}]``), ``tags``
  (at most 20, 50 characters each), ``details`` (string to string, 8,000 characters in all),
  ``entity`` (512), ``source`` (100), ``priority`` ``P1``..``P5`` (default ``P3``).
- Close alert: ``POST /v2/alerts/{alias}/close?identifierType=alias`` with ``source``, ``note``.
- Get alert: ``GET /v2/alerts/{alias}?identifierType=alias`` -> ``{"data": {"status",
  "acknowledged", ...}}``; 404 ``{"message": "Alert does not exist"}``.
- Creates and closes are processed asynchronously: 202 ``{"result": "Request will be
  processed", "took", "requestId"}``. So right after a create, Get may still answer 404.
- Errors (https://docs.opsgenie.com/docs/response): 401 bad key or disabled integration, 403,
  422 ``{"message": "Request body is not processable...", "errors": {field: reason}}``: not
  retried; 429 (no ``Retry-After``) and 5xx: retried.
"""

from __future__ import annotations

import hashlib
from typing import Any, ClassVar, Final
from urllib.parse import quote

from pydantic import HttpUrl

from ticketing.base import Priority
from ticketing.errors import DeliveryError, PermanentError, without_secret
from ticketing.http import DEFAULT_TIMEOUT, JsonHttp, truncate
from ticketing.pagers.base import Page
from ticketing.settings import IntegrationSettings

PRIORITIES: Final[dict[Priority, str]] = {
    "urgent": "P1",
    "high": "P2",
    "medium": "P3",
    "low": "P4",
}
TEST_PRIORITY: Final = "P5"  # a test page must not wake anybody up
SOURCE: Final = "watchdesk"
MAX_MESSAGE: Final = 130
MAX_ALIAS: Final = 512
MAX_DESCRIPTION: Final = 15000
MAX_TAG: Final = 50
MAX_TAGS: Final = 20
MAX_ENTITY: Final = 512
MAX_NOTE: Final = 25000


class OpsgenieSettings(IntegrationSettings):
    SECRETS: ClassVar[tuple[str, ...]] = ("api_key",)
    REQUIRED_SECRETS: ClassVar[tuple[str, ...]] = ("api_key",)

    api_key_env: str | None = None
    api_key_file: str | None = None
    url: HttpUrl = HttpUrl("https://api.opsgenie.com")
    responders: list[dict[str, str]] = []


# --- pure payload building -----------------------------------------------------------------


def alias(dedup_key: str) -> str:
    """The alias Opsgenie accepts (at most 512 characters): the key, else a stable digest."""
    if len(dedup_key) <= MAX_ALIAS:
        return dedup_key
    return "watchdesk-" + hashlib.sha256(dedup_key.encode()).hexdigest()


def priority(page: Page) -> str:
    return TEST_PRIORITY if page.reason == "test" else PRIORITIES[page.priority]


def description(page: Page) -> str:
    text = page.details
    if page.ticket_url:
        text = f"{text}\nTicket: {page.ticket_url}"
    return truncate(text, MAX_DESCRIPTION)


def tags(page: Page) -> list[str]:
    found: list[str] = []
    for tag in ("watchdesk", page.target, page.priority, page.reason, page.customer):
        if tag:
            tag = truncate(tag, MAX_TAG)
            if tag not in found:
                found.append(tag)
    return found[:MAX_TAGS]


def details(page: Page) -> dict[str, str]:
    out = {"target": page.target, "priority": page.priority, "reason": page.reason}
    if page.customer:
        out["customer"] = page.customer
    if page.ticket_url:
        out["ticket"] = page.ticket_url
    return out


def create_payload(page: Page, settings: OpsgenieSettings) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "message": truncate(page.summary, MAX_MESSAGE),
        "alias": alias(page.dedup_key),
        "description": description(page),
        "priority": priority(page),
        "source": SOURCE,
        "entity": truncate(page.target, MAX_ENTITY),
        "tags": tags(page),
        "details": details(page),
    }
    if settings.responders:
        payload["responders"] = [dict(r) for r in settings.responders]
    return payload


def close_payload(summary: str) -> dict[str, Any]:
    return {"source": SOURCE, "note": truncate(summary, MAX_NOTE)}


def alert_path(dedup_key: str, action: str = "") -> str:
    path = "/v2/alerts/" + quote(alias(dedup_key), safe="")
    return f"{path}/{action}" if action else path


def is_acknowledged(alert: Any) -> bool:
    """Someone worked the alert: acknowledged it, or closed it by hand."""
    if not isinstance(alert, dict):
        return False
    return alert.get("acknowledged") is True or alert.get("status") == "closed"


# --- the pager -----------------------------------------------------------------------------

BY_ALIAS: Final = {"identifierType": "alias"}


class OpsgeniePager:
    name = "opsgenie"
    supports_resolve = True

    def __init__(
        self, settings: OpsgenieSettings, secret: str | None, timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        self.settings = settings
        self._api_key = secret or ""
        self._http = JsonHttp(
            self.name,
            str(settings.url),
            headers={"Authorization": f"GenieKey {self._api_key}"},
            timeout=timeout,
        )

    async def _request(
        self,
        method: str,
        path: str,
        json_body: Any = None,
        params: dict[str, str] | None = None,
    ) -> Any:
        if not self._api_key:
            raise PermanentError(f"{self.name}: no API key configured")
        try:
            _, body = await self._http.request(method, path, json_body=json_body, params=params)
        except DeliveryError as error:
            raise without_secret(error, self._api_key) from None
        return body

    async def page(self, page: Page) -> None:
        await self._request("POST", "/v2/alerts", create_payload(page, self.settings))

    async def resolve(self, dedup_key: str, summary: str) -> None:
        await self._request(
            "POST", alert_path(dedup_key, "close"), close_payload(summary), params=BY_ALIAS
        )

    async def acknowledged(self, dedup_key: str) -> bool | None:
        try:
            body = await self._request("GET", alert_path(dedup_key), params=BY_ALIAS)
        except PermanentError as error:
            # Alerts are created asynchronously: "Alert does not exist" (yet) is not an answer
            # about acknowledgement, and nobody can have acknowledged it.
            if error.message.startswith(f"{self.name}: HTTP 404:"):
                return False
            raise
        return is_acknowledged(body.get("data") if isinstance(body, dict) else None)

    async def aclose(self) -> None:
        await self._http.aclose()
