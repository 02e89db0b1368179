"""Ticket backends and pagers; knows nothing of probes or the scheduler.

``BACKEND_SETTINGS`` and ``PAGER_SETTINGS`` are the registries config validation reads: a new
integration is one module and one line here.
"""

from __future__ import annotations

from ticketing.backends.freshdesk import FreshdeskSettings
from ticketing.backends.github import GitHubSettings
from ticketing.backends.jira import JiraSettings
from ticketing.backends.local import LocalSettings
from ticketing.backends.servicenow import ServiceNowSettings
from ticketing.backends.webhook import WebhookBackendSettings
from ticketing.backends.zendesk import ZendeskSettings
from ticketing.pagers.apprise import AppriseSettings
from ticketing.pagers.email import EmailSettings
from ticketing.pagers.log import LogPagerSettings
from ticketing.pagers.opsgenie import OpsgenieSettings
from ticketing.pagers.pagerduty import PagerDutySettings
from ticketing.pagers.webhook import WebhookPagerSettings
from ticketing.settings import IntegrationSettings

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

__all__ = ["BACKEND_SETTINGS", "PAGER_SETTINGS", "IntegrationSettings"]
