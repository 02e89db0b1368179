"""The agent's memory: target state, incidents, the outbox, transitions.

``Store`` is the interface the agent awaits (``base``); ``SqliteStore`` (``aio``) implements it
over ``SqliteDatabase`` (``sqlite``), which the command-line commands use synchronously.
"""

from monitor.store.aio import SqliteStore
from monitor.store.base import BuildActions, Store
from monitor.store.records import (
    CustomerNotice,
    Incident,
    OutboxAction,
    StoredTransition,
    StormMember,
)
from monitor.store.reports import SentReport
from monitor.store.schema import SCHEMA_VERSION, StateRow
from monitor.store.sqlite import SqliteDatabase

__all__ = [
    "SCHEMA_VERSION",
    "BuildActions",
    "CustomerNotice",
    "Incident",
    "OutboxAction",
    "SentReport",
    "SqliteDatabase",
    "SqliteStore",
    "StateRow",
    "Store",
    "StoredTransition",
    "StormMember",
]
