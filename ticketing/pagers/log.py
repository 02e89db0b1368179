"""A pager that writes the page to the agent's log: for trying policies out."""

from __future__ import annotations

from typing import Literal

from ticketing.settings import IntegrationSettings


class LogPagerSettings(IntegrationSettings):
    level: Literal["info", "warning", "error"] = "warning"
