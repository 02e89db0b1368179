"""Several agents on one PostgreSQL database (SCALEOUT.md): slots and leases with epoch
fencing (``member``), which slot a target is in (``slots``), what the agent asks about its
place (``ownership``), the database-outage page (``dblost``) and the cluster's metrics.

``join`` is where an agent with ``[cluster]`` becomes a member; without one it is ``Alone``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from monitor.config import Config
from monitor.metrics import Metrics
from monitor.store.factory import database_url
from ticketing.pagers.base import Pager

if TYPE_CHECKING:
    from monitor.cluster.member import ClusterMember


def join(
    config: Config, metrics: Metrics, pagers: Callable[[], Mapping[str, Pager]]
) -> ClusterMember | None:
    """This agent's membership of the cluster its config names (None: no ``[cluster]``);
    SecretError when the database URL cannot be read."""
    url = database_url(config)
    if url is None or config.cluster is None:
        return None
    from monitor.cluster.member import ClusterMember
    from monitor.cluster.metrics import ClusterMetrics

    def count_page(pager: str, result: str) -> None:
        metrics.pages.labels(pager, "database", result).inc()

    own = ClusterMetrics(metrics.registry, config.cluster.vantage)
    return ClusterMember(config, url, own, pagers, count_page)
