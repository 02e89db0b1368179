"""The support policy around an incident: who is paged, when, and when again.

- On open: every pager in ``page_on_open``, once per incident. A customer whose SLA pages only
  in business hours gets the ticket at once and the page at the next business-hours start
  (dropped if the incident ended meanwhile).
- Working the ticket = assigned to someone, or its status left open, or a pager acknowledged.
  The helpdesk is polled every ``poll_interval``, and once more when the deadline comes
  (``monitor.policy.watch``). A ticket that waits on the customer is not worked: its clocks
  (escalation, response, resolution) stand still until it stops waiting.
- Past ``ack_timeout`` (per priority, counted on the SLA's clock: business hours where the
  plan says so) with nobody on it: each level of the chain, its pagers, an internal note for
  the team and a public one for the requester.
- Every ``status_update_interval`` while open: a customer-visible update on the ticket.
- On recovery: pagers that can resolve get a resolve.

Everything it decides goes through the store's outbox, like the ticket actions. It writes under
the incident manager's lock (``decisions``), after reading the incident again: an incident that
a recovery resolved meanwhile gets no update, escalation or page (the helpdesk and the pagers
are asked outside the lock: a slow service never holds up a transition).

Each of those writes is also a compare-and-set on what it read (``expect``): in a cluster the
sweep runs on the coordinator, and a coordinator deposed in the middle of a sweep (or any
other writer: a recovery on another agent, a person) finds the incident changed and queues
nothing, so an escalation, an update or a "worked" mark happens once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

from monitor.actions import Action, AddNote, ResolvePage, SendPage
from monitor.clock import Clock
from monitor.config import Config, TargetConfig
from monitor.config.escalation import EscalationLevel
from monitor.delivery.integrations import IntegrationsSlot
from monitor.durations import format_duration, format_local
from monitor.metrics import Metrics
from monitor.policy import texts
from monitor.policy.followup import TicketFollowUp
from monitor.policy.reprioritising import Reprioritising
from monitor.policy.timeliness import Timeliness, deadline
from monitor.policy.watch import TicketWatch
from monitor.state import TargetState
from monitor.store import Incident, Store
from ticketing.base import Priority
from ticketing.pagers.base import Page, PageReason

log = logging.getLogger("watchdesk.policy")


class SupportPolicy:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        config: Config,
        integrations: IntegrationsSlot,
        notify: Any,
        decisions: asyncio.Lock,
        metrics: Metrics,
    ) -> None:
        self.store = store
        self.clock = clock
        self.config = config
        self.integrations = integrations
        self.notify = notify
        self._zone = ZoneInfo(config.agent.timezone)
        # (incident, level, escalated at, priority, customer, pauses) -> due: _escalation_due.
        self._escalation_dues: dict[tuple[object, ...], float] = {}
        self.decisions = decisions
        self.metrics = metrics
        self.timeliness = Timeliness(lambda: self.config, self.metrics)
        self.watch = TicketWatch(store, integrations, lambda: self.config, decisions)
        # A person changed the ticket's priority in the helpdesk: the incident takes it.
        self.reprioritising = Reprioritising(
            store, lambda: self.config, decisions, notify, self.raise_pages
        )
        # After recovery: the ticket waits on the customer, is reopened or closed.
        self.follow_up = TicketFollowUp(
            store, clock, lambda: self.config, self.watch, self.timeliness, notify, metrics
        )
        # Targets standing for incidents of no one target (a storm's), by incident target.
        self.stand_ins: Callable[[], dict[str, TargetConfig]] = dict

    def set_config(self, config: Config) -> None:
        self.config = config
        self._escalation_dues = {}
        self._zone = ZoneInfo(config.agent.timezone)

    # ---- pages, decided with the incident ---------------------------------------------------

    def _not_before(self, target: TargetConfig, now: float) -> float | None:
        """When a page for this target may go: None for now, else when the calendar of its
        SLA next opens."""
        policy = self.config.policy_for(target.customer, target.priority)
        if policy.page_hours == "always":
            return None
        start = policy.calendar.next_open(now)
        if start is None or start <= now:
            return None
        return start

    def page_actions(
        self,
        target: TargetConfig,
        pagers: list[str],
        reason: PageReason,
        details: str,
        key: str,
        now: float,
    ) -> list[Action]:
        not_before = self._not_before(target, now)
        verb = "is down" if reason == "open" else "is still down and nobody has picked it up"
        page = Page(
            dedup_key=key,
            summary=f"[{target.priority.upper()}] {target.name} {verb}",
            details=details,
            priority=target.priority,
            reason=reason,
            target=target.name,
            customer=target.customer,
        )
        return [SendPage(name, page, not_before) for name in pagers]

    def open_actions(
        self, target: TargetConfig, details: str, key: str, now: float
    ) -> list[Action]:
        """The pages of an incident that opens, if its SLA and priority page at all (by
        default only urgent issues do)."""
        if not self.config.policy_for(target.customer, target.priority).page:
            return []
        return self.page_actions(
            target, self.config.escalation.page_on_open, "open", details, key, now
        )

    async def raise_pages(
        self, target: TargetConfig, incident: Incident, priority: Priority, now: float
    ) -> list[Action]:
        """The pages of an incident raised to ``priority``: those of an issue that opens at it
        (none if its policy pages nobody), unless the incident has paged already."""
        for action in await self.store.actions_of(incident.id):
            if action.channel.startswith("pager:"):
                return []
        raised = dataclasses.replace(target, priority=priority)
        state = TargetState(status="down", last_reason=incident.last_reason)
        details = texts.page_details(raised, state, incident.first_failure_at, self._zone)
        return self.open_actions(raised, details, incident.dedup_key, now)

    async def recover_actions(self, incident: Incident, summary: str) -> list[Action]:
        """A resolve for every pager this incident paged (or queued a page for). Called by the
        incident manager with ``decisions`` held, so no escalation page slips in after it."""
        pagers = {
            action.channel.split(":", 1)[1]
            for action in await self.store.actions_of(incident.id)
            if action.channel.startswith("pager:") and action.operation == "page"
        }
        return [ResolvePage(name, summary) for name in sorted(pagers)]

    # ---- the periodic part ----------------------------------------------------------------

    async def sweep(self) -> None:
        now = self.clock.now()
        targets, stand_ins = self.config.by_name, self.stand_ins()
        for incident in await self.store.incidents(open_only=True):
            target = stand_ins.get(incident.target) or targets.get(incident.target)
            if target is None:
                continue
            interval = self._update_interval(incident)
            if interval is not None and now - (incident.last_update_at or incident.opened_at) >= (
                interval
            ):
                async with self.decisions:
                    current = await self._still_open(incident.id)
                    if current is not None:
                        await self._status_update(current, target, now)
            await self._follow(incident, target, now)
        # The agent's own alert (monitoring impaired) is no customer's issue: no SLA for it.
        running = [i for i in await self.store.watched_incidents() if i.kind != "agent"]
        self.timeliness.breaching(running, now)
        self.watch.forget(incident.id for incident in running)
        open_ids = {i.id for i in running if i.status == "open"}
        self._escalation_dues = {k: v for k, v in self._escalation_dues.items() if k[0] in open_ids}

    async def _still_open(self, incident_id: int) -> Incident | None:
        """The incident as stored now, if it is still open (call with ``decisions`` held)."""
        incident = await self.store.incident(incident_id)
        return incident if incident is not None and incident.status == "open" else None

    def _update_interval(self, incident: Incident) -> float | None:
        """How often this incident's requester hears from us; None: no status updates (by
        default medium and low issues get none)."""
        return self.config.policy_for(incident.customer, incident.priority).update_interval

    async def _status_update(self, incident: Incident, target: TargetConfig, now: float) -> None:
        interval = self._update_interval(incident)
        last = incident.last_update_at or incident.opened_at
        if interval is None or now - last < interval:
            return
        body = texts.for_customer(
            "status_update",
            self.config,
            incident.customer,
            target=incident.target,
            down_for=format_duration(now - incident.first_failure_at),
            since=self._local(incident.first_failure_at),
            last_error=incident.last_reason,
            failed=incident.failed_checks,
            worked=incident.worked_at is not None,
            team_starts=self._team_starts(target, incident, now),
            every=format_duration(interval),
        )
        if await self.store.update_incident(
            incident.id,
            {"last_update_at": now},
            [AddNote(body, public=True)],
            now,
            expect={"status": "open", "last_update_at": incident.last_update_at},
        ):
            self.notify()

    def _team_starts(self, target: TargetConfig, incident: Incident, now: float) -> str | None:
        """When the team's working hours next begin, if this incident's page waits for them:
        the requester is not told "the team has been notified" while the page is held."""
        if incident.worked_at is not None:
            return None
        start = self._not_before(dataclasses.replace(target, priority=incident.priority), now)
        return None if start is None else self._local(start)

    def _next_level(self, incident: Incident) -> tuple[EscalationLevel, float] | None:
        """The chain's next level for this incident and when it is due; None when the chain
        (with its repeats) has run out."""
        levels = self.config.escalation.levels()
        fired = incident.escalation_level
        if fired >= len(levels) * (self.config.escalation.repeat + 1):
            return None
        level = levels[fired % len(levels)]
        return level, self._escalation_due(incident, level)

    def _escalation_due(self, incident: Incident, level: EscalationLevel) -> float:
        """When ``level`` is due: its delay counted on the incident's SLA clock, from the level
        before (the first: from the page). A business-hours issue climbs the chain in working
        time (a high issue at 16:55 reaches L2 the next working day, not at 20:55), a 24/7 one
        in every hour. Kept per incident and level: the sweep asks every few seconds, and a
        business clock walks the calendar."""
        key = (
            incident.id,
            incident.escalation_level,
            incident.escalated_at,
            incident.priority,
            incident.customer,
            incident.pauses,
        )
        due = self._escalation_dues.get(key)
        if due is None:
            fired = incident.escalation_level
            since = (
                incident.escalated_at
                if fired and incident.escalated_at
                else self._paged_at(incident)
            )
            policy = self.config.policy_for(incident.customer, incident.priority)
            # None of the time the ticket waited on the customer counts.
            due = deadline(policy, since, level.after_for(incident.priority), incident.pauses)
            self._escalation_dues[key] = due
        return due

    def _paged_at(self, incident: Incident) -> float:
        """When the people on call were first paged: the open page held for business hours
        goes out when the plan's calendar opens, and nobody can have missed it before then (so
        the first escalation does not follow at the same minute)."""
        policy = self.config.policy_for(incident.customer, incident.priority)
        if policy.page_hours == "always":
            return incident.opened_at
        start = policy.calendar.next_open(incident.opened_at)
        return max(incident.opened_at, start) if start is not None else incident.opened_at

    async def _follow(self, incident: Incident, target: TargetConfig, now: float) -> None:
        """Ask the helpdesk when due (a pause of the clocks starts or ends, someone works the
        ticket); escalate when the next level's deadline, moved by pauses, has come and
        nobody works it."""
        following = self._next_level(incident) if incident.worked_at is None else None
        force = following is not None and now >= following[1]
        if self.watch.due(incident, now, force):
            info = await self.watch.read(incident, now)
            if info is not None:
                incident = await self.watch.follow_pause(incident, info, now)
                incident = await self.reprioritising.follow(incident, target, info, now)
            if incident.status != "open":
                return
            if following is not None and incident.worked_at is None:
                who = await self.watch.worked_by(incident, info)
                if who is not None:
                    async with self.decisions:
                        current = await self._still_open(incident.id)
                        if (
                            current is not None
                            and current.worked_at is None  # no ack since
                            and await self.store.update_incident(
                                incident.id,
                                {"worked_at": now},
                                expect={"status": "open", "worked_at": None},
                            )
                        ):
                            self.timeliness.worked(current, now)
                    log.info("incident %d is being worked (%s): no escalation", incident.id, who)
                    return
                following = self._next_level(incident)
        if following is None or now < following[1]:
            return
        async with self.decisions:
            current = await self._still_open(incident.id)
            if (
                current is not None
                and current.worked_at is None
                and current.escalation_level == incident.escalation_level
            ):
                await self._escalate(current, target, following[0], now)

    async def _escalate(
        self, incident: Incident, target: TargetConfig, level: EscalationLevel, now: float
    ) -> None:
        """One level of the chain: its pagers, a private note for the team and a public one
        for the requester (the policy says every escalation is communicated to them)."""
        waited = format_duration(level.after_for(incident.priority))
        pagers = level.page
        # Paged (and held for business hours) as the priority the incident has now, which a
        # reload, a shared component or a person in the helpdesk may have changed.
        target = dataclasses.replace(target, priority=incident.priority)
        details = (
            f"{incident.target} has been down since {self._local(incident.first_failure_at)} and "
            f"nobody has started working its ticket: escalated to {level.tier} ({level.role}). "
            f"Last error: {incident.last_reason}."
        )
        note = (
            f"Escalated to {level.tier} ({level.role}): nobody has started working this ticket "
            f"within {waited}" + (f"; paged {', '.join(pagers)}." if pagers else ".")
        )
        actions = self.page_actions(target, pagers, "escalation", details, incident.dedup_key, now)
        actions.append(AddNote(note, public=False))
        actions.append(AddNote(texts.escalation_note(self.config, incident, level.role), True))
        if not await self.store.update_incident(
            incident.id,
            {
                "escalated_at": now,
                "escalation_level": incident.escalation_level + 1,
                "tier": self.config.escalation.tier_after(incident.escalation_level + 1),
            },
            actions,
            now,
            expect={
                "status": "open",
                "worked_at": None,
                "escalation_level": incident.escalation_level,
            },
        ):
            return
        self.metrics.escalations.labels(level.tier, incident.priority).inc()
        log.warning(
            "incident %d of %s escalated to %s after %s without anyone on it",
            incident.id,
            incident.target,
            level.tier,
            waited,
            extra={"fields": {"event": "escalated", "incident": incident.id, "tier": level.tier}},
        )
        self.notify()

    def _local(self, timestamp: float) -> str:
        return format_local(timestamp, self._zone)
