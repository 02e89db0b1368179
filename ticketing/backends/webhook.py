"""Tickets as JSON POSTs of each lifecycle event to a URL of yours, optionally HMAC-signed."""

from __future__ import annotations

from typing import ClassVar

from pydantic import HttpUrl

from ticketing.settings import IntegrationSettings


class WebhookBackendSettings(IntegrationSettings):
    SECRETS: ClassVar[tuple[str, ...]] = ("secret",)

    url: HttpUrl
    secret_env: str | None = None
    secret_file: str | None = None
    headers: dict[str, str] = {}
