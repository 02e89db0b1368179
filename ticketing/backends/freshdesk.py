"""Freshdesk API v2 (https://developers.freshdesk.com/api/)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, HttpUrl

from ticketing.settings import IntegrationSettings


class FreshdeskSettings(IntegrationSettings):
    SECRETS: ClassVar[tuple[str, ...]] = ("api_key",)
    REQUIRED_SECRETS: ClassVar[tuple[str, ...]] = ("api_key",)

    url: HttpUrl = Field(description="https://<domain>.freshdesk.com")
    api_key_env: str | None = None
    api_key_file: str | None = None
    requester_email: str = Field(pattern=r"^[^@\s]+@[^@\s]+$")
    group_id: int | None = None
    ticket_type: str | None = None
    customer_updates: Literal["reply", "note"] = "note"
