"""The ticket after recovery: waiting on the customer, reopened by a reply, closed by silence.

The support policy says a pending ticket closes after 7 days without a reply, and "all a
customer has to do is reply, and the ticket will open again". For every backend that can report
a customer's reply (all but the webhook), on the housekeeping schedule:

- The recovery's pending (or resolved) status, once delivered, starts the wait
  (``pending_since``, see ``monitor.actions.status_delivered``). Each followed ticket is asked
  every ``poll_interval`` for its status and the customer's replies since then, and once more
  when the wait runs out.
- A reply: the ticket is set open again (unless the helpdesk did so itself), a private note
  says so, the incident shows it reopened, and the SLA clocks count again from the reply: a new
  round, judged like a new ticket (``monitor.policy.timeliness``).
- No reply within ``auto_close_after`` while it still waits: a public closing note, then
  status closed, through the outbox.
- A reopened ticket's round ends when someone sets it waiting on the customer again (the wait
  starts over), resolves or closes it; assigning it counts as working it.
- A resolved ticket someone opens again counts as reopened; a pending one someone takes back
  (open, no reply) or one closed in the helpdesk is no longer followed.

Every decision is one write of the store (the incident's change and its actions together)
under ``decisions``, on the incident as stored: a restart repeats none of it. A ticket with our
own changes still on their way (queued in the outbox) is not judged before they arrived.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

from monitor.actions import Action, AddNote, SetStatus
from monitor.clock import Clock
from monitor.config import Config
from monitor.durations import format_local
from monitor.metrics import Metrics
from monitor.policy import texts
from monitor.policy.timeliness import Timeliness
from monitor.policy.watch import TicketWatch
from monitor.store import Incident, Store
from ticketing.base import TicketInfo

log = logging.getLogger("watchdesk.policy")


class TicketFollowUp:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        config: Callable[[], Config],
        watch: TicketWatch,
        timeliness: Timeliness,
        notify: Callable[[], None],
        metrics: Metrics,
    ) -> None:
        self.store = store
        self.clock = clock
        self._config = config
        self.watch = watch
        self.timeliness = timeliness
        self.notify = notify
        self.metrics = metrics
        self.decisions = watch.decisions

    async def sweep(self) -> None:
        """Follow every resolved incident's ticket that waits, was resolved or was reopened."""
        if not self.watch.integrations.current.backend.reports_replies:
            return  # nothing to see a reply with: the helpdesk's own rules apply
        now = self.clock.now()
        for incident in await self.store.watched_incidents():
            if incident.status == "open":
                continue  # the support policy's sweep follows open incidents
            try:
                if incident.reopened:
                    await self._reopened(incident, now)
                else:
                    await self._waiting(incident, now)
            except Exception:
                log.exception("following the ticket of incident %d failed", incident.id)

    # ---- waiting on the customer (pending), or resolved ------------------------------------

    async def _waiting(self, incident: Incident, now: float) -> None:
        since = incident.pending_since if incident.pending_since is not None else now
        ends = since + self._config().auto_close_after
        if not self.watch.due(incident, now, force=now >= ends):
            return
        if await self._ours_on_the_way(incident):
            return
        info = await self.watch.read(incident, now, replies_since=since)
        if info is None:
            return  # cannot tell: neither close nor reopen blind
        replied = info.last_customer_reply_at
        if info.status == "closed":
            await self._settle(incident, {"ticket_state": "closed", "closed_at": now}, "closed")
        elif replied is not None:
            await self._reopen(incident, info, replied, now, "The customer replied")
        elif incident.ticket_state == "pending":
            if info.waiting_on_customer:
                if now >= ends:
                    await self._close(incident, now)
            elif info.status == "resolved":
                await self._settle(incident, {"ticket_state": "resolved"}, "resolved by hand")
            else:
                await self._settle(incident, {"ticket_state": "open"}, "taken back by the team")
        elif info.waiting_on_customer:
            changes = {"ticket_state": "pending", "pending_since": now}
            await self._settle(incident, changes, "set pending by hand")
        elif info.status != "resolved":
            await self._reopen(incident, info, now, now, "Someone reopened it in the helpdesk")
        elif now >= ends:
            await self._settle(
                incident, {"ticket_state": "settled"}, "no reply: no longer followed"
            )

    async def _close(self, incident: Incident, now: float) -> None:
        after = self._config().auto_close_after
        body = texts.closing_note(self._config(), incident, after)
        actions: list[Action] = [AddNote(body, public=True), SetStatus("closed")]
        if await self._write(incident, {"ticket_state": "closed", "closed_at": now}, actions, now):
            self.metrics.tickets_auto_closed.labels(
                incident.priority, incident.customer or ""
            ).inc()
            log.info(
                "ticket %s of incident %d closed after %s without a reply from the customer",
                incident.ticket_id,
                incident.id,
                texts.in_words(after),
                extra={"fields": {"event": "ticket_auto_closed", "incident": incident.id}},
            )

    async def _reopen(
        self, incident: Incident, info: TicketInfo, at: float, now: float, why: str
    ) -> None:
        """A new round: the ticket open again, the clocks counting from ``at``."""
        count = incident.reopens + 1
        changes: dict[str, Any] = {
            "ticket_state": "reopened",
            "reopened_at": at,
            "reopens": count,
            "reopen_worked_at": None,
            "pending_since": None,
        }
        reopened = dataclasses.replace(incident, **changes)
        actions: list[Action] = []
        if info.waiting_on_customer or info.status == "resolved":
            actions.append(SetStatus("open"))  # the helpdesk did not reopen it itself
        actions.append(AddNote(self._reopen_note(reopened, why), public=False))
        if await self._write(incident, changes, actions, now):
            self.metrics.tickets_reopened.labels(incident.priority, incident.customer or "").inc()
            log.warning(
                "ticket %s of incident %d (%s) reopened: %s",
                incident.ticket_id,
                incident.id,
                incident.target,
                why.lower(),
                extra={"fields": {"event": "ticket_reopened", "incident": incident.id}},
            )

    def _reopen_note(self, reopened: Incident, why: str) -> str:
        zone = ZoneInfo(self._config().agent.timezone)

        def when(moment: float) -> str:
            return format_local(moment, zone) if moment != float("inf") else "no deadline"

        at = reopened.clock_start
        times = "once" if reopened.reopens == 1 else f"{reopened.reopens} times"
        return (
            f"{why} on {when(at)}: the ticket is open again (reopened {times} since "
            f"{reopened.target} recovered). The SLA clocks count again from then: respond by "
            f"{when(self.timeliness.response_due(reopened))}, resolve by "
            f"{when(self.timeliness.resolution_due(reopened))}."
        )

    # ---- a reopened ticket's round ---------------------------------------------------------

    async def _reopened(self, incident: Incident, now: float) -> None:
        if not self.watch.due(incident, now) or await self._ours_on_the_way(incident):
            return
        info = await self.watch.read(incident, now)
        if info is None:
            return
        ended = info.waiting_on_customer or info.status in ("resolved", "closed")
        changes: dict[str, Any] = {}
        if (info.assignee or ended) and incident.reopen_worked_at is None:
            changes["reopen_worked_at"] = now
        if info.status == "closed":
            changes.update(ticket_state="closed", closed_at=now)
        elif ended:
            state = "pending" if info.waiting_on_customer else "resolved"
            changes.update(ticket_state=state, pending_since=now)
        if not changes or not await self._write(incident, changes, [], now):
            return
        if "reopen_worked_at" in changes:
            self.timeliness.worked(incident, now)
        if ended:
            answered = incident.reopen_worked_at or now
            self.timeliness.resolved(dataclasses.replace(incident, reopen_worked_at=answered), now)
            log.info(
                "reopened ticket %s of incident %d is %s again",
                incident.ticket_id,
                incident.id,
                changes["ticket_state"],
            )

    # ---- shared ----------------------------------------------------------------------------

    async def _ours_on_the_way(self, incident: Incident) -> bool:
        """Whether an action of ours on this ticket (not a customer's notice ticket) has not
        reached the helpdesk yet: what it shows now says nothing about the customer before it
        has."""
        actions = await self.store.actions_of(incident.id)
        return any(
            a.channel == "ticket" and a.notice is None and a.state != "done" for a in actions
        )

    async def _settle(self, incident: Incident, changes: dict[str, Any], why: str) -> None:
        if await self._write(incident, changes, [], self.clock.now()):
            log.info(
                "ticket %s of incident %d: %s (%s)",
                incident.ticket_id,
                incident.id,
                changes["ticket_state"],
                why,
            )

    async def _write(
        self, incident: Incident, changes: dict[str, Any], actions: list[Action], now: float
    ) -> bool:
        """The decision, if the incident is still where it was when it was taken."""
        async with self.decisions:
            current = await self.store.incident(incident.id)
            if (
                current is None
                or current.ticket_state != incident.ticket_state
                or current.reopens != incident.reopens
            ):
                return False
            expect = {"ticket_state": incident.ticket_state, "reopens": incident.reopens}
            if not await self.store.update_incident(
                incident.id, changes, actions, now, expect=expect
            ):
                return False
        if actions:
            self.notify()
        return True
