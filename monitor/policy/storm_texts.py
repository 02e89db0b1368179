"""What people read about a storm (many targets down together) and about impaired monitoring:
a customer's storm ticket, the notes as their targets join or leave it, its recovery note, and
the pages. Rendered like every other text (``monitor.policy.texts``): a customer's own
templates first, other customers never named."""

from __future__ import annotations

from collections.abc import Sequence
from zoneinfo import ZoneInfo

from monitor.config import Config
from monitor.durations import format_duration, format_local
from monitor.policy.texts import RECOVERED_BY_ITSELF, for_customer, render
from monitor.store import Incident, StormMember

# A page lists this many names, and how many more.
PAGE_NAMES = 60


def names_summary(names: Sequence[str], shown: int = 3) -> str:
    """Names for a subject line: the first few, and how many more."""
    if len(names) <= shown:
        return ", ".join(names)
    return f"{', '.join(names[:shown])} and {len(names) - shown} more"


def _rows(members: Sequence[StormMember], zone: ZoneInfo) -> list[dict[str, str]]:
    return [
        {
            "target": m.target,
            "reason": m.reason,
            "since": format_local(m.first_failure_at, zone),
        }
        for m in members
    ]


def ticket(
    config: Config,
    customer: str,
    members: Sequence[StormMember],
    incident: Incident,
    group: str | None,
    others: bool,
) -> str:
    """The description of a customer's ticket of a storm: their targets, each with its error."""
    zone = ZoneInfo(config.agent.timezone)
    return for_customer(
        "storm_ticket",
        config,
        customer,
        count=len(members),
        members=_rows(members, zone),
        others=others,
        group=group,
        incident_id=incident.id,
        reference=incident.dedup_key,
    )


def note(
    config: Config,
    customer: str,
    down: Sequence[StormMember],
    up: Sequence[str],
    still: Sequence[str],
) -> str:
    """On a customer's storm ticket: their targets that went down since, or came back."""
    zone = ZoneInfo(config.agent.timezone)
    return for_customer(
        "storm_note",
        config,
        customer,
        down=_rows(down, zone),
        up=list(up),
        still=list(still),
    )


def recovery(
    config: Config,
    customer: str,
    targets: Sequence[str],
    recovered_at: float,
    first_failure: float,
    resolution: str = RECOVERED_BY_ITSELF,
) -> str:
    """On each customer's storm ticket when the storm ends (its last target is back)."""
    zone = ZoneInfo(config.agent.timezone)
    return for_customer(
        "storm_recovery",
        config,
        customer,
        targets=list(targets) or ["your services"],
        recovered_at=format_local(recovered_at, zone),
        down_for=format_duration(max(0.0, recovered_at - first_failure)),
        since=format_local(first_failure, zone),
        resolution=resolution,
    )


def page(config: Config, members: Sequence[StormMember], customers: int, group: str | None) -> str:
    """The details of the storm's one page: how many, whose, and the list."""
    names = [m.target for m in members]
    zone = ZoneInfo(config.agent.timezone)
    return render(
        "storm_page",
        count=len(names),
        customers=customers,
        group=group,
        names=names_summary(names, PAGE_NAMES),
        since=format_local(min(m.first_failure_at for m in members), zone),
    )


def impaired_page(agent: str, canaries: Sequence[tuple[str, str]]) -> str:
    """The details of the "monitoring is impaired" page: each canary and its last error."""
    return render(
        "impaired_page",
        agent=agent,
        canaries=[{"name": name, "reason": reason} for name, reason in canaries],
    )
