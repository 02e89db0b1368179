"""Build the configured ticket backend and pagers from their settings and secrets."""

from __future__ import annotations

from pathlib import Path

from monitor.config import Config
from monitor.config.secrets import read_secret
from monitor.errors import SecretError
from ticketing import BACKENDS, PAGERS
from ticketing.backends.local import LocalBackend
from ticketing.base import TicketBackend
from ticketing.pagers.base import Pager
from ticketing.settings import IntegrationSettings


def build_backend(config: Config, db_path: Path) -> TicketBackend:
    """The backend of ``[ticketing]``; raises SecretError when its secret cannot be read."""
    name = config.ticketing.backend
    if name == "local":
        return LocalBackend(db_path, auto_close_after=config.local_auto_close_after)
    kind = BACKENDS[name]
    secret = _secret(config.backend_settings, kind.secret)
    return kind.factory(config.backend_settings, secret, timeout=config.ticketing.request_timeout)


def build_pagers(config: Config) -> dict[str, Pager]:
    """Every ``[pagers.NAME]``; raises SecretError (naming the pager) when a secret is missing."""
    pagers: dict[str, Pager] = {}
    for name, settings in config.pagers.items():
        kind = PAGERS[config.pager_types[name]]
        try:
            secret = _secret(settings, kind.secret)
        except SecretError as error:
            raise SecretError(f"pagers.{name}: {error}") from None
        pagers[name] = kind.factory(settings, secret, timeout=config.ticketing.request_timeout)
    return pagers


def _secret(settings: IntegrationSettings, name: str | None) -> str | None:
    if name is None:
        return None
    source = settings.secret_source(name)
    return read_secret(source) if source is not None else None


def reconcile_after(config: Config) -> float:
    """How long the backend's search may lag a create (see Outbox.reconcile_after):
    ``ticketing.search_lag`` when set, else the backend's documented lag."""
    if config.ticketing.search_lag is not None:
        return config.ticketing.search_lag
    name = config.ticketing.backend
    return 0.0 if name == "local" else BACKENDS[name].search_lag
