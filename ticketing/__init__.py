"""Ticket backends and pagers; knows nothing of probes or the scheduler.

``BACKENDS`` and ``PAGERS`` are the registries: one entry per integration, carrying its settings
model, the secret it takes and a ``factory(settings, context)``. Config validation reads the
same entries (``BACKEND_SETTINGS`` and ``PAGER_SETTINGS`` are derived from them), so a new
helpdesk or pager is one module and one line here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ticketing.backends.freshdesk import FreshdeskBackend, FreshdeskSettings
from ticketing.backends.github import GitHubBackend, GitHubSettings
from ticketing.backends.jira import JiraBackend, JiraSettings
from ticketing.backends.local import LocalBackend, LocalSettings
from ticketing.backends.servicenow import ServiceNowBackend, ServiceNowSettings
from ticketing.backends.webhook import WebhookBackend, WebhookBackendSettings
from ticketing.backends.zendesk import ZendeskBackend, ZendeskSettings
from ticketing.base import TicketBackend
from ticketing.pagers.apprise import ApprisePager, AppriseSettings
from ticketing.pagers.base import Pager
from ticketing.pagers.email import EmailPager, EmailSettings
from ticketing.pagers.log import LogPager, LogPagerSettings
from ticketing.pagers.opsgenie import OpsgeniePager, OpsgenieSettings
from ticketing.pagers.pagerduty import PagerDutyPager, PagerDutySettings
from ticketing.pagers.webhook import WebhookPager, WebhookPagerSettings
from ticketing.settings import IntegrationSettings


@dataclass(frozen=True)
class IntegrationContext:
    """What a factory may need besides its settings: the secret the agent read for it (None
    when the entry takes none or it is optional and unset), the time limit of one call, and
    the agent's state directory (for an integration that keeps data of its own)."""

    secret: str | None
    timeout: float
    state_dir: Path


@dataclass(frozen=True)
class BackendEntry:
    """One helpdesk: settings model, factory, the secret it takes, and how long its search may
    lag behind a create (after a lost answer, "not found" is trusted only after that)."""

    settings: type[IntegrationSettings]
    factory: Callable[[Any, IntegrationContext], TicketBackend]
    secret: str | None = None
    search_lag: float = 0.0


@dataclass(frozen=True)
class PagerEntry:
    """One pager kind: settings model, factory, the secret it takes."""

    settings: type[IntegrationSettings]
    factory: Callable[[Any, IntegrationContext], Pager]
    secret: str | None = None


def _remote(kind: Callable[..., Any]) -> Callable[[Any, IntegrationContext], Any]:
    """The factory of an integration built as ``kind(settings, secret, timeout=...)``."""

    def build(settings: Any, context: IntegrationContext) -> Any:
        return kind(settings, context.secret, timeout=context.timeout)

    return build


def _local(settings: LocalSettings, context: IntegrationContext) -> TicketBackend:
    return LocalBackend(context.state_dir / "watchdesk.sqlite3")


BACKENDS: dict[str, BackendEntry] = {
    "local": BackendEntry(LocalSettings, _local),
    # Freshdesk's search index lags behind a create by minutes.
    "freshdesk": BackendEntry(FreshdeskSettings, _remote(FreshdeskBackend), "api_key", 180.0),
    # Jira documents that new issues may take a moment to show in search.
    "jira": BackendEntry(JiraSettings, _remote(JiraBackend), "api_token", 30.0),
    "zendesk": BackendEntry(ZendeskSettings, _remote(ZendeskBackend), "api_token"),
    "servicenow": BackendEntry(ServiceNowSettings, _remote(ServiceNowBackend), "password"),
    "github": BackendEntry(GitHubSettings, _remote(GitHubBackend), "token"),
    "webhook": BackendEntry(WebhookBackendSettings, _remote(WebhookBackend), "secret"),
}

PAGERS: dict[str, PagerEntry] = {
    "pagerduty": PagerEntry(PagerDutySettings, _remote(PagerDutyPager), "routing_key"),
    "opsgenie": PagerEntry(OpsgenieSettings, _remote(OpsgeniePager), "api_key"),
    "email": PagerEntry(EmailSettings, _remote(EmailPager), "password"),
    "webhook": PagerEntry(WebhookPagerSettings, _remote(WebhookPager), "secret"),
    "apprise": PagerEntry(AppriseSettings, _remote(ApprisePager), "urls"),
    "log": PagerEntry(LogPagerSettings, _remote(LogPager)),
}

BACKEND_SETTINGS: dict[str, type[IntegrationSettings]] = {
    name: entry.settings for name, entry in BACKENDS.items()
}
PAGER_SETTINGS: dict[str, type[IntegrationSettings]] = {
    name: entry.settings for name, entry in PAGERS.items()
}

__all__ = [
    "BACKENDS",
    "BACKEND_SETTINGS",
    "PAGERS",
    "PAGER_SETTINGS",
    "BackendEntry",
    "IntegrationContext",
    "IntegrationSettings",
    "PagerEntry",
]
