"""Ticket backends and pagers; knows nothing of probes or the scheduler.

``BACKEND_SETTINGS`` and ``PAGER_SETTINGS`` are the registries config validation reads: a new
integration is one module and one line here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ticketing.backends.freshdesk import FreshdeskBackend, FreshdeskSettings
from ticketing.backends.github import GitHubBackend, GitHubSettings
from ticketing.backends.jira import JiraBackend, JiraSettings
from ticketing.backends.local import LocalSettings
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

# Called as factory(settings, secret); secret is None only for backends that take none.
BackendFactory = Callable[..., TicketBackend]


@dataclass(frozen=True)
class BackendKind:
    """One registry line: settings model, constructor, the secret it takes, and how long its
    search may lag behind a create (reconciliation waits that long before creating again)."""

    settings: type[IntegrationSettings]
    factory: BackendFactory
    secret: str | None = None
    search_lag: float = 0.0


BACKEND_SETTINGS: dict[str, type[IntegrationSettings]] = {
    "local": LocalSettings,
    "freshdesk": FreshdeskSettings,
    "jira": JiraSettings,
    "zendesk": ZendeskSettings,
    "servicenow": ServiceNowSettings,
    "github": GitHubSettings,
    "webhook": WebhookBackendSettings,
}

PAGER_SETTINGS: dict[str, type[IntegrationSettings]] = {
    "pagerduty": PagerDutySettings,
    "opsgenie": OpsgenieSettings,
    "email": EmailSettings,
    "webhook": WebhookPagerSettings,
    "apprise": AppriseSettings,
    "log": LogPagerSettings,
}


@dataclass(frozen=True)
class PagerKind:
    """One registry line: settings model, constructor (settings, secret), the secret it takes."""

    settings: type[IntegrationSettings]
    factory: Callable[..., Pager]
    secret: str | None = None


PAGERS: dict[str, PagerKind] = {
    "pagerduty": PagerKind(PagerDutySettings, PagerDutyPager, "routing_key"),
    "opsgenie": PagerKind(OpsgenieSettings, OpsgeniePager, "api_key"),
    "email": PagerKind(EmailSettings, EmailPager, "password"),
    "webhook": PagerKind(WebhookPagerSettings, WebhookPager, "secret"),
    "apprise": PagerKind(AppriseSettings, ApprisePager, "urls"),
    "log": PagerKind(LogPagerSettings, LogPager, None),
}

# Backends that talk to an outside helpdesk; "local" is built by the agent on its own store.
BACKENDS: dict[str, BackendKind] = {
    # Freshdesk's search index lags behind a create by minutes.
    "freshdesk": BackendKind(FreshdeskSettings, FreshdeskBackend, "api_key", search_lag=180.0),
    "zendesk": BackendKind(ZendeskSettings, ZendeskBackend, "api_token"),
    "servicenow": BackendKind(ServiceNowSettings, ServiceNowBackend, "password"),
    # Jira documents that new issues may take a moment to show in search.
    "jira": BackendKind(JiraSettings, JiraBackend, "api_token", search_lag=30.0),
    "github": BackendKind(GitHubSettings, GitHubBackend, "token"),
    "webhook": BackendKind(WebhookBackendSettings, WebhookBackend, "secret"),
}

__all__ = [
    "BACKENDS",
    "BACKEND_SETTINGS",
    "PAGERS",
    "PAGER_SETTINGS",
    "BackendKind",
    "IntegrationSettings",
    "PagerKind",
]
