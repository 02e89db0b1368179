"""``[confirmation]``: how many vantages must see a target down before anyone is woken.

One vantage (one place probing) cannot tell a site that is down from its own link that
hiccups; the commercial checkers ask a second location before they alert (Pingdom, UptimeRobot,
updown.io, Datadog's ``min_location_failed``). In a cluster every vantage probes every target
(or the target's ``vantages``), and an incident opens only when ``min_vantages`` of them say
down (``monitor.policy.confirmation``). Without a cluster there is one vantage: the default 1 is
today's behaviour exactly, and asking for more is refused here, not left to never open.

The checks across keys live here because they name keys of other sections (a target's
``min_vantages`` against its ``vantages``, both against ``[cluster]``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from monitor.config.diagnostics import Collector
from monitor.config.types import Duration

NAME_PATTERN = r"^[A-Za-z0-9_.-]+$"


class ConfirmationSection(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Distinct healthy vantages that must say down; 1: the first verdict opens (as alone).
    min_vantages: int = Field(default=1, ge=1, le=64)
    # How recent a vantage's "down" must be to count (a vantage re-says it while it waits).
    window: Duration = 60.0
    # Fewer live, healthy vantages than min_vantages: "all_live" asks every live one (after
    # degraded_delay), "hold" opens nothing until enough are back.
    degraded: Literal["all_live", "hold"] = "all_live"
    degraded_delay: Duration = 60.0
    # Down from some vantages only, for partial_after: a low-priority ticket saying where
    # ("ticket"), or nothing ("ignore").
    partial: Literal["ticket", "ignore"] = "ignore"
    partial_after: Duration = 600.0


def check_confirmation(
    section: ConfirmationSection | None,
    clustered: bool,
    raw_targets: Any,
    problems: Collector,
) -> None:
    """Refuse what could never confirm: more than one vantage without a cluster, or a target
    asking for more vantages than it names."""
    if section is not None and section.min_vantages > 1 and not clustered:
        problems.add(
            ("confirmation", "min_vantages"),
            f"{section.min_vantages} needs several vantages, and without a [cluster] section "
            "there is one: set it to 1 or add [cluster]",
        )
    for index, body in enumerate(raw_targets if isinstance(raw_targets, list) else []):
        if isinstance(body, dict):
            _check_target(index, body, clustered, problems)


def _check_target(index: int, body: dict[str, Any], clustered: bool, problems: Collector) -> None:
    wanted, named = body.get("min_vantages"), body.get("vantages")
    if isinstance(named, list) and named and not clustered:
        problems.add(
            ("targets", index, "vantages"),
            "names vantages, and without a [cluster] section there is only this agent: "
            "remove it or add [cluster]",
        )
    if isinstance(wanted, int) and wanted > 1 and not clustered:
        problems.add(
            ("targets", index, "min_vantages"),
            f"{wanted} needs several vantages, and without a [cluster] section there is one",
        )
    if isinstance(wanted, int) and isinstance(named, list) and named and wanted > len(named):
        problems.add(
            ("targets", index, "min_vantages"),
            f"{wanted} is more than the {len(named)} vantages the target names in vantages: "
            "it could never open",
        )


def vantage_list(value: Sequence[str]) -> tuple[str, ...]:
    """A target's ``vantages`` as stored in its config: sorted, each once."""
    return tuple(sorted(set(value)))
