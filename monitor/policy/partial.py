"""A partial outage (``[confirmation] partial = "ticket"``): a target down from some vantages
only, fewer than its quorum, for ``partial_after``. Nobody is woken for it, yet it is not
nothing (a region's customers may not reach the site): one ticket one priority below the
target's (at least "low"), saying from which vantages it fails, each with its last error, and
from which it works. If the quorum is met later, the same incident is raised to the target's
priority with the pages a full outage opens with; the store does both in the quorum's
transaction (``monitor.store.postgres.verdicts``), so each happens once across agents.

This module only builds values (the plans run inside that transaction).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from monitor.actions import Action, AddNote
from monitor.config import Config, TargetConfig
from monitor.policy import opening, texts
from monitor.policy.confirmation import seen_from
from monitor.policy.timeliness import sla_fields
from monitor.state import TargetState
from monitor.store.base import BuildActions
from monitor.store.records import PARTIAL, Incident
from monitor.store.verdicts import PartialPlans, Tally
from ticketing.base import PRIORITIES, Priority

if TYPE_CHECKING:
    from monitor.policy.escalation import SupportPolicy


def lower(priority: Priority) -> Priority:
    """One priority below ``priority``, at least "low"."""
    return PRIORITIES[min(PRIORITIES.index(priority) + 1, len(PRIORITIES) - 1)]


def where(target: str, tally: Tally) -> str:
    """The lines a partial ticket carries: where it fails (each vantage's last error) and
    where it works."""
    down = {v.vantage for v in tally.down}
    fails = [f"- {v.vantage}: {v.reason}" for v in tally.down]
    works = [f"- {v.vantage}" for v in tally.counting if v.vantage not in down]
    needed, probing = tally.rules.needed, len(tally.counting)
    return (
        f"Partial outage: {target} fails from {len(fails)} of the {probing} vantages probing "
        f"it, fewer than the {needed} that confirm an outage: it is handled one priority "
        "lower, through the ticket queue, without paging anyone.\n"
        "Fails from:\n" + "\n".join(fails) + "\nWorks from:\n" + ("\n".join(works) or "- none")
    )


def plans(
    config: Config,
    target: TargetConfig,
    state: TargetState,
    failed: int,
    now: float,
    zone: ZoneInfo,
    policy: SupportPolicy | None,
) -> PartialPlans:
    """How ``target``'s partial incident opens (kind "partial", one priority lower, no page)
    and how it is raised once confirmed."""
    low = dataclasses.replace(target, priority=lower(target.priority))

    def open_plan(tally: Tally) -> tuple[dict[str, Any], BuildActions]:
        fails = ", ".join(v.vantage for v in tally.down)
        fields, build = opening.plan(
            config,
            low,
            state,
            failed,
            now,
            zone,
            None,  # no page: a partial outage wakes nobody
            where(target.name, tally),
            subject=f"[{low.priority.upper()}] {target.name} is down from {fails}",
        )
        return {**fields, "kind": PARTIAL}, build

    def raised(
        incident: Incident, tally: Tally, paged: bool
    ) -> tuple[dict[str, Any], list[Action]]:
        reason = f"confirmed from {len(tally.down)} vantages"
        body = texts.priority_note(
            config, target, incident.priority, priority=target.priority, reason=reason
        )
        actions: list[Action] = [AddNote(f"{body}\n\n{seen_from(tally)}", public=True)]
        if policy is not None and not paged:
            details = texts.page_details(target, state, incident.first_failure_at, zone)
            actions += policy.open_actions(
                target, f"{details}\n{seen_from(tally)}", incident.dedup_key, now
            )
        changes = {
            "priority": target.priority,
            "last_reason": state.last_reason,
            **sla_fields(config, target.customer, target.priority),
        }
        return changes, actions

    return PartialPlans(open_plan, raised)
