"""Every Prometheus metric of the agent, in a registry of its own, fed from probe results.

Probes never touch prometheus-client; this is the one place results become metrics. Labelled
children are looked up once per target and reused (``.labels()`` on every probe costs 4x).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

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
from ticketing.base import PRIORITIES

# The *_created series double the size of /metrics at 10,000 targets and nobody graphs them.
disable_created_metrics()  # type: ignore[no-untyped-call]

LATENESS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# Response and resolution times: a minute to two days.
TIMELINESS_BUCKETS = (60, 300, 900, 1800, 3600, 7200, 14400, 28800, 86400, 172800)


@dataclass
class _TargetChildren:
    success: Gauge
    duration: Gauge
    probes_ok: Counter
    probes_failed: Counter
    consecutive_failures: Gauge
    # Made at the first probe that reads a certificate (tls targets, https ones), then reused.
    tls_expiry: Gauge | None = None


class Metrics:
    def __init__(self, version: str) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.probe_success = Gauge(
            "watchdesk_probe_success",
            "1 if the last probe succeeded",
            ["target", "kind"],
            registry=r,
        )
        self.probe_duration = Gauge(
            "watchdesk_probe_duration_seconds",
            "Duration of the last probe",
            ["target", "kind"],
            registry=r,
        )
        self.probes = Counter(
            "watchdesk_probes", "Probes run", ["target", "kind", "result"], registry=r
        )
        self.consecutive_failures = Gauge(
            "watchdesk_consecutive_failures",
            "Consecutive failed probes: the counter that opens incidents",
            ["target"],
            registry=r,
        )
        self.target_up = Gauge(
            "watchdesk_target_up",
            "1 up, 0 down (after thresholds); absent while unknown",
            ["target"],
            registry=r,
        )
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
        self.tls_expiry = Gauge(
            "watchdesk_tls_cert_expiry_timestamp_seconds",
            "Earliest certificate expiry seen by the last probe",
            ["target"],
            registry=r,
        )
        self.schedule_lateness = Histogram(
            "watchdesk_schedule_lateness_seconds",
            "How late probes start against their schedule",
            buckets=LATENESS_BUCKETS,
            registry=r,
        )
        self.probes_skipped = Counter(
            "watchdesk_probes_skipped",
            "Scheduled probes not started because the previous one of that target still ran",
            ["target"],
            registry=r,
        )
        self.target_info = Gauge(
            "watchdesk_target_info",
            "Always 1; join on target to group by customer",
            ["target", "kind", "customer"],
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
            ["priority", "customer"],
            registry=r,
        )
        self.incident_ack_seconds = Histogram(
            "watchdesk_incident_ack_seconds",
            "From an incident opening to someone working it",
            ["priority", "customer"],
            buckets=TIMELINESS_BUCKETS,
            registry=r,
        )
        self.incident_resolve_seconds = Histogram(
            "watchdesk_incident_resolve_seconds",
            "From an incident opening to its resolution",
            ["priority", "customer"],
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
            "Open incidents past their response (not worked yet) or resolution target now",
            ["kind"],
            registry=r,
        )
        self.build_info.labels(version).set(1)
        for priority in PRIORITIES:
            self.incidents_open.labels(priority).set(0)
        self._children: dict[str, _TargetChildren] = {}
        self._info_labels: dict[str, tuple[str, str, str]] = {}

    def add_target(self, target: TargetConfig) -> None:
        """Create (or re-create after a change) the labelled children of a target."""
        self.remove_target(target.name)
        name, kind = target.name, target.kind
        self._children[name] = _TargetChildren(
            success=self.probe_success.labels(name, kind),
            duration=self.probe_duration.labels(name, kind),
            probes_ok=self.probes.labels(name, kind, "success"),
            probes_failed=self.probes.labels(name, kind, "failure"),
            consecutive_failures=self.consecutive_failures.labels(name),
        )
        info = (name, kind, target.customer or "")
        self.target_info.labels(*info).set(1)
        self._info_labels[name] = info
        self.targets_configured.set(len(self._children))

    def remove_target(self, name: str) -> None:
        children = self._children.pop(name, None)
        if children is None:
            return
        info = self._info_labels.pop(name)
        kind = info[1]
        for metric, labels in (
            (self.probe_success, (name, kind)),
            (self.probe_duration, (name, kind)),
            (self.probes, (name, kind, "success")),
            (self.probes, (name, kind, "failure")),
            (self.consecutive_failures, (name,)),
            (self.target_up, (name,)),
            (self.tls_expiry, (name,)),
            (self.probes_skipped, (name,)),
            (self.target_info, info),
        ):
            with contextlib.suppress(KeyError):
                metric.remove(*labels)
        self.targets_configured.set(len(self._children))

    def record(self, target: str, result: ProbeResult, consecutive_failures: int) -> None:
        children = self._children.get(target)
        if children is None:
            return
        children.success.set(1 if result.ok else 0)
        children.duration.set(result.duration_seconds)
        (children.probes_ok if result.ok else children.probes_failed).inc()
        children.consecutive_failures.set(consecutive_failures)
        if result.tls_expiry is not None:
            if children.tls_expiry is None:
                children.tls_expiry = self.tls_expiry.labels(target)
            children.tls_expiry.set(result.tls_expiry)

    def set_up(self, target: str, status: str) -> None:
        """Follow the target's state; while unknown the series is absent, not a fake 0 or 1."""
        if target not in self._children:
            return
        if status == "unknown":
            with contextlib.suppress(KeyError):
                self.target_up.remove(target)
            return
        self.target_up.labels(target).set(1 if status == "up" else 0)

    def set_consecutive_failures(self, target: str, count: int) -> None:
        children = self._children.get(target)
        if children is not None:
            children.consecutive_failures.set(count)

    def exposition(self) -> bytes:
        """The text format; about a second of CPU at 10,000 targets, so the HTTP handler runs
        it in a worker thread rather than on the event loop (collection takes each metric's
        lock, so this is safe while probes update values)."""
        return generate_latest(self.registry)
