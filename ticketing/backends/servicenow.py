"""ServiceNow Table API, incident table (https://developer.servicenow.com/)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import HttpUrl

from ticketing.settings import IntegrationSettings


class ServiceNowSettings(IntegrationSettings):
    SECRETS: ClassVar[tuple[str, ...]] = ("password",)
    REQUIRED_SECRETS: ClassVar[tuple[str, ...]] = ("password",)

    url: HttpUrl
    username: str
    password_env: str | None = None
    password_file: str | None = None
    caller_id: str | None = None
    assignment_group: str | None = None
