"""The agent's memory (``sqlite.Store``): target state, incidents, the outbox, transitions."""

from monitor.store.records import Incident, OutboxAction, StoredTransition
from monitor.store.schema import SCHEMA_VERSION, StateRow
from monitor.store.sqlite import Store

__all__ = ["SCHEMA_VERSION", "Incident", "OutboxAction", "StateRow", "Store", "StoredTransition"]
