"""Response and resolution against the SLA in force: the Prometheus series of closure and
timeliness (``watchdesk_incidents_resolved_total``, ``watchdesk_incident_ack_seconds``,
``watchdesk_incident_resolve_seconds``, ``watchdesk_sla_breaches_total``,
``watchdesk_sla_breaching``).

A target counts business or calendar time as the plan says (``[sla.NAME.priority.P] clock``):
a high issue opened on Friday evening with a 4-hour response target is due on Monday morning,
not on Friday night.

The targets are those in force when the incident opened (or when its priority last changed),
stored with it (``sla_fields``): a plan changed since does not judge it again. Incidents stored
before watchdesk kept them are judged against the config of the day. The business calendar
itself is the plan's calendar of the day. The histograms and the closure counter carry the
``tier`` the incident had reached (``[escalation] first_tier``, "L1", before any escalation).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from monitor.calendar import Calendar
from monitor.config import Config
from monitor.config.model import EffectivePolicy
from monitor.metrics import Metrics
from monitor.store import Incident
from ticketing.base import Priority


def on_clock(clock: str, calendar: Calendar, start: float, seconds: float) -> float:
    """When ``seconds`` of ``clock`` (every hour, or the calendar's open hours) have passed
    since ``start``."""
    if clock == "calendar":
        return start + seconds
    due = calendar.add_open_time(start, seconds)
    return due if due is not None else float("inf")


def deadline(policy: EffectivePolicy, start: float, seconds: float) -> float:
    """When ``seconds`` of the policy's clock have passed since ``start``."""
    return on_clock(policy.clock, policy.calendar, start, seconds)


@dataclass(frozen=True)
class SlaTargets:
    """The targets an incident is judged against."""

    response: float
    resolution: float
    clock: str  # "business" or "calendar"
    calendar: Calendar

    def due(self, start: float, seconds: float) -> float:
        """When ``seconds`` of this clock have passed since ``start``."""
        return on_clock(self.clock, self.calendar, start, seconds)

    def response_due(self, start: float) -> float:
        return self.due(start, self.response)

    def resolution_due(self, start: float) -> float:
        return self.due(start, self.resolution)


def sla_fields(config: Config, customer: str | None, priority: Priority) -> dict[str, Any]:
    """The incident's columns that keep the SLA in force now, for an incident of ``priority``
    for ``customer``."""
    policy = config.policy_for(customer, priority)
    return {
        "response_target": policy.response,
        "resolution_target": policy.resolution,
        "sla_clock": policy.clock,
    }


def targets_of(config: Config, incident: Incident) -> SlaTargets:
    """The SLA the incident is judged against: the one stored with it, else today's."""
    policy = config.policy_for(incident.customer, incident.priority)
    return SlaTargets(
        response=incident.response_target or policy.response,
        resolution=incident.resolution_target or policy.resolution,
        clock=incident.sla_clock or policy.clock,
        calendar=policy.calendar,
    )


class Timeliness:
    def __init__(self, config: Callable[[], Config], metrics: Metrics) -> None:
        self._config = config
        self.metrics = metrics
        # Deadlines of open incidents, worked out once per config: the policy sweep asks for
        # them every few seconds, and a business-hours one walks the calendar.
        self._due: dict[tuple[Any, ...], float] = {}
        self._due_under: Config | None = None

    def _deadline(self, incident: Incident, kind: str) -> float:
        config = self._config()
        if config is not self._due_under:
            self._due, self._due_under = {}, config
        key = (
            incident.id,
            kind,
            incident.priority,
            incident.customer,
            incident.response_target,
            incident.resolution_target,
            incident.sla_clock,
        )
        due = self._due.get(key)
        if due is None:
            targets = targets_of(config, incident)
            seconds = targets.response if kind == "response" else targets.resolution
            due = self._due[key] = targets.due(incident.opened_at, seconds)
        return due

    def response_due(self, incident: Incident) -> float:
        return self._deadline(incident, "response")

    def resolution_due(self, incident: Incident) -> float:
        return self._deadline(incident, "resolution")

    def worked(self, incident: Incident, at: float) -> None:
        """Someone is working the incident (assigned, status moved, acknowledged)."""
        labels = (incident.priority, incident.customer or "")
        self.metrics.incident_ack_seconds.labels(*labels, incident.tier).observe(
            max(0.0, at - incident.opened_at)
        )
        if at > self.response_due(incident):
            self.metrics.sla_breaches.labels("response", *labels).inc()

    def resolved(self, incident: Incident, at: float) -> None:
        labels = (incident.priority, incident.customer or "")
        self.metrics.incidents_resolved.labels(*labels, incident.tier).inc()
        self.metrics.incident_resolve_seconds.labels(*labels, incident.tier).observe(
            max(0.0, at - incident.opened_at)
        )
        if incident.worked_at is None and at > self.response_due(incident):
            self.metrics.sla_breaches.labels("response", *labels).inc()
        if at > self.resolution_due(incident):
            self.metrics.sla_breaches.labels("resolution", *labels).inc()

    def breaching(self, open_incidents: Iterable[Incident], now: float) -> None:
        """How many open incidents are past their targets right now (for alerts)."""
        response = resolution = 0
        still_open = set()
        for incident in open_incidents:
            still_open.add(incident.id)
            if incident.worked_at is None and now > self.response_due(incident):
                response += 1
            if now > self.resolution_due(incident):
                resolution += 1
        self._due = {key: due for key, due in self._due.items() if key[0] in still_open}
        self.metrics.sla_breaching.labels("response").set(response)
        self.metrics.sla_breaching.labels("resolution").set(resolution)
