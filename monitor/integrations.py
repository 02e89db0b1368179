"""Build the configured ticket backend from its settings and its secret."""

from __future__ import annotations

from pathlib import Path

from monitor.config import Config
from monitor.secrets import read_secret
from ticketing import BACKENDS
from ticketing.backends.local import LocalBackend
from ticketing.base import TicketBackend


def build_backend(config: Config, db_path: Path) -> TicketBackend:
    """The backend of ``[ticketing]``; raises SecretError when its secret cannot be read."""
    name = config.ticketing.backend
    if name == "local":
        return LocalBackend(db_path, auto_close_after=config.local_auto_close_after)
    kind = BACKENDS[name]
    settings = config.backend_settings
    secret = None
    if kind.secret is not None:
        source = settings.secret_source(kind.secret)
        secret = read_secret(source) if source is not None else None
    return kind.factory(settings, secret, timeout=config.ticketing.request_timeout)


def reconcile_after(config: Config) -> float:
    """How long the backend's search may lag a create (see Outbox.reconcile_after)."""
    name = config.ticketing.backend
    return 0.0 if name == "local" else BACKENDS[name].search_lag
