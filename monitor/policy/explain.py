"""Why a target has, or has no, incident right now (``GET /api/targets/{name}``, ``watchdesk
explain``): its counters against its thresholds, and every rule in effect for it (its incident
or storm, flapping, maintenance, a mute, a parent down, the canaries, its group), with one
sentence that says what decides. A down target with no incident reads the incident manager's
own verdict (``gate``), so the answer is what the agent does, not a second opinion. In a
cluster that confirms from several vantages the API adds each vantage's verdict."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo

from monitor.config import TargetConfig
from monitor.durations import format_duration, format_local
from monitor.policy.incidents import IncidentManager
from monitor.policy.maintenance import window_for
from monitor.policy.storm_telling import WAVE
from monitor.state import TargetState
from monitor.store import Incident


def explain(
    manager: IncidentManager,
    target: TargetConfig,
    mutes: Mapping[str, Mapping[str, object]],
    now: float,
) -> dict[str, Any]:
    """The explanation of ``target`` as a JSON-able object; ``why`` is the sentence."""
    config = manager.config
    zone = ZoneInfo(config.agent.timezone)
    name = target.name
    state = manager.states.get(name) or TargetState()
    incident = manager.open_incident_of(name)
    storm = manager.storms.storm_of(name)
    window = window_for(target, config.maintenance, now, zone)
    parent = manager.shared.parent_down(target, manager.states)
    canaries = manager.canaries
    facts: list[str] = []
    if name in canaries.names:
        facts.append("it is a canary: all canaries down means this agent is impaired")
    if canaries.impaired():
        facts.append(f"monitoring is impaired: every canary ({', '.join(canaries.names)}) is down")
    if window is not None:
        facts.append(
            "it is in a maintenance window" + (f": {window.reason}" if window.reason else "")
        )
    if name in mutes:
        mute = mutes[name]
        until = format_local(float(str(mute["until"])), zone)
        facts.append(f"muted by {mute['by']} until {until}: {mute['reason']}")
    if parent is not None:
        facts.append(f"its parent {parent} is down (depends_on)")
    if incident is not None and incident.flapping:
        stable = format_duration(config.escalation.flap_stable_after)
        facts.append(f"it is flapping: its incident stays open until it has been up for {stable}")
    needs = manager.confirmation.rules(target)
    if needs is not None:
        facts.append(
            f"it opens when {needs.needed} healthy vantages say down within "
            f"{format_duration(needs.window)} ([confirmation])"
        )
    if target.group:
        facts.append(
            f"it belongs to group {target.group}: its members down together are one incident"
        )
    verdict = None
    if state.status == "down" and incident is None and storm is None:
        verdict = manager.verdict(target, state, now)
    return {
        "target": name,
        "state": state.status,
        "since": state.since,
        "consecutive_failures": state.consecutive_failures,
        "failure_threshold": target.failure_threshold,
        "consecutive_successes": state.consecutive_successes,
        "recovery_threshold": target.recovery_threshold,
        "last_result": None
        if state.last_checked_at is None
        else {
            "ok": state.last_ok,
            "reason": state.last_reason,
            "checked_at": state.last_checked_at,
        },
        "incident": _incident(incident),
        "storm": None
        if storm is None
        else {
            **(_incident(storm.incident) or {}),
            "group": None if storm.key == WAVE else storm.key,
            "targets_down": len(storm.active()),
        },
        "canary": name in canaries.names,
        "impaired": canaries.impaired(),
        "group": target.group,
        "maintenance": window is not None,
        "muted": name in mutes,
        "parent_down": parent,
        "flapping": bool(incident is not None and incident.flapping),
        "verdict": None if verdict is None else verdict.action,
        "hold_until": None if verdict is None else verdict.until,
        "why": _why(manager, target, state, incident, now, verdict.why if verdict else None),
        "facts": facts,
    }


def _incident(incident: Incident | None) -> dict[str, Any] | None:
    if incident is None:
        return None
    return {
        "id": incident.id,
        "dedup_key": incident.dedup_key,
        "ticket_id": incident.ticket_id,
        "priority": incident.priority,
        "opened_at": incident.opened_at,
    }


def _why(
    manager: IncidentManager,
    target: TargetConfig,
    state: TargetState,
    incident: Incident | None,
    now: float,
    verdict: str | None,
) -> str:
    failures = f"{state.consecutive_failures} of {target.failure_threshold} consecutive failures"
    successes = (
        f"{state.consecutive_successes} of {target.recovery_threshold} consecutive successes"
    )
    storm = manager.storms.storm_of(target.name)
    if incident is not None:
        stable = manager.config.escalation.flap_stable_after
        if state.status == "up" and incident.flapping:
            up_for = format_duration(max(0.0, now - (state.since or now)))
            return (
                f"incident {incident.id} is open: the target is up again, but flapping, and it "
                f"stays open until the target has been up for {format_duration(stable)} "
                f"({up_for} so far)"
            )
        return f"incident {incident.id} is open: {target.name} is down ({successes} end it)"
    if storm is not None:
        return (
            f"it is in storm incident {storm.incident.id} ({len(storm.active())} targets down "
            f"together), which has its tickets; it has none of its own ({successes} take it out)"
        )
    if state.status == "down":
        return f"down with no incident: {verdict}"
    if state.status == "unknown":
        return f"no verdict yet ({failures}): no incident"
    if state.consecutive_failures:
        return f"up, no incident: {failures}; at {target.failure_threshold} it is down"
    return "up, no incident: its last probe succeeded"
