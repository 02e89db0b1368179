"""Any apprise URL: Slack, Teams, Telegram, SMS gateways... (https://github.com/caronc/apprise).

An apprise URL carries its tokens inside it, so the URLs themselves are the secret.
"""

from __future__ import annotations

from typing import ClassVar

from ticketing.settings import IntegrationSettings


class AppriseSettings(IntegrationSettings):
    SECRETS: ClassVar[tuple[str, ...]] = ("urls",)
    REQUIRED_SECRETS: ClassVar[tuple[str, ...]] = ("urls",)

    urls_env: str | None = None
    urls_file: str | None = None
