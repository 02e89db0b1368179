"""Every Prometheus metric of the agent, in a registry of its own, fed from probe results.

Probes never touch prometheus-client; this is the one place results become metrics. The
per-target series are not prometheus-client children but pre-rendered lines (``targets``,
see ``monitor.target_series``): a scrape at 50,000 targets joins them instead of walking
400,000 children.
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.exposition import generate_latest

from checks import ProbeResult
from monitor.config import TargetConfig
from monitor.target_series import TargetSeries
from ticketing.base import PRIORITIES

# The *_created series double the size of /metrics at 10,000 targets and nobody graphs them.
disable_created_metrics()  # type: ignore[no-untyped-call]

LATENESS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# Response and resolution times: a minute to two days.
TIMELINESS_BUCKETS = (60, 300, 900, 1800, 3600, 7200, 14400, 28800, 86400, 172800)


class Metrics:
    def __init__(self, version: str) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.incidents_opened = Counter(
            "watchdesk_incidents_opened", "Incidents opened", ["target", "priority"], registry=r
        )
        self.incidents_open = Gauge(
            "watchdesk_incidents_open", "Incidents open now", ["priority"], registry=r
        )
        self.pages = Counter(
            "watchdesk_pages", "Pages sent", ["pager", "reason", "result"], registry=r
        )
        self.ticket_operations = Counter(
            "watchdesk_ticket_operations",
            "Ticket backend calls",
            ["backend", "operation", "result"],
            registry=r,
        )
        self.outbox_pending = Gauge(
            "watchdesk_outbox_pending",
            "Ticket and page actions not yet delivered (held pages not counted)",
            registry=r,
        )
        self.outbox_held = Gauge(
            "watchdesk_outbox_held",
            "Pages held until business hours begin: waiting by design, not backlog",
            registry=r,
        )
        self.schedule_lateness = Histogram(
            "watchdesk_schedule_lateness_seconds",
            "How late probes start against their schedule",
            buckets=LATENESS_BUCKETS,
            registry=r,
        )
        self.build_info = Gauge("watchdesk_build_info", "Always 1", ["version"], registry=r)
        self.config_reload_success = Gauge(
            "watchdesk_config_last_reload_successful",
            "1 if the last config (re)load was applied, 0 if it was refused",
            registry=r,
        )
        self.config_reload_timestamp = Gauge(
            "watchdesk_config_last_reload_success_timestamp_seconds",
            "When a config was last applied",
            registry=r,
        )
        self.targets_configured = Gauge("watchdesk_targets", "Targets configured", registry=r)
        self.incidents_resolved = Counter(
            "watchdesk_incidents_resolved",
            "Incidents resolved (closure rate)",
            ["priority", "customer", "tier"],
            registry=r,
        )
        self.incident_ack_seconds = Histogram(
            "watchdesk_incident_ack_seconds",
            "From an incident opening to someone working it",
            ["priority", "customer", "tier"],
            buckets=TIMELINESS_BUCKETS,
            registry=r,
        )
        self.incident_resolve_seconds = Histogram(
            "watchdesk_incident_resolve_seconds",
            "From an incident opening to its resolution",
            ["priority", "customer", "tier"],
            buckets=TIMELINESS_BUCKETS,
            registry=r,
        )
        self.sla_breaches = Counter(
            "watchdesk_sla_breaches",
            "Incidents that missed their SLA response or resolution target",
            ["kind", "priority", "customer"],
            registry=r,
        )
        self.escalations = Counter(
            "watchdesk_escalations",
            "Escalation levels reached, per tier (L2, L3, ...) and priority",
            ["tier", "priority"],
            registry=r,
        )
        self.sla_breaching = Gauge(
            "watchdesk_sla_breaching",
            "Open incidents and reopened tickets past their response (not worked yet) or "
            "resolution target now",
            ["kind"],
            registry=r,
        )
        self.reports_sent = Counter(
            "watchdesk_reports_sent",
            "Scheduled reports mailed, per report; result = success or failure (an attempt)",
            ["report", "result"],
            registry=r,
        )
        self.tickets_reopened = Counter(
            "watchdesk_tickets_reopened",
            "Tickets opened again by a customer's reply (or in the helpdesk) after recovery",
            ["priority", "customer"],
            registry=r,
        )
        self.tickets_auto_closed = Counter(
            "watchdesk_tickets_auto_closed",
            "Tickets closed by watchdesk after auto_close_after without a customer's reply",
            ["priority", "customer"],
            registry=r,
        )
        self.agent_impaired = Gauge(
            "watchdesk_agent_impaired",
            "1 while every canary is down: this agent's verdicts open no incident",
            registry=r,
        )
        self.targets_waiting = Gauge(
            "watchdesk_targets_waiting",
            "Down targets whose incident waits: for storm.group_wait or the canaries' verdict",
            registry=r,
        )
        self.build_info.labels(version).set(1)
        for priority in PRIORITIES:
            self.incidents_open.labels(priority).set(0)
        # Every per-target series, pre-rendered (see ``monitor.target_series``).
        self.targets = TargetSeries()

    def add_target(self, target: TargetConfig) -> None:
        """The series of a configured target (kept as they are if it is already here with the
        same kind and customer: a reload does not reset its counters)."""
        self.targets.add(target.name, target.kind, target.customer or "")
        self.targets_configured.set(len(self.targets))

    def remove_target(self, name: str) -> None:
        self.targets.remove(name)
        self.targets_configured.set(len(self.targets))

    def record(self, target: str, result: ProbeResult, consecutive_failures: int) -> None:
        self.targets.record(
            target, result.ok, result.duration_seconds, consecutive_failures, result.tls_expiry
        )

    def set_up(self, target: str, status: str) -> None:
        """Follow the target's state; while unknown the series is absent, not a fake 0 or 1."""
        self.targets.up(target, status)

    def set_consecutive_failures(self, target: str, count: int) -> None:
        self.targets.consecutive_failures(target, count)

    def skipped(self, target: str) -> None:
        """A scheduled probe of ``target`` not started: the previous one still ran."""
        self.targets.skipped(target)

    def exposition(self, targets: str | None = None) -> bytes:
        """The text format: the registry's metrics (few series, rendered by prometheus-client,
        safe in a worker thread), then the per-target lines ``targets`` (``self.targets.text()``
        taken on the event loop, where they change; taken here when not given)."""
        text = self.targets.text() if targets is None else targets
        return generate_latest(self.registry) + text.encode()
