"""Jira Cloud REST API v3 (https://developer.atlassian.com/cloud/jira/platform/rest/v3/)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import HttpUrl

from ticketing.settings import IntegrationSettings


class JiraSettings(IntegrationSettings):
    SECRETS: ClassVar[tuple[str, ...]] = ("api_token",)
    REQUIRED_SECRETS: ClassVar[tuple[str, ...]] = ("api_token",)

    url: HttpUrl
    email: str
    api_token_env: str | None = None
    api_token_file: str | None = None
    project_key: str
    issue_type: str = "Task"
    resolve_transition: str = "Done"
    pending_transition: str | None = None
    labels: list[str] = []
