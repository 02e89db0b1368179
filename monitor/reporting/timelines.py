"""Each target's history as a report reads it: when it was configured, its outages (from the
stored transitions, each from its first failed check), its maintenance windows and its
incidents; and what any span of time measures on it (``Timeline.measure``).

Uptime leaves maintenance out: a window's time counts neither as up nor as down, and is shown
on its own ("maintenance"). Windows come from the config in force (``[[maintenance]]``), one-off
and weekly alike; a target removed from the config has none.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from monitor.config import Config
from monitor.policy.maintenance import target_spans
from monitor.reporting.spans import Span, clip, down_intervals, overlap, total
from monitor.store import Incident, Store, StoredTransition, StormMember
from monitor.store.factory import StoreReader


@dataclass(frozen=True)
class ReportData:
    """What the store holds that a report reads: when each target was configured, every
    transition (by target, in order), every incident, and the targets of each storm incident
    (by its id: a storm is the incident of each of them)."""

    seen: dict[str, tuple[float, float]]
    transitions: dict[str, list[StoredTransition]]
    incidents: list[Incident]
    members: dict[int, frozenset[str]] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        seen: dict[str, tuple[float, float]],
        transitions: list[StoredTransition],
        incidents: list[Incident],
        members: Sequence[StormMember] = (),
    ) -> ReportData:
        by_target: dict[str, list[StoredTransition]] = {}
        for transition in transitions:
            by_target.setdefault(transition.target, []).append(transition)
        by_storm: dict[int, set[str]] = {}
        for member in members:
            by_storm.setdefault(member.incident_id, set()).add(member.target)
        storms = {key: frozenset(names) for key, names in by_storm.items()}
        return cls(seen, by_target, incidents, storms)

    @classmethod
    def read(cls, store: StoreReader) -> ReportData:
        """From the store, synchronously (the command-line commands)."""
        incidents = store.incidents()
        members = [m for i in incidents if i.kind == "storm" for m in store.storm_members(i.id)]
        return cls.build(store.targets_seen(), store.transitions(), incidents, members)

    @classmethod
    async def fetch(cls, store: Store) -> ReportData:
        """From the agent's store, through its writer thread."""
        seen = await store.targets_seen()
        transitions = await store.transitions()
        incidents = await store.incidents()
        members = [
            member
            for incident in incidents
            if incident.kind == "storm"
            for member in await store.storm_members(incident.id)
        ]
        return cls.build(seen, transitions, incidents, members)

    def of(self, target: str) -> list[Incident]:
        """The target's incidents: its own, and the storms it was in."""
        return [
            i for i in self.incidents if i.target == target or target in self.members.get(i.id, ())
        ]


@dataclass(frozen=True)
class Measure:
    """What a span of time measures on one target."""

    observed: float  # time measured: configured, with a verdict, outside maintenance
    downtime: float  # down, outside maintenance
    maintenance: float  # inside a maintenance window (counted neither up nor down)
    longest: float  # the longest outage's downtime
    has_data: bool  # False: no verdict on the target by then ("no data", never 100%)

    @property
    def uptime_percent(self) -> float | None:
        if not self.has_data:
            return None
        if self.observed <= 0:
            return None if self.maintenance > 0 else 100.0
        return max(0.0, 100.0 * (1 - self.downtime / self.observed))


@dataclass(frozen=True)
class Timeline:
    target: str
    customer: str | None
    configured: bool
    start: float  # measured from: when it was first configured
    end: float  # to: the report's end, or when it was removed from the config
    first_verdict: float | None
    outages: list[Span]
    maintenance: list[Span]
    incidents: list[Incident] = field(default_factory=list)

    def span(self, low: float, high: float) -> Span:
        """The part of ``[low, high)`` the target was configured in."""
        return max(low, self.start), min(high, self.end)

    def measure(self, low: float, high: float) -> Measure:
        """From its first verdict on: before it, its state was unknown, neither up nor down."""
        low, high = self.span(low, high)
        if self.first_verdict is None or high <= max(low, self.first_verdict):
            return Measure(0.0, 0.0, 0.0, 0.0, False)
        low = max(low, self.first_verdict)
        maintenance = clip(self.maintenance, low, high)
        outages = clip(self.outages, low, high)
        lengths = [(b - a) - overlap([(a, b)], maintenance) for a, b in outages]
        in_maintenance = total(maintenance)
        return Measure(
            observed=(high - low) - in_maintenance,
            downtime=sum(lengths),
            maintenance=in_maintenance,
            longest=max(lengths, default=0.0),
            has_data=True,
        )


def in_scope(incident: Incident, customer: str | None) -> bool:
    """Whether a customer's report judges the incident (of one of their targets): theirs, or a
    storm, which gave each of its customers a ticket of their own."""
    return customer is None or incident.customer == customer or incident.kind == "storm"


def timelines(
    data: ReportData,
    config: Config,
    since: float,
    until: float,
    zone: ZoneInfo,
    customer: str | None = None,
) -> list[Timeline]:
    """Every target the report covers over ``[since, until)``, by name: the configured ones
    (of ``customer``, when one is given) and those removed from the config that the store saw
    in the period."""
    configured = {t.name: t for t in config.targets}
    names = sorted(set(configured) | {n for n in data.transitions if n in data.seen})
    found: list[Timeline] = []
    for name in names:
        own = data.of(name)
        target = configured.get(name)
        mine = [i for i in own if i.target == name]
        owner = target.customer if target is not None else (mine[0].customer if mine else None)
        if customer is not None and owner != customer:
            continue
        first, last = data.seen.get(name, (since, until))
        end = until if target is not None else min(until, last)
        history = data.transitions.get(name, [])
        windows = (
            target_spans(target, config.maintenance, since, until, zone)
            if target is not None
            else []
        )
        found.append(
            Timeline(
                target=name,
                customer=owner,
                configured=target is not None,
                start=first,
                end=end,
                first_verdict=history[0].at if history else None,
                outages=down_intervals(history, until),
                maintenance=windows,
                incidents=sorted(own, key=lambda i: i.opened_at),
            )
        )
    return found


def local_days(since: float, until: float, zone: ZoneInfo) -> list[tuple[date, float, float]]:
    """The local days ``[since, until)`` touches, each as (date, start, end) clipped to it."""
    days: list[tuple[date, float, float]] = []
    day = datetime.fromtimestamp(since, zone).date()
    while True:
        start = datetime.combine(day, datetime.min.time(), zone).timestamp()
        end = datetime.combine(day + timedelta(days=1), datetime.min.time(), zone).timestamp()
        if start >= until:
            return days
        days.append((day, max(start, since), min(end, until)))
        day += timedelta(days=1)


def last_days(until: float, count: int, zone: ZoneInfo) -> list[tuple[date, float, float]]:
    """The ``count`` local days up to ``until`` (the day it falls in, or the one before if it
    is midnight), the last one possibly partial."""
    last = datetime.fromtimestamp(until - 1e-6, zone).date()
    first = last - timedelta(days=count - 1)
    start = datetime.combine(first, datetime.min.time(), zone).timestamp()
    return local_days(start, until, zone)
