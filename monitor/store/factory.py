"""Which store a config asks for: the SQLite file under ``agent.state_dir``, or with a
``[cluster]`` section the shared PostgreSQL database. The agent builds its ``Store`` here and
the commands their synchronous reader, so both always read the same place."""

from __future__ import annotations

from typing import Protocol

from monitor.config import Config
from monitor.config.secrets import read_database_url
from monitor.errors import SecretError
from monitor.store.aio import SqliteStore
from monitor.store.base import Store
from monitor.store.fence import Fencing
from monitor.store.records import (
    CustomerNotice,
    Incident,
    OutboxAction,
    StoredTransition,
    StormMember,
)
from monitor.store.sqlite import SqliteDatabase


class StoreReader(Protocol):
    """What the commands read (``tickets``, ``report``), from either store, and the one thing
    they write: ``report --send``'s claim of a period's send, in the ledger the agents'
    scheduled sends use (``monitor.reporting.sender``), so that a period goes out once."""

    def incidents(self, open_only: bool = False, limit: int | None = None) -> list[Incident]: ...

    def incident(self, incident_id: int) -> Incident | None: ...

    def watched_incidents(self) -> list[Incident]: ...

    def actions_of(self, incident_id: int) -> list[OutboxAction]: ...

    def notices(
        self, incident_id: int | None = None, open_only: bool = False
    ) -> list[CustomerNotice]: ...

    def storm_members(self, incident_id: int | None = None) -> list[StormMember]: ...

    def targets_seen(self) -> dict[str, tuple[float, float]]: ...

    def transitions(
        self, target: str | None = None, since: float = 0.0
    ) -> list[StoredTransition]: ...

    def claim_report(
        self, report: str, period: tuple[float, float], scheduled_at: float, now: float
    ) -> bool: ...

    def finish_report(
        self, report: str, period: tuple[float, float], sent_at: float, recipients: list[str]
    ) -> None: ...

    def release_report(self, report: str, period: tuple[float, float]) -> None: ...

    def close(self) -> None: ...


def store_key(config: Config) -> str:
    """The config key a store problem is about, for ``key: message`` lines."""
    return "cluster" if config.cluster is not None else "agent.state_dir"


def database_url(config: Config) -> str | None:
    """The URL of ``[cluster]``'s database (None without one); SecretError naming the key."""
    try:
        return read_database_url(config)
    except SecretError as error:
        raise SecretError(f"cluster.database_url: {error}") from None


def make_store(config: Config, fencing: Fencing | None = None) -> Store:
    """The agent's store (SecretError when the database URL cannot be read); in a cluster its
    writes are fenced by ``fencing`` (the agent's membership)."""
    url = database_url(config)
    if url is None or config.cluster is None:
        return SqliteStore(config.agent.state_dir)
    from monitor.store.postgres import PostgresStore

    store = PostgresStore(url, config.cluster.vantage, fencing)
    store.live_for = config.cluster.lease_ttl  # a vantage is live while its agents heartbeat
    return store


def open_reader(config: Config) -> StoreReader:
    """The store an agent with this config keeps, read synchronously; StoreError (creating
    nothing) when there is none, SecretError when the database URL cannot be read."""
    url = database_url(config)
    if url is None or config.cluster is None:
        return SqliteDatabase.existing(config.agent.state_dir)
    from monitor.store.postgres import PostgresReader

    return PostgresReader(url, config.cluster.vantage)
