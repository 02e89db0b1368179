"""The cluster's own metrics, registered only by an agent with ``[cluster]``: how many slots it
holds, how long its renews take, how many agents its vantage has, and the writes and sends
refused by fencing."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

RENEW_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
# Why a write or send was refused: "expired" (the agent's own clock no longer vouches for
# the lease), "lost" (the database says the lease is another's), "claim" (an outbox claim
# ran out or was taken over before the send).
FENCE_REASONS = ("expired", "lost", "claim")


class ClusterMetrics:
    def __init__(self, registry: CollectorRegistry, vantage: str) -> None:
        r = registry
        self.slots_owned = Gauge(
            "watchdesk_cluster_slots_owned",
            "Slots of its vantage this agent holds the lease of (probes the targets of)",
            ["vantage"],
            registry=r,
        ).labels(vantage)
        self.agents = Gauge(
            "watchdesk_cluster_agents",
            "Live agents of this agent's vantage, as its last renew counted them",
            ["vantage"],
            registry=r,
        ).labels(vantage)
        self.renew_seconds = Histogram(
            "watchdesk_cluster_lease_renew_seconds",
            "Duration of a lease renew (one transaction: heartbeat, renew, take)",
            buckets=RENEW_BUCKETS,
            registry=r,
        )
        fenced = Counter(
            "watchdesk_fenced_writes",
            "Writes and sends refused because a lease or claim they need is not this agent's",
            ["reason"],
            registry=r,
        )
        self.fenced = {reason: fenced.labels(reason) for reason in FENCE_REASONS}
        self.coordinator = Gauge(
            "watchdesk_cluster_coordinator",
            "1 while this agent holds the coordinator lease (runs the policy sweep, reports)",
            registry=r,
        )
        self.live = Gauge(
            "watchdesk_cluster_live",
            "1 while this agent's own clock vouches for its leases (it may write and send)",
            registry=r,
        )
