"""What ``watchdesk cluster`` reads: the agents of the cluster, the slots of each vantage and
the coordinator lease, as the database has them now (its own ``now()``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

AGENTS = (
    "SELECT a.agent_id, a.vantage, a.host, a.pid, a.listen, a.version,"
    " EXTRACT(EPOCH FROM a.started_at)::double precision,"
    " EXTRACT(EPOCH FROM now() - a.heartbeat_at)::double precision,"
    " COUNT(l.slot),"
    " EXTRACT(EPOCH FROM MIN(l.expires_at) - now())::double precision,"
    " EXTRACT(EPOCH FROM MAX(l.expires_at) - now())::double precision"
    " FROM agents a LEFT JOIN shard_lease l ON l.owner = a.agent_id AND l.vantage = a.vantage"
    " AND l.expires_at > now()"
    " GROUP BY a.agent_id ORDER BY a.vantage, a.started_at, a.agent_id"
)
VANTAGES = (
    "SELECT vantage, COUNT(*),"
    " COUNT(*) FILTER (WHERE owner IS NOT NULL AND expires_at > now()),"
    " COUNT(*) FILTER (WHERE owner IS NULL),"
    " COUNT(*) FILTER (WHERE owner IS NOT NULL AND expires_at <= now())"
    " FROM shard_lease GROUP BY vantage ORDER BY vantage"
)
COORDINATOR = (
    "SELECT owner, epoch, EXTRACT(EPOCH FROM expires_at - now())::double precision"
    " FROM coordinator_lease WHERE id = 1 AND owner IS NOT NULL"
)


@dataclass(frozen=True)
class AgentRow:
    agent: str
    vantage: str
    host: str
    pid: int
    listen: str
    version: str
    started_at: float
    heartbeat_age: float  # seconds since its last renew
    slots: int  # live leases it holds
    # Seconds until its earliest and latest leases expire (None: it holds none).
    expires_first: float | None
    expires_last: float | None


@dataclass(frozen=True)
class VantageRow:
    vantage: str
    slots: int
    held: int
    free: int
    expired: int  # held by an agent whose lease ran out: taken at the next renew of another


@dataclass(frozen=True)
class ClusterView:
    agents: list[AgentRow]
    vantages: list[VantageRow]
    coordinator: str | None
    coordinator_epoch: int | None
    coordinator_expires_in: float | None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def cluster_view(rows: Any) -> ClusterView:
    """The view from a function that runs one query and returns its rows."""
    agents = [AgentRow(*row) for row in rows(AGENTS)]
    vantages = [VantageRow(*row) for row in rows(VANTAGES)]
    found = rows(COORDINATOR)
    owner, epoch, expires = found[0] if found else (None, None, None)
    return ClusterView(agents, vantages, owner, epoch, expires)
