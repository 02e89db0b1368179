"""Response and resolution against the SLA in force: the Prometheus series of closure and
timeliness (``watchdesk_incidents_resolved_total``, ``watchdesk_incident_ack_seconds``,
``watchdesk_incident_resolve_seconds``, ``watchdesk_sla_breaches_total``,
``watchdesk_sla_breaching``).

A target counts business or calendar time as the plan says (``[sla.NAME.priority.P] clock``):
a high issue opened on Friday evening with a 4-hour response target is due on Monday morning,
not on Friday night. While the ticket waits on the customer (a pause) the clocks stand still,
and a pause costs what it covers of the plan's clock: an hour paused in the night costs a
business-hours target nothing.

The targets are those in force when the incident opened (or when its priority last changed),
stored with it (``sla_fields``): a plan changed since does not judge it again. Incidents stored
before watchdesk kept them are judged against the config of the day. The business calendar
itself is the plan's calendar of the day. The histograms and the closure counter carry the
``tier`` the incident had reached (``[escalation] first_tier``, "L1", before any escalation).

A customer's reply that reopens the ticket starts a new round: both clocks count again from
the reply, and the round's response and resolution are judged (breaches counted) like a new
ticket's. Closure and time-to-ack/resolve series stay the outage's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from monitor.calendar import Calendar
from monitor.config import Config
from monitor.config.model import EffectivePolicy
from monitor.metrics import Metrics
from monitor.store import Incident
from monitor.store.records import Pause
from ticketing.base import Priority

INFINITY = float("inf")


def clock_deadline(
    calendar: Calendar | None, start: float, seconds: float, pauses: Sequence[Pause] = ()
) -> float:
    """When ``seconds`` of clock time have passed since ``start``, paused time not counted:
    every second counts (``calendar`` None), or only the calendar's open time. Infinity while
    a pause that has not ended stands in the way, or when the calendar never opens again."""

    def open_between(low: float, high: float) -> float:
        return high - low if calendar is None else calendar.open_seconds(low, high)

    def add(low: float, amount: float) -> float:
        if calendar is None:
            return low + amount
        due = calendar.add_open_time(low, amount)
        return INFINITY if due is None else due

    remaining, moment = seconds, start
    if remaining <= 0:
        return start
    for paused_from, paused_to in sorted(pauses, key=lambda pause: pause[0]):
        if paused_to is not None and paused_to <= moment:
            continue
        if paused_from > moment:
            available = open_between(moment, paused_from)
            if available >= remaining:
                return add(moment, remaining)
            remaining -= available
        if paused_to is None:
            return INFINITY
        moment = max(moment, paused_to)
    return add(moment, remaining)


def on_clock(
    clock: str, calendar: Calendar, start: float, seconds: float, pauses: Sequence[Pause] = ()
) -> float:
    """When ``seconds`` of ``clock`` (every hour, or the calendar's open hours) have passed
    since ``start``, pauses left out."""
    return clock_deadline(None if clock == "calendar" else calendar, start, seconds, pauses)


def deadline(
    policy: EffectivePolicy, start: float, seconds: float, pauses: Sequence[Pause] = ()
) -> float:
    """When ``seconds`` of the policy's clock have passed since ``start``, pauses left out."""
    return on_clock(policy.clock, policy.calendar, start, seconds, pauses)


@dataclass(frozen=True)
class SlaTargets:
    """The targets an incident is judged against."""

    response: float
    resolution: float
    clock: str  # "business" or "calendar"
    calendar: Calendar

    def due(self, start: float, seconds: float, pauses: Sequence[Pause] = ()) -> float:
        """When ``seconds`` of this clock have passed since ``start``, pauses left out."""
        return on_clock(self.clock, self.calendar, start, seconds, pauses)

    def response_due(self, start: float, pauses: Sequence[Pause] = ()) -> float:
        return self.due(start, self.response, pauses)

    def resolution_due(self, start: float, pauses: Sequence[Pause] = ()) -> float:
        return self.due(start, self.resolution, pauses)


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
        # Deadlines of open incidents, worked out once per config (and per round and pauses):
        # the policy sweep asks for them every few seconds, and a business-hours one walks the
        # calendar.
        self._due: dict[tuple[Any, ...], float] = {}
        self._due_under: Config | None = None

    def _deadline(self, incident: Incident, kind: str) -> float:
        config = self._config()
        if config is not self._due_under:
            self._due, self._due_under = {}, config
        start = incident.clock_start
        key = (
            incident.id,
            kind,
            incident.priority,
            incident.customer,
            incident.response_target,
            incident.resolution_target,
            incident.sla_clock,
            start,
            incident.pauses,
        )
        due = self._due.get(key)
        if due is None:
            targets = targets_of(config, incident)
            seconds = targets.response if kind == "response" else targets.resolution
            due = self._due[key] = targets.due(start, seconds, incident.pauses)
        return due

    def response_due(self, incident: Incident) -> float:
        return self._deadline(incident, "response")

    def resolution_due(self, incident: Incident) -> float:
        return self._deadline(incident, "resolution")

    def worked(self, incident: Incident, at: float) -> None:
        """Someone is working the incident (assigned, status moved, acknowledged), or its
        reopened ticket."""
        labels = (incident.priority, incident.customer or "")
        if not incident.reopened:
            self.metrics.incident_ack_seconds.labels(*labels, incident.tier).observe(
                max(0.0, at - incident.opened_at)
            )
        if at > self.response_due(incident):
            self.metrics.sla_breaches.labels("response", *labels).inc()

    def resolved(self, incident: Incident, at: float) -> None:
        """The outage ended, or the round of a reopened ticket did (answered and set pending,
        resolved or closed)."""
        labels = (incident.priority, incident.customer or "")
        if not incident.reopened:
            self.metrics.incidents_resolved.labels(*labels, incident.tier).inc()
            self.metrics.incident_resolve_seconds.labels(*labels, incident.tier).observe(
                max(0.0, at - incident.opened_at)
            )
        if incident.responded_at is None and at > self.response_due(incident):
            self.metrics.sla_breaches.labels("response", *labels).inc()
        if at > self.resolution_due(incident):
            self.metrics.sla_breaches.labels("resolution", *labels).inc()

    def breaching(self, running: Iterable[Incident], now: float) -> None:
        """How many incidents whose clocks run (open ones, reopened tickets) are past their
        targets right now (for alerts)."""
        response = resolution = 0
        still_running = set()
        for incident in running:
            if incident.status != "open" and not incident.reopened:
                continue
            still_running.add(incident.id)
            if incident.responded_at is None and now > self.response_due(incident):
                response += 1
            if now > self.resolution_due(incident):
                resolution += 1
        self._due = {key: due for key, due in self._due.items() if key[0] in still_running}
        self.metrics.sla_breaching.labels("response").set(response)
        self.metrics.sla_breaching.labels("resolution").set(resolution)
