"""PagerDuty Events API v2 (https://developer.pagerduty.com/docs/events-api-v2/overview/)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import HttpUrl

from ticketing.settings import IntegrationSettings


class PagerDutySettings(IntegrationSettings):
    SECRETS: ClassVar[tuple[str, ...]] = ("routing_key",)
    REQUIRED_SECRETS: ClassVar[tuple[str, ...]] = ("routing_key",)

    routing_key_env: str | None = None
    routing_key_file: str | None = None
    url: HttpUrl = HttpUrl("https://events.pagerduty.com/v2/enqueue")
