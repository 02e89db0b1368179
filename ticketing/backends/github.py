"""GitHub issues (https://docs.github.com/en/rest/issues)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, HttpUrl

from ticketing.settings import IntegrationSettings


class GitHubSettings(IntegrationSettings):
    SECRETS: ClassVar[tuple[str, ...]] = ("token",)
    REQUIRED_SECRETS: ClassVar[tuple[str, ...]] = ("token",)

    url: HttpUrl = HttpUrl("https://api.github.com")
    repository: str = Field(pattern=r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
    token_env: str | None = None
    token_file: str | None = None
    labels: list[str] = ["incident"]
