"""What people read: the ticket's description, the page's details, the recovery note. Pure
functions of the target, its state and the agent's time zone."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from monitor.config import Config, TargetConfig
from monitor.durations import format_duration, format_local
from monitor.state import TargetState

KIND_WORDS = {
    "http": "HTTP check",
    "tcp": "TCP connect",
    "icmp": "ping",
    "dns": "DNS lookup",
    "tls": "TLS certificate check",
}


def page_details(
    target: TargetConfig, state: TargetState, first_failure: float, zone: ZoneInfo
) -> str:
    lines = [
        f"{target.name} is down: {state.last_reason}",
        f"Since: {format_local(first_failure, zone)}",
        f"Check: {KIND_WORDS.get(target.kind, target.kind)} of {target.where()}",
    ]
    if target.customer:
        lines.append(f"Customer: {target.customer}")
    return "\n".join(lines)


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
    lines = [
        f"{target.name} is down.",
        "",
        f"What failed: {KIND_WORDS.get(target.kind, target.kind)} of {target.where()}",
        f"Last error: {state.last_reason}",
        f"Failing since: {format_local(first_failure, zone)} (first failed check)",
        f"Failed checks: {failed} in a row (threshold {target.failure_threshold}, "
        f"every {format_duration(target.interval)})",
        f"Customer: {who}",
        f"Priority: {target.priority}",
    ]
    if target.description:
        lines.append(f"About this target: {target.description}")
    lines += ["", "Opened by watchdesk; this ticket is updated until the service is back."]
    return "\n".join(lines)


def recovery_note(
    target: str,
    recovered_at: float,
    first_failure: float,
    failed: int,
    successes: int,
    zone: ZoneInfo,
) -> str:
    down_for = max(0.0, recovered_at - first_failure)
    return (
        f"{target} has recovered at {format_local(recovered_at, zone)}. "
        f"It was down for {format_duration(down_for)} "
        f"(since {format_local(first_failure, zone)}, the first failed check); "
        f"{failed} checks failed. "
        f"It has passed {successes} checks in a row since."
    )
