"""What a down target means for the targets and customers behind it (``depends_on``).

A child that fails while its parent is down opens nothing of its own: it is named on the
parent's ticket (``note_affected``).

A **shared component** is a target whose dependents (direct and transitive) belong to two or
more customers, its own customer counted too; the support policy says "major problems
affecting multiple clients" raise priority. While one is down (has an open incident):

- its incident is raised to urgent, and the requester is told with the priority-change note
  a reload sends, with the reason; if it opened at a priority that pages nobody, the pages an
  urgent issue gets on open go out now (the policy: "as soon as a ticket is marked urgent, the
  Operations Manager is paged");
- every customer whose targets depend on it, other than the component's own customer (whose
  ticket the incident's is), is told once: a ticket of their own (their requester, their
  templates), linked to the incident by its id and dedup key in the text and a
  ``parent-<dedup key>`` tag; or, when they already have an open incident on one of those
  dependents, one note on that incident's ticket instead;
- when the incident ends, each of those tickets gets the recovery note and the
  ``on_recovery`` status; a note on a customer's own ticket is followed by the recovery note
  alone (their own incident decides their ticket's status).

"Affected" means *configured* dependents, failing or not, as Gatus and Alertmanager users
expect: a customer hears of it before (or without) its own probes failing, and what they are
told does not depend on which probe happened to run first.

Every decision is a store transaction that can run again (``open_notice``: the notice and its
actions, at most once per incident and customer; ``close_notice``: at most once per notice), so
the incident manager calls ``reconcile`` on the incident's open and on every sweep (after a
restart, after a reload that adds a dependent or a customer) and ``close`` on recovery; a crash
between two of them repeats nothing and misses nothing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from monitor.actions import Action, AddNote, CreateTicket, SetStatus
from monitor.config import Config, TargetConfig
from monitor.policy import storm_texts, texts
from monitor.policy.opening import requester
from monitor.policy.timeliness import sla_fields
from monitor.state import TargetState
from monitor.store import Incident, Store
from ticketing.base import TicketDraft

if TYPE_CHECKING:
    from monitor.policy.escalation import SupportPolicy

log = logging.getLogger("watchdesk.incidents")

# A shared component's outage affects this many customers at least.
CUSTOMERS = 2


def notice_key(incident_key: str, customer: str) -> str:
    """The dedup key of a customer's notice ticket: the incident's, and a digest of the
    customer (valid as a tag or label anywhere, whatever the customer's name)."""
    return f"{incident_key}-{hashlib.sha256(customer.encode()).hexdigest()[:6]}"


def dependents_of(children: Mapping[str, Sequence[TargetConfig]], name: str) -> list[TargetConfig]:
    """Every target that depends on ``name``, directly or through other targets."""
    found: dict[str, TargetConfig] = {}
    stack = [name]
    while stack:
        for child in children.get(stack.pop(), ()):
            if child.name != name and child.name not in found:
                found[child.name] = child
                stack.append(child.name)
    return sorted(found.values(), key=lambda t: t.name)


def _summary(names: list[str]) -> str:
    """Names for a subject line: the first three, and how many more."""
    if len(names) <= 3:
        return ", ".join(names)
    return f"{', '.join(names[:3])} and {len(names) - 3} more"


class SharedOutages:
    def __init__(self, store: Store, config: Config, notify: Callable[[], None]) -> None:
        self.store = store
        self.notify = notify
        self.config = config
        self._behind: dict[str, dict[str, list[str]]] = {}
        # incident id -> customers told (as the store says; read once per incident).
        self._told: dict[int, set[str]] = {}
        # Incidents with notices not yet closed; None until read from the store.
        self._unclosed: set[int] | None = None
        # Set by the agent: the pages an incident raised to urgent gets.
        self.policy: SupportPolicy | None = None

    def set_config(self, config: Config) -> None:
        self.config = config
        self._behind = {}

    def customers_behind(self, target: TargetConfig) -> dict[str, list[str]]:
        """customer -> their targets that depend on ``target`` (for this config)."""
        behind = self._behind.get(target.name)
        if behind is None:
            behind = defaultdict(list)
            for child in dependents_of(self.config.children, target.name):
                if child.customer:
                    behind[child.customer].append(child.name)
            self._behind[target.name] = behind = dict(behind)
        return behind

    def customers_of(self, target: TargetConfig) -> set[str]:
        """Every customer an outage of ``target`` affects: its own and its dependents'."""
        own = {target.customer} if target.customer else set()
        return own | set(self.customers_behind(target))

    def is_shared(self, target: TargetConfig) -> bool:
        return len(self.customers_of(target)) >= CUSTOMERS

    # ---- children behind a down parent ------------------------------------------------------

    @staticmethod
    def parent_down(target: TargetConfig, states: Mapping[str, TargetState]) -> str | None:
        for parent in target.depends_on:
            parent_state = states.get(parent)
            if parent_state is not None and parent_state.status == "down":
                return parent
        return None

    async def note_affected(
        self,
        incident: Incident | None,
        child: TargetConfig,
        state: TargetState,
        now: float,
    ) -> Incident | None:
        """Name a failing child on its parent's ticket, once; the incident as it now stands
        (None: nothing changed)."""
        if incident is None or child.name in incident.affected:
            return None
        affected = (*incident.affected, child.name)
        body = texts.affected_note(
            self.config, incident.customer, child, incident.target, state.last_reason
        )
        await self.store.update_incident(
            incident.id, {"affected": affected}, [AddNote(body, public=True)], now
        )
        log.info(
            "%s is down behind %s: noted on incident %d", child.name, incident.target, incident.id
        )
        self.notify()
        return dataclasses.replace(incident, affected=affected)

    # ---- shared components -----------------------------------------------------------------

    async def reconcile(
        self,
        target: TargetConfig,
        incident: Incident,
        open_incidents: Mapping[str, Incident],
        now: float,
    ) -> Incident:
        """Raise the incident of a shared component and tell every customer behind it, as far
        as not done yet (call with the incident manager's lock held); the incident as it now
        stands. A failure (the store) is logged: the next sweep carries on from there."""
        if not self.is_shared(target):
            return incident
        try:
            if incident.priority != "urgent":
                incident = await self._raise(target, incident, now)
            await self._tell_all(target, incident, open_incidents, now)
        except Exception:
            log.exception("could not tell the customers behind %s; the sweep retries", target.name)
        return incident

    async def _tell_all(
        self,
        target: TargetConfig,
        incident: Incident,
        open_incidents: Mapping[str, Incident],
        now: float,
    ) -> None:
        told = self._told.get(incident.id)
        if told is None:
            told = self._told[incident.id] = {
                n.customer for n in await self.store.notices(incident.id)
            }
        for customer, names in sorted(self.customers_behind(target).items()):
            if customer != target.customer and customer not in told:
                await self._tell(target, incident, customer, names, open_incidents, now)
                told.add(customer)

    async def _raise(self, target: TargetConfig, incident: Incident, now: float) -> Incident:
        reason = (
            f"{target.name} is a shared component: services of "
            f"{len(self.customers_of(target))} customers "
            "depend on it"
        )
        body = texts.priority_note(
            self.config, target, incident.priority, priority="urgent", reason=reason
        )
        actions: list[Action] = [AddNote(body, public=True)]
        if self.policy is not None:  # an urgent issue's pages, unless it has paged already
            actions += await self.policy.raise_pages(target, incident, "urgent", now)
        # The urgent SLA targets are the ones it is judged against from now on.
        changes = {"priority": "urgent", **sla_fields(self.config, target.customer, "urgent")}
        await self.store.update_incident(incident.id, changes, actions, now)
        log.warning(
            "incident %d of %s raised from %s to urgent: %s",
            incident.id,
            target.name,
            incident.priority,
            reason,
            extra={"fields": {"event": "shared_outage", "incident": incident.id}},
        )
        self.notify()
        return dataclasses.replace(incident, priority="urgent")

    async def _tell(
        self,
        target: TargetConfig,
        incident: Incident,
        customer: str,
        names: list[str],
        open_incidents: Mapping[str, Incident],
        now: float,
    ) -> None:
        key = notice_key(incident.dedup_key, customer)
        own = sorted(
            (open_incidents[name] for name in names if name in open_incidents),
            key=lambda i: i.id,
        )
        actions: list[Action]
        if own:
            body = texts.shared_outage(
                "shared_outage_note", self.config, customer, target, incident, names
            )
            actions = [AddNote(body, public=True)]
        else:
            draft = TicketDraft(
                dedup_key=key,
                subject=f"[URGENT] {target.name} is down: {_summary(names)} affected",
                description=texts.shared_outage(
                    "shared_outage", self.config, customer, target, incident, names
                ),
                priority="urgent",
                requester_email=requester(self.config, customer),
                target=target.name,
                customer=customer,
                tags=("watchdesk", key, "shared-outage", f"parent-{incident.dedup_key}"),
            )
            actions = [CreateTicket(draft, notice=customer)]
        via = own[0].id if own else None
        if not await self.store.open_notice(incident.id, customer, key, names, via, actions, now):
            return
        if self._unclosed is not None:
            self._unclosed.add(incident.id)
        log.warning(
            "%s told of the outage of shared component %s (incident %d): %s",
            customer,
            target.name,
            incident.id,
            f"note on incident {via}" if via else "ticket of its own",
            extra={"fields": {"event": "customer_notice", "incident": incident.id}},
        )
        self.notify()

    async def close(
        self,
        incident: Incident,
        recovered_at: float,
        failed: int,
        successes: int,
        now: float,
        resolution: str = texts.RECOVERED_BY_ITSELF,
    ) -> None:
        """The shared component's incident ended: every customer told of it hears it is back.
        A failure (the store) is logged, and ``close_leftovers`` finishes the job."""
        try:
            await self._close(incident, recovered_at, failed, successes, now, resolution)
        except Exception:
            log.exception("could not tell the customers behind %s it is back", incident.target)
            if self._unclosed is not None:
                self._unclosed.add(incident.id)
            return
        self._told.pop(incident.id, None)
        if self._unclosed is not None:
            self._unclosed.discard(incident.id)
        self.notify()

    async def _close(
        self,
        incident: Incident,
        recovered_at: float,
        failed: int,
        successes: int,
        now: float,
        resolution: str,
    ) -> None:
        on_recovery = self.config.ticketing.on_recovery
        for notice in await self.store.notices(incident.id, open_only=True):
            if incident.kind == "storm":  # a storm's customer: their targets are back
                body = storm_texts.recovery(
                    self.config,
                    notice.customer,
                    notice.dependents,
                    recovered_at,
                    incident.first_failure_at,
                    resolution,
                )
            else:
                body = texts.recovery_note(
                    self.config,
                    notice.customer,
                    incident.target,
                    recovered_at,
                    incident.first_failure_at,
                    failed,
                    successes,
                    resolution=resolution,
                )
            actions: list[Action] = []
            if notice.via_incident is None:
                actions.append(AddNote(body, public=True, notice=notice.customer))
                if on_recovery == "pending":
                    actions.append(SetStatus("pending", notice=notice.customer))
                elif on_recovery == "resolve":
                    actions.append(SetStatus("resolved", notice=notice.customer))
            else:
                own = await self.store.incident(notice.via_incident)
                if own is not None and own.status == "open":
                    actions.append(AddNote(body, public=True))
            queue_on = notice.via_incident or incident.id
            if await self.store.close_notice(notice.id, actions, queue_on, now):
                log.info(
                    "%s told that shared component %s is back (incident %d)",
                    notice.customer,
                    incident.target,
                    incident.id,
                )

    async def close_leftovers(
        self, open_incidents: Mapping[str, Incident], states: Mapping[str, TargetState], now: float
    ) -> None:
        """Close the notices of incidents that ended without it (the agent died between the
        two, a closing failed, a person resolved the incident): read from the store once per
        start, then kept."""
        if self._unclosed is None:
            self._unclosed = {n.incident_id for n in await self.store.notices(open_only=True)}
        open_ids = {incident.id for incident in open_incidents.values()}
        for incident_id in sorted(self._unclosed - open_ids):
            incident = await self.store.incident(incident_id)
            if incident is None or incident.status == "open":
                continue  # open in the store: the manager does not know it yet
            state = states.get(incident.target)
            successes = state.consecutive_successes if state is not None else 0
            ended = incident.resolved_at or now
            await self.close(incident, ended, incident.failed_checks, successes, now)
