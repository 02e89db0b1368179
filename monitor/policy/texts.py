"""What people read: the ticket's description, the page's details, the recovery note.

Each text is a Jinja2 template (``monitor/policy/templates/*.txt.j2``), rendered in a sandboxed
environment: a customer's own templates (``[customers.NAME] templates = "dir"``) come first and
the defaults fill in what a customer does not override. Customer-visible texts follow the
support policy's correspondence rules: a polite opening, what is known, what happens next, an
offer of further help, and thanks. The lines tools read back ("Failing since: ...", "... has
recovered at ...") keep their wording in the defaults.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

from jinja2 import BaseLoader, ChoiceLoader, FileSystemLoader, StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

from monitor.config import Config, TargetConfig
from monitor.durations import format_duration, format_local
from monitor.state import TargetState
from monitor.store.records import Incident

DEFAULTS = Path(__file__).parent / "templates"

KIND_WORDS = {
    "http": "HTTP check",
    "tcp": "TCP connect",
    "icmp": "ping",
    "dns": "DNS lookup",
    "tls": "TLS certificate check",
}
RECOVERED_BY_ITSELF = "it recovered by itself; nobody had to act on this ticket."
RECOVERED_WHILE_WORKED = "it recovered while our team was working on it."


@lru_cache(maxsize=64)
def environment(customer_dir: str | None = None) -> SandboxedEnvironment:
    """The templates of one customer (their directory first), else the defaults."""
    loaders: list[BaseLoader] = [FileSystemLoader(str(DEFAULTS))]
    if customer_dir:
        loaders.insert(0, FileSystemLoader(customer_dir))
    return SandboxedEnvironment(
        loader=ChoiceLoader(loaders),
        undefined=StrictUndefined,
        autoescape=False,  # plain text; each backend escapes for its own format
        keep_trailing_newline=False,
        trim_blocks=True,
    )


def render(name: str, customer_dir: str | None = None, **values: object) -> str:
    template = environment(customer_dir).get_template(f"{name}.txt.j2")
    return template.render(**values).strip()


def templates_of(config: Config, customer: str | None) -> str | None:
    plan = config.customers.get(customer) if customer else None
    return plan.templates if plan is not None else None


def customer_name(config: Config, customer: str | None) -> str | None:
    plan = config.customers.get(customer) if customer else None
    return plan.name if plan is not None else None


def _what(target: TargetConfig) -> str:
    return f"{KIND_WORDS.get(target.kind, target.kind)} of {target.where()}"


def page_details(
    target: TargetConfig, state: TargetState, first_failure: float, zone: ZoneInfo
) -> str:
    return render(
        "page_details",
        target=target.name,
        last_error=state.last_reason,
        since=format_local(first_failure, zone),
        what=_what(target),
        customer=target.customer,
    )


def ticket_description(
    config: Config,
    target: TargetConfig,
    state: TargetState,
    first_failure: float,
    failed: int,
    zone: ZoneInfo,
) -> str:
    customer = config.customers.get(target.customer) if target.customer else None
    who = "none"
    if target.customer:
        who = target.customer + (f" ({customer.email})" if customer and customer.email else "")
    return for_customer(
        "ticket_description",
        config,
        target.customer,
        target=target.name,
        what=_what(target),
        last_error=state.last_reason,
        since=format_local(first_failure, zone),
        failed=failed,
        threshold=target.failure_threshold,
        every=format_duration(target.interval),
        customer=who,
        priority=target.priority,
        about=target.description,
    )


def recovery_note(
    config: Config,
    customer: str | None,
    target: str,
    recovered_at: float,
    first_failure: float,
    failed: int,
    successes: int,
    *,
    resolution: str = RECOVERED_BY_ITSELF,
) -> str:
    zone = ZoneInfo(config.agent.timezone)
    return for_customer(
        "recovery_note",
        config,
        customer,
        target=target,
        recovered_at=format_local(recovered_at, zone),
        down_for=format_duration(max(0.0, recovered_at - first_failure)),
        since=format_local(first_failure, zone),
        failed=failed,
        successes=successes,
        resolution=resolution,
    )


def for_customer(name: str, config: Config, customer: str | None, /, **values: object) -> str:
    """A template rendered for one customer: their templates, their name in the greeting."""
    return render(
        name,
        templates_of(config, customer),
        customer_name=customer_name(config, customer),
        **values,
    )


def priority_note(
    config: Config,
    target: TargetConfig,
    previous: str,
    *,
    priority: str | None = None,
    reason: str = "",
) -> str:
    """For the requester: their ticket's priority changed (to the target's, unless told)."""
    return for_customer(
        "priority_change",
        config,
        target.customer,
        target=target.name,
        previous=previous,
        priority=priority or target.priority,
        reason=reason,
    )


def shared_outage(
    kind: str,
    config: Config,
    customer: str,
    component: TargetConfig,
    incident: Incident,
    dependents: Sequence[str],
) -> str:
    """For a customer whose services depend on a shared component that is down: the
    description of their own ticket (``shared_outage``) or the note on their open ticket
    (``shared_outage_note``). Other customers are never named."""
    zone = ZoneInfo(config.agent.timezone)
    return for_customer(
        kind,
        config,
        customer,
        component=component.name,
        what=_what(component),
        last_error=incident.last_reason,
        since=format_local(incident.first_failure_at, zone),
        dependents=list(dependents),
        incident_id=incident.id,
        reference=incident.dedup_key,
        parent_ticket=incident.ticket_id,
    )


def affected_note(
    config: Config, customer: str | None, child: TargetConfig, parent: str, reason: str
) -> str:
    """On the parent's ticket: a target that depends on it is down too."""
    return for_customer(
        "affected",
        config,
        customer,
        child=child.name,
        where=child.where(),
        reason=reason,
        parent=parent,
    )


def flapping_note(
    config: Config, incident: Incident, changes: int, window: float, stable_after: float
) -> str:
    return for_customer(
        "flapping",
        config,
        incident.customer,
        target=incident.target,
        changes=changes,
        window=format_duration(window),
        stable_after=format_duration(stable_after),
    )


def in_words(seconds: float) -> str:
    """A span as people say it: "7 days", "1 day", "12 hours", else like "90m"."""
    for unit, size in (("day", 86400), ("hour", 3600)):
        if seconds >= size and seconds % size == 0:
            count = int(seconds // size)
            return f"{count} {unit}" + ("s" if count != 1 else "")
    return format_duration(seconds)


def closing_note(config: Config, incident: Incident, after: float) -> str:
    """For the requester: the ticket closes after ``after`` without their reply, and a reply
    opens it again."""
    zone = ZoneInfo(config.agent.timezone)
    since = incident.pending_since or incident.resolved_at or incident.opened_at
    return for_customer(
        "auto_close",
        config,
        incident.customer,
        target=incident.target,
        after=in_words(after),
        since=format_local(since, zone),
        recovered_at=format_local(incident.resolved_at, zone) if incident.resolved_at else None,
    )


def escalation_note(config: Config, incident: Incident, role: str) -> str:
    """For the requester: their issue was escalated, and to whom (a role, never a person)."""
    return for_customer("escalation", config, incident.customer, target=incident.target, role=role)


def resolution_of(incident: Incident) -> str:
    """How an outage that ended by itself ended, for its recovery note (``incident`` as stored:
    an ack is written to the store, not to the incident manager's copy)."""
    return RECOVERED_BY_ITSELF if incident.worked_at is None else RECOVERED_WHILE_WORKED
