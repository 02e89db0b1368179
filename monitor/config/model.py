"""The config as frozen objects: sections, targets with their defaults folded in, and the
value types (durations, clock times) the file is written in. Validation of single values lives
here; what spans sections (references, cycles, secrets) is ``loader``'s."""

from __future__ import annotations

import socket
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time
from functools import cached_property
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
)

from checks import ProbeSettings
from monitor.calendar import Calendar
from monitor.config.confirmation import ConfirmationSection
from monitor.config.escalation import EscalationSection
from monitor.config.reports import ReportSection
from monitor.config.types import (
    ClockTime,
    Duration,
    DurationOrOff,
    DurationOrZero,
    DurationPerPriority,
)
from ticketing import IntegrationSettings
from ticketing.base import Priority

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
NAME_PATTERN = r"^[A-Za-z0-9_.-]+$"
DEFAULT_CALENDAR = "default"
DEFAULT_AUTO_CLOSE_AFTER = 7 * 86400.0

# Key names that hold a secret wherever they appear; the file must use <name>_env or <name>_file.
SECRET_KEYS = frozenset(
    {
        "api_key",
        "api_token",
        "token",
        "password",
        "routing_key",
        "secret",
        "hmac_secret",
        "integration_key",
        "auth_token",
        "access_token",
        "private_key",
        "urls",
        "database_url",
    }
)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AgentSection(Strict):
    listen: str = "127.0.0.1:9430"
    state_dir: str = "./state"
    timezone: str = "UTC"
    api_token_env: str | None = None
    api_token_file: str | None = None
    log_format: Literal["plain", "json"] = "plain"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    max_concurrent_probes: int = Field(default=2000, ge=1)
    # Targets that are the agent's own view of the world (outside resolvers, the gateway):
    # all of them down means the agent cannot see, not that everything is down.
    canaries: list[str] = []

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, _, port = value.rpartition(":")
        if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError(f'"{value}" is not HOST:PORT, like "127.0.0.1:9430"')
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f'unknown time zone "{value}"; use an IANA name like "America/Toronto" or "UTC"'
            ) from None
        return value

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])


def _hostname() -> str:
    """The default vantage: this machine's name, cut to what a vantage name may hold."""
    name = socket.gethostname().split(".")[0] or "agent"
    return "".join(c if c.isalnum() or c in "_-" else "-" for c in name)


class ClusterSection(Strict):
    """``[cluster]``, checked across keys by ``monitor.config.cluster``."""

    database_url_env: str | None = None
    database_url_file: str | None = None
    # Where this agent probes from; agents of one vantage share its targets between them.
    vantage: str = Field(default_factory=_hostname, pattern=NAME_PATTERN)
    slots: int = Field(default=1024, ge=1, le=65536)
    lease_ttl: Duration = 20.0
    lease_renew: Duration = 5.0
    claim_ttl: Duration = 60.0
    db_lost_page_after: Duration = 120.0


class DefaultsSection(Strict):
    interval: Duration = 30.0
    timeout: Duration = 5.0
    failure_threshold: int = Field(default=3, ge=1)
    recovery_threshold: int = Field(default=2, ge=1)
    priority: Priority = "urgent"


class TargetCommon(Strict):
    """The keys every target has whatever its kind; the rest belong to the kind's model."""

    name: str = Field(pattern=NAME_PATTERN)
    kind: str
    interval: Duration | None = None
    timeout: Duration | None = None
    failure_threshold: int | None = Field(default=None, ge=1)
    recovery_threshold: int | None = Field(default=None, ge=1)
    priority: Priority | None = None
    customer: str | None = None
    # Factories, not ``[]``: pydantic deep-copies a mutable default for every target.
    depends_on: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    description: str | None = None
    # Targets with the same group fail together for one reason: one incident for all of them.
    group: str | None = Field(default=None, pattern=NAME_PATTERN)
    vantages: list[str] = Field(default_factory=list, max_length=64)  # [confirmation]: who probes
    min_vantages: int | None = Field(default=None, ge=1, le=64)


COMMON_KEYS = frozenset(TargetCommon.model_fields)


@dataclass(frozen=True)
class TargetConfig:
    """A target with the defaults folded in: everything the scheduler and incidents need."""

    name: str
    kind: str
    settings: ProbeSettings
    interval: float
    timeout: float
    failure_threshold: int
    recovery_threshold: int
    priority: Priority
    customer: str | None = None
    depends_on: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    description: str | None = None
    group: str | None = None
    vantages: tuple[str, ...] = ()  # empty: every vantage probes it
    min_vantages: int | None = None  # None: [confirmation] min_vantages

    def where(self) -> str:
        return self.settings.where()

    def probe_identity(self) -> tuple[str, ProbeSettings]:
        """What must stay equal for a reload to keep this target's state."""
        return (self.kind, self.settings)


class CustomerSection(Strict):
    email: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+$")
    name: str | None = None
    sla: str | None = None
    # A directory of Jinja2 templates (ticket_description.txt.j2, ...) that replace the
    # defaults of monitor/policy/templates for this customer's tickets.
    templates: str | None = None


class PriorityPolicy(Strict):
    """What an SLA plan does for incidents of one priority; unset keys take the policy's
    defaults (see ``Config.policy_for``)."""

    page: bool | None = None
    page_hours: Literal["always", "business"] | None = None
    # Customer-visible status updates every so often; "off" for none.
    update_interval: DurationOrOff | None = None
    response: Duration | None = None
    resolution: Duration | None = None
    # Whether response and resolution targets count business hours or all hours.
    clock: Literal["business", "calendar"] | None = None


@dataclass(frozen=True)
class EffectivePolicy:
    """The support policy in force for one incident: the plan's keys over the defaults."""

    page: bool
    page_hours: str
    update_interval: float | None  # None: no status updates
    response: float
    resolution: float
    clock: str
    calendar: Calendar


# The support policy's own defaults: only urgent issues page; status updates for urgent and
# high; response 1h/4h/24h/48h, resolution 2h/4h/8h/24h; urgent on the calendar's every hour,
# the rest in working hours.
DEFAULT_PAGE: dict[str, bool] = {"urgent": True, "high": False, "medium": False, "low": False}
DEFAULT_UPDATES: dict[str, bool] = {"urgent": True, "high": True, "medium": False, "low": False}
DEFAULT_RESOLUTION = {
    "urgent": 2 * 3600.0,
    "high": 4 * 3600.0,
    "medium": 8 * 3600.0,
    "low": 86400.0,
}
DEFAULT_CLOCK = {"urgent": "calendar", "high": "business", "medium": "business", "low": "business"}


class SlaSection(Strict):
    page_hours: Literal["always", "business"] = "always"
    # [sla.NAME.priority.P]: this plan's policy for incidents of priority P.
    priority: dict[Priority, PriorityPolicy] = {}
    response_time: DurationPerPriority | None = None
    # The [calendars.NAME] whose open hours this plan's "business" means; default: the
    # calendar of [business_hours].
    calendar: str | None = None

    def response_for(self, priority: str) -> float | None:
        """The plan's ``response_time`` for ``priority``, if it sets one."""
        if isinstance(self.response_time, dict):
            return self.response_time.get(priority)
        return self.response_time


class BusinessHoursSection(Strict):
    days: list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]] = [
        "mon",
        "tue",
        "wed",
        "thu",
        "fri",
    ]
    start: ClockTime = time(8, 0)
    end: ClockTime = time(17, 0)
    holidays: list[date] = []


class TicketingSection(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    backend: str = "local"
    on_recovery: Literal["pending", "resolve", "note"] = "pending"
    request_timeout: Duration = 15.0
    # How long the helpdesk's search may lag a create; None: the backend's documented lag.
    search_lag: DurationOrZero | None = None
    # A ticket left waiting on the customer this long without a reply is closed by watchdesk
    # (every backend that can report replies); None: the local backend's own key, else 7 days.
    auto_close_after: Duration | None = None


class StormSection(Strict):
    """``[storm]``: many targets down at once are one incident (``monitor.policy.storms``)."""

    threshold: int = Field(default=10, ge=1)
    window: Duration = 60.0
    # How long a new down waits for others of a storm before it opens on its own; "0s": never.
    group_wait: DurationOrZero = 10.0


class MaintenanceSection(Strict):
    """A one-off window (``start``/``end`` as ISO date-times) or a weekly one (``days`` + HH:MM)."""

    targets: list[str] = []
    tags: list[str] = []
    start: str
    end: str
    days: list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]] = []
    reason: str | None = None


@dataclass(frozen=True)
class MaintenanceWindow:
    targets: tuple[str, ...]
    tags: tuple[str, ...]
    start: datetime | time
    end: datetime | time
    days: tuple[str, ...] = ()
    reason: str | None = None

    @property
    def weekly(self) -> bool:
        return bool(self.days)


@dataclass(frozen=True)
class Config:
    source: str
    agent: AgentSection
    defaults: DefaultsSection
    targets: tuple[TargetConfig, ...]
    customers: Mapping[str, CustomerSection]
    sla: Mapping[str, SlaSection]
    business_hours: BusinessHoursSection
    ticketing: TicketingSection
    backend_settings: IntegrationSettings
    pagers: Mapping[str, IntegrationSettings]
    pager_types: Mapping[str, str]
    escalation: EscalationSection
    maintenance: tuple[MaintenanceWindow, ...] = ()
    raw_sections: frozenset[str] = field(default_factory=frozenset)
    # Every [calendars.NAME], and "default" from [business_hours] unless one is named so.
    calendars: Mapping[str, Calendar] = field(default_factory=dict)
    # None: one agent on its SQLite file; else the shared PostgreSQL database of a cluster.
    cluster: ClusterSection | None = None
    reports: tuple[ReportSection, ...] = ()
    storm: StormSection = field(default_factory=StormSection)
    confirmation: ConfirmationSection = field(default_factory=ConfirmationSection)
    # name -> the text of the target's table as read: a reload reuses the unchanged ones.
    fingerprints: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    def policy_for(self, customer: str | None, priority: Priority) -> EffectivePolicy:
        """The support policy for an incident of ``priority`` for ``customer``."""
        sla = self.plan_of(customer)
        own = sla.priority.get(priority) if sla is not None else None
        own = own or PriorityPolicy()
        updates = self.escalation.status_update_interval if DEFAULT_UPDATES[priority] else 0.0
        if own.update_interval is not None:
            updates = own.update_interval
        page_hours = own.page_hours or (sla.page_hours if sla is not None else "always")
        # Where nobody is paged outside business hours, the night is nobody's time to answer
        # in: the targets count the plan's open hours whatever the priority.
        clock = "business" if page_hours == "business" else DEFAULT_CLOCK[priority]
        return EffectivePolicy(
            page=DEFAULT_PAGE[priority] if own.page is None else own.page,
            page_hours=page_hours,
            update_interval=updates or None,
            response=own.response
            or (sla.response_for(priority) if sla is not None else None)
            or self.escalation.ack_timeout_for(priority),
            resolution=own.resolution or DEFAULT_RESOLUTION[priority],
            clock=own.clock or clock,
            calendar=self.calendar_of(customer),
        )

    @property
    def auto_close_after(self) -> float:
        """How long a pending ticket waits for the customer before watchdesk closes it:
        ``[ticketing] auto_close_after``, else ``[ticketing.local] auto_close_after`` (where the
        key was first), else 7 days."""
        if self.ticketing.auto_close_after is not None:
            return self.ticketing.auto_close_after
        local = getattr(self.backend_settings, "auto_close_after", None)
        return float(local) if isinstance(local, float) else DEFAULT_AUTO_CLOSE_AFTER

    def plan_of(self, customer: str | None) -> SlaSection | None:
        """The ``[sla.NAME]`` plan of a customer, if it has one."""
        entry = self.customers.get(customer) if customer else None
        return self.sla.get(entry.sla) if entry is not None and entry.sla else None

    def calendar_of(self, customer: str | None) -> Calendar:
        """The business calendar of a customer's SLA plan (the default one without a plan)."""
        sla = self.plan_of(customer)
        name = sla.calendar if sla is not None and sla.calendar else DEFAULT_CALENDAR
        return self.calendars[name]

    @cached_property
    def by_name(self) -> Mapping[str, TargetConfig]:
        """name -> target, built once per config: a lookup per probe or transition must not
        scan 50,000 targets (the config is frozen, so the index never goes stale)."""
        return {target.name: target for target in self.targets}

    @cached_property
    def position(self) -> Mapping[str, int]:
        """name -> its place in the file: a walk over some targets keeps the file's order."""
        return {target.name: index for index, target in enumerate(self.targets)}

    @cached_property
    def children(self) -> Mapping[str, tuple[TargetConfig, ...]]:
        """parent -> the targets that name it in ``depends_on`` (the reverse dependency index):
        a parent's recovery visits its own children, not every target."""
        found: dict[str, list[TargetConfig]] = {}
        for target in self.targets:
            for parent in target.depends_on:
                found.setdefault(parent, []).append(target)
        return {parent: tuple(children) for parent, children in found.items()}

    def target(self, name: str) -> TargetConfig:
        return self.by_name[name]

    def summary(self) -> str:
        kinds: dict[str, int] = {}
        for target in self.targets:
            kinds[target.kind] = kinds.get(target.kind, 0) + 1
        by_kind = ", ".join(f"{count} {kind}" for kind, count in sorted(kinds.items()))
        return (
            f"{self.source}: ok, {len(self.targets)} targets ({by_kind or 'none'}), "
            f"{len(self.customers)} customers, ticketing={self.ticketing.backend}, "
            f"{len(self.pagers)} pagers"
            + (f", cluster vantage {self.cluster.vantage}" if self.cluster else "")
        )
