"""What the HTTP endpoints and ``watchdesk tickets`` show, and the narrow view of a running
agent they read it through (so that ``web`` never imports the agent)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from monitor.cluster.ownership import Ownership
from monitor.config import Config, TargetConfig
from monitor.delivery.integrations import IntegrationsSlot
from monitor.delivery.outbox import CHANNEL_REMOVED
from monitor.metrics import Metrics
from monitor.policy.desk import Desk
from monitor.policy.incidents import IncidentManager
from monitor.state import TargetState
from monitor.store import CustomerNotice, Incident, OutboxAction, Store, StormMember


class AgentView(Protocol):
    """What the endpoints may read of a running agent."""

    @property
    def api_token(self) -> str | None: ...

    @property
    def store(self) -> Store: ...

    def healthy(self) -> bool: ...

    def seconds_since_beat(self) -> float: ...

    def metrics_text(self) -> bytes: ...

    @property
    def metrics(self) -> Metrics: ...

    def status_view(self) -> list[dict[str, object]]: ...

    @property
    def desk(self) -> Desk: ...

    @property
    def listen_host(self) -> str: ...

    @property
    def integrations(self) -> IntegrationsSlot: ...

    @property
    def config(self) -> Config: ...

    @property
    def incidents(self) -> IncidentManager: ...

    @property
    def targets(self) -> Mapping[str, TargetConfig]: ...

    @property
    def ownership(self) -> Ownership: ...


async def incident_rows(
    store: Store, include_resolved: bool = True, limit: int = 200
) -> list[dict[str, Any]]:
    """Incidents newest first, each with its ticket, its customer tickets (a shared component's
    outage) and where its outbox actions stand."""
    incidents = await store.incidents(open_only=not include_resolved, limit=limit)
    return [
        incident_row(
            i,
            await store.actions_of(i.id),
            await store.notices(i.id),
            await store.storm_members(i.id) if i.kind == "storm" else (),
        )
        for i in incidents
    ]


def incident_row(
    incident: Incident,
    actions: list[OutboxAction],
    notices: Sequence[CustomerNotice] = (),
    members: Sequence[StormMember] = (),
) -> dict[str, Any]:
    """One incident as /api/incidents and ``watchdesk tickets`` show it: with
    ``customer_tickets``, what each customer behind a shared component was told (their own
    ticket, or ``via_incident``: a note on the ticket of their open incident)."""
    row = incident.as_json()
    row.update(_outbox([a for a in actions if a.state != "done"]))
    row["members"] = [m.as_json() for m in members]
    row["customer_tickets"] = [
        {
            **notice.as_json(),
            **_outbox([a for a in actions if a.notice == notice.customer and a.state != "done"]),
        }
        for notice in notices
    ]
    return row


def _outbox(pending: list[OutboxAction]) -> dict[str, Any]:
    return {
        "outbox": "delivered"
        if not pending
        else ", ".join(f"{_channel(a)} {a.operation}: {_where(a)}" for a in pending),
        "outbox_errors": [a.last_error for a in pending if a.last_error],
    }


def _channel(action: OutboxAction) -> str:
    return f"{action.channel}({action.notice})" if action.notice else action.channel


def _where(action: OutboxAction) -> str:
    if action.state == "pending" and (action.last_error or "").startswith(CHANNEL_REMOVED):
        return CHANNEL_REMOVED
    return action.state


def status_rows(
    targets: Mapping[str, TargetConfig],
    states: Mapping[str, TargetState],
    incidents: IncidentManager | None = None,
    slot_of: Callable[[str], int | None] = lambda name: None,
) -> list[dict[str, object]]:
    """What /api/status shows: every target (in a cluster: every one this agent probes, with
    its slot) with its state and last result; with the incident manager, the incident that
    covers it (its own, or its storm's), whether it is a canary, and whether this agent's
    monitoring is impaired (every canary down)."""
    view: list[dict[str, object]] = []
    impaired = incidents is not None and incidents.canaries.impaired()
    for name, target in targets.items():
        state = states.get(name, TargetState())
        covering = None
        if incidents is not None:
            own, storm = incidents.open_incident_of(name), incidents.storms.storm_of(name)
            covering = own.id if own else storm.incident.id if storm else None
        slot = slot_of(name)
        view.append(
            {
                "target": name,
                "kind": target.kind,
                "where": target.where(),
                "customer": target.customer,
                "priority": target.priority,
                "state": state.status,
                "since": state.since,
                "consecutive_failures": state.consecutive_failures,
                "consecutive_successes": state.consecutive_successes,
                "failure_threshold": target.failure_threshold,
                "recovery_threshold": target.recovery_threshold,
                "interval_seconds": target.interval,
                "incident": covering,
                "canary": incidents is not None and name in incidents.canaries.names,
                "impaired": impaired,
                "last_result": None
                if state.last_checked_at is None
                else {
                    "ok": state.last_ok,
                    "reason": state.last_reason,
                    "duration_seconds": round(state.last_duration, 6),
                    "checked_at": state.last_checked_at,
                },
                **({} if slot is None else {"slot": slot}),
            }
        )
    return view
