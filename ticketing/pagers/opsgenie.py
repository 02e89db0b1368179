"""Opsgenie Alert API (https://docs.opsgenie.com/docs/alert-api)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import HttpUrl

from ticketing.settings import IntegrationSettings


class OpsgenieSettings(IntegrationSettings):
    SECRETS: ClassVar[tuple[str, ...]] = ("api_key",)
    REQUIRED_SECRETS: ClassVar[tuple[str, ...]] = ("api_key",)

    api_key_env: str | None = None
    api_key_file: str | None = None
    url: HttpUrl = HttpUrl("https://api.opsgenie.com")
    responders: list[dict[str, str]] = []
