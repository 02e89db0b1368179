"""The built-in helpdesk: tickets kept in the agent's own SQLite store."""

from __future__ import annotations

from ticketing.settings import IntegrationSettings


class LocalSettings(IntegrationSettings):
    auto_close_after: str = "7d"
