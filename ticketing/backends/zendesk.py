"""Zendesk Support API (https://developer.zendesk.com/api-reference/ticketing/tickets/tickets/)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import HttpUrl

from ticketing.settings import IntegrationSettings


class ZendeskSettings(IntegrationSettings):
    SECRETS: ClassVar[tuple[str, ...]] = ("api_token",)
    REQUIRED_SECRETS: ClassVar[tuple[str, ...]] = ("api_token",)

    url: HttpUrl
    email: str
    api_token_env: str | None = None
    api_token_file: str | None = None
    requester_email: str
    group_id: int | None = None
