"""The agent's decision makers, made and joined together in one place: the incident manager
(opening, storms, canaries, recovery), the support policy (pages, escalation, the ticket
follow-up) and the operator's desk (ack, resolve, mute).

They share one lock (``IncidentManager.decisions``): the policy and the desk decide under it,
never on an incident that a recovery is resolving at the same moment. Kept out of
``monitor.agent`` so that the agent wires rooms, not the policy's own parts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from monitor.clock import Clock
from monitor.config import Config
from monitor.delivery.integrations import IntegrationsSlot
from monitor.metrics import Metrics
from monitor.policy.desk import Desk
from monitor.policy.escalation import SupportPolicy
from monitor.policy.incidents import IncidentManager
from monitor.state import States
from monitor.store import Store


@dataclass(frozen=True)
class Policies:
    incidents: IncidentManager
    policy: SupportPolicy
    desk: Desk


def build_policies(
    store: Store,
    clock: Clock,
    metrics: Metrics,
    config: Config,
    states: States,
    integrations: IntegrationsSlot,
    notify: Callable[[], None],
) -> Policies:
    """The three, joined: the manager queues the policy's pages with what it opens and
    resolves, and asks the desk whether a target is muted."""
    incidents = IncidentManager(store, clock, metrics, config, states, notify)
    policy = SupportPolicy(store, clock, config, integrations, notify, incidents.decisions, metrics)
    incidents.policy = policy
    desk = Desk(store, clock, policy.timeliness, incidents.decisions, notify)
    incidents.muted = desk.muted
    return Policies(incidents, policy, desk)
