"""The store of a cluster: PostgreSQL, shared by every agent (see SCALEOUT.md).

``PostgresStore`` (``store``) is the agent's async ``Store``; ``PostgresReader`` (``reader``)
the synchronous view the commands read; ``migrate`` keeps the schema's versions and
``importer`` copies an agent's SQLite store in.
"""

from monitor.store.postgres.reader import PostgresReader
from monitor.store.postgres.store import PostgresStore

__all__ = ["PostgresReader", "PostgresStore"]
