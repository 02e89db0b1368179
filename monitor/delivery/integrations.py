"""The helpdesk and the pagers of one config, built together from the registries and replaced
together on reload.

``Integrations.build`` reads every secret first and reports every one it cannot read at once
(``check-config`` shows the same list). The agent keeps the current set in an
``IntegrationsSlot`` that the outbox, the policy and the housekeeping jobs read at each use, so
a reload that changes a pager, the helpdesk or its settings takes effect for all of them at
the same moment, and nothing keeps a closed backend.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from monitor.config import Config
from monitor.config.secrets import read_secret
from monitor.errors import SecretError
from ticketing import BACKENDS, PAGERS, IntegrationContext
from ticketing.base import TicketBackend
from ticketing.pagers.base import Pager
from ticketing.settings import IntegrationSettings

log = logging.getLogger("watchdesk.integrations")


def _secret(settings: IntegrationSettings, name: str | None) -> str | None:
    if name is None:
        return None
    source = settings.secret_source(name)
    return read_secret(source) if source is not None else None


def secret_problems(config: Config) -> list[str]:
    """Every configured secret that cannot be read, as ``key.path: what is wrong``."""
    problems: list[str] = []
    backend = config.ticketing.backend
    try:
        _secret(config.backend_settings, BACKENDS[backend].secret)
    except SecretError as error:
        problems.append(f"ticketing.{backend}.{BACKENDS[backend].secret}: {error}")
    for name, settings in config.pagers.items():
        for secret in dict.fromkeys((PAGERS[config.pager_types[name]].secret, *settings.SECRETS)):
            try:
                _secret(settings, secret)
            except SecretError as error:
                problems.append(f"pagers.{name}.{secret}: {error}")
    return problems


def _context(config: Config, secret: str | None) -> IntegrationContext:
    return IntegrationContext(
        secret, config.ticketing.request_timeout, Path(config.agent.state_dir)
    )


def build_backend(config: Config) -> TicketBackend:
    """The helpdesk of ``[ticketing]``; raises SecretError when its secret cannot be read."""
    entry = BACKENDS[config.ticketing.backend]
    settings = config.backend_settings
    return entry.factory(settings, _context(config, _secret(settings, entry.secret)))


def build_pager(config: Config, name: str) -> Pager:
    """``[pagers.NAME]``; raises SecretError when its secret cannot be read."""
    entry = PAGERS[config.pager_types[name]]
    settings = config.pagers[name]
    return entry.factory(settings, _context(config, _secret(settings, entry.secret)))


def webhook_secrets(config: Config) -> list[str]:
    """The signing secrets of the pagers that send us webhooks (PagerDuty v3)."""
    secrets = []
    for settings in config.pagers.values():
        if "webhook_secret" in settings.SECRETS:
            secret = _secret(settings, "webhook_secret")
            if secret:
                secrets.append(secret)
    return secrets


@dataclass(frozen=True)
class Integrations:
    backend: TicketBackend
    pagers: Mapping[str, Pager]
    # How long the helpdesk's search may lag a create: ``ticketing.search_lag``, else the
    # backend's documented lag.
    search_lag: float
    # Signing secrets of incoming pager webhooks (PagerDuty v3 acks).
    webhook_secrets: tuple[str, ...] = ()

    @classmethod
    def build(cls, config: Config) -> Integrations:
        """Raises SecretError listing every secret that cannot be read."""
        problems = secret_problems(config)
        if problems:
            raise SecretError("; ".join(problems))
        pagers = {name: build_pager(config, name) for name in config.pagers}
        lag = config.ticketing.search_lag
        search_lag = BACKENDS[config.ticketing.backend].search_lag if lag is None else lag
        return cls(build_backend(config), pagers, search_lag, tuple(webhook_secrets(config)))

    async def aclose(self) -> None:
        await self.backend.aclose()
        for pager in self.pagers.values():
            await pager.aclose()


def integrations_changed(old: Config, new: Config) -> bool:
    """Whether ``new`` needs other integrations than ``old`` (any ticketing or pager setting)."""
    return (old.ticketing, old.backend_settings, old.pagers, old.pager_types) != (
        new.ticketing,
        new.backend_settings,
        new.pagers,
        new.pager_types,
    )


class IntegrationsSlot:
    """The integrations in force. Readers take ``current`` at each use; ``replace`` swaps the
    whole set at once and closes the old one after ``grace`` (calls still running on it end)."""

    def __init__(self, current: Integrations) -> None:
        self.current = current
        self._closing: set[asyncio.Task[None]] = set()

    def replace(self, new: Integrations, grace: float) -> None:
        old, self.current = self.current, new
        task = asyncio.get_running_loop().create_task(_close_later(old, grace))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def aclose(self) -> None:
        """Close everything now, the replaced sets still waiting out their grace included."""
        for task in list(self._closing):
            task.cancel()
        await asyncio.gather(*self._closing, return_exceptions=True)
        await self.current.aclose()


async def _close_later(old: Integrations, grace: float) -> None:
    try:
        await asyncio.sleep(grace)
    finally:
        try:
            await old.aclose()
        except Exception:
            log.exception("closing replaced integrations failed")
