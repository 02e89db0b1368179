"""How a storm is told (``monitor.policy.storms``): its one page, each affected customer's
ticket listing their targets, a note per customer for what joined or recovered since the last
telling (at most one per ``storm.group_wait``), and the target that stands for the storm where
the support policy needs one (its escalation chain). Part of ``Storms``.

A customer's ticket is their notice of the storm's incident (``customer_notices``, as for a
shared component); what it told is marked on the member rows in the same transaction
(``Store.tell_storm``), so a restart tells nothing twice.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from monitor.actions import Action, AddNote, CreateTicket, SendPage
from monitor.config import Config, TargetConfig
from monitor.policy import storm_texts
from monitor.policy.opening import requester
from monitor.policy.shared_outage import notice_key
from monitor.store import Incident, Store, StormMember
from ticketing.base import TicketDraft

if TYPE_CHECKING:
    from monitor.policy.escalation import SupportPolicy

log = logging.getLogger("watchdesk.incidents")

WAVE_TARGET = "the outage of many services"
GROUP_TARGET = "the outage of group "
# The key of the storm that more than ``threshold`` targets make, whatever their groups.
WAVE = "*"
# Whose notice ticket lists the targets of no customer (no customer name can be this).
NO_CUSTOMER = "(none)"


def storm_target(key: str) -> str:
    """The target name of a storm's incident, as people read it in the texts every incident
    gets ("An update on the outage of group rack-7: ..."); no configured target can have it
    (names hold no spaces)."""
    return WAVE_TARGET if key == WAVE else GROUP_TARGET + key


def storm_key(target: str) -> str | None:
    """The storm's key of an incident target (None: not a storm's)."""
    if target == WAVE_TARGET:
        return WAVE
    return target[len(GROUP_TARGET) :] if target.startswith(GROUP_TARGET) else None


@dataclass
class Storm:
    incident: Incident
    members: dict[str, StormMember]  # every member, those that left too
    last_join: float
    tell_at: float | None = None  # the customers are told then (None: nothing new)
    told_at: float | None = None
    paged: bool = False
    arrivals: list[float] = field(default_factory=list)

    @property
    def key(self) -> str:
        return storm_key(self.incident.target) or WAVE

    def active(self) -> list[StormMember]:
        return [m for m in self.members.values() if m.left_at is None]


class StormTelling:
    """Mixed into ``Storms``, which holds these."""

    store: Store
    config: Config
    notify: Callable[[], None]
    policy: SupportPolicy | None
    storms: dict[str, Storm]
    _targets: dict[str, TargetConfig]

    # ---- telling ---------------------------------------------------------------------------

    def _schedule(self, storm: Storm, now: float) -> None:
        """Tell what changed at the next telling: not before ``group_wait`` after the last."""
        if storm.tell_at is None:
            last = storm.told_at if storm.told_at is not None else now
            storm.tell_at = max(now, last + self.config.storm.group_wait)

    @staticmethod
    def _untold(storm: Storm) -> bool:
        return any(
            (m.left_at is None and m.told != "down") or (m.left_at is not None and m.told == "down")
            for m in storm.members.values()
        )

    def next_tell(self) -> float | None:
        return min((s.tell_at for s in self.storms.values() if s.tell_at is not None), default=None)

    async def tell_due(self, now: float) -> None:
        """Tell the customers of every storm that is due (call with the decisions lock)."""
        for storm in list(self.storms.values()):
            if storm.tell_at is None or storm.tell_at > now:
                continue
            storm.tell_at, storm.told_at = None, now
            try:
                await self._page(storm, now)
                await self._tell(storm, now)
            except Exception:
                log.exception("could not tell about storm incident %d; retrying", storm.incident.id)
                storm.tell_at = now + 5.0

    async def _page(self, storm: Storm, now: float) -> None:
        """The storm's one page (its escalation chain pages later, on its own)."""
        if storm.paged or self.policy is None:
            return
        incident = storm.incident
        if any(a.channel.startswith("pager:") for a in await self.store.actions_of(incident.id)):
            storm.paged = True
            return
        target = self.stand_in(storm)
        if target is None:
            return
        members = storm.active() or list(storm.members.values())
        customers = len({m.customer for m in members})
        details = storm_texts.page(self.config, members, customers, self._group(storm))
        summary = (
            f"[{incident.priority.upper()}] {incident.target}: {len(members)} targets of "
            f"{customers} customer(s) down together"
        )
        pages: list[Action] = [
            dataclasses.replace(action, page=dataclasses.replace(action.page, summary=summary))
            for action in self.policy.open_actions(target, details, incident.dedup_key, now)
            if isinstance(action, SendPage)
        ]
        await self.store.update_incident(incident.id, {}, pages, now)
        storm.paged = True
        self.notify()

    def _group(self, storm: Storm) -> str | None:
        return None if storm.key == WAVE else storm.key

    async def _tell(self, storm: Storm, now: float) -> None:
        incident = storm.incident
        notices = {n.customer for n in await self.store.notices(incident.id)}
        customers: dict[str, list[StormMember]] = {}
        for member in storm.members.values():
            customers.setdefault(member.customer, []).append(member)
        for customer, members in sorted(customers.items()):
            down = [m for m in members if m.left_at is None and m.told != "down"]
            up = [m.target for m in members if m.left_at is not None and m.told == "down"]
            if not down and not (up and customer in notices):
                continue
            told = {m.target: "down" for m in down} | dict.fromkeys(up, "up")
            named = [m.target for m in members if m.told != "none" or m.target in told]
            still = [m.target for m in members if m.left_at is None]
            if customer in notices:
                body = storm_texts.note(self.config, customer, down, up, still)
                action: Action = AddNote(body, public=True, notice=customer)
                await self.store.tell_storm(incident.id, customer, told, [action], named, now)
            else:
                key = notice_key(incident.dedup_key, customer)
                draft = self._draft(storm, customer, down, key, len(customers) > 1)
                action = CreateTicket(draft, notice=customer)
                if not await self.store.tell_storm(
                    incident.id, customer, told, [action], named, now, notice_key=key
                ):
                    continue
            for target, what in told.items():
                storm.members[target] = dataclasses.replace(storm.members[target], told=what)
            log.info("storm incident %d: %s told", incident.id, customer)
        self.notify()

    def _draft(
        self,
        storm: Storm,
        customer: str,
        down: Sequence[StormMember],
        key: str,
        others: bool,
    ) -> TicketDraft:
        incident = storm.incident
        names = [m.target for m in down]
        verb = "is" if len(names) == 1 else "are"
        who = None if customer == NO_CUSTOMER else customer
        return TicketDraft(
            dedup_key=key,
            subject=f"[{incident.priority.upper()}] {storm_texts.names_summary(names)} {verb} down",
            description=storm_texts.ticket(
                self.config, customer, down, incident, self._group(storm), others
            ),
            priority=incident.priority,
            requester_email=requester(self.config, who),
            target=incident.target,
            customer=who,
            tags=("watchdesk", key, "storm", f"parent-{incident.dedup_key}"),
        )

    # ---- the escalation chain's view -------------------------------------------------------

    def stand_in(self, storm: Storm) -> TargetConfig | None:
        """A target standing for the storm where the support policy needs one (its pages and
        its escalation chain): named after the storm, of no customer, at its priority."""
        names = [m.target for m in storm.members.values() if m.target in self._targets]
        if not names:
            return None
        return dataclasses.replace(
            self._targets[names[0]],
            name=storm.incident.target,
            customer=None,
            priority=storm.incident.priority,
            depends_on=(),
            tags=(),
            group=None,
            description=f"{len(storm.members)} targets down together",
        )

    def stand_ins(self) -> dict[str, TargetConfig]:
        found = {}
        for storm in self.storms.values():
            target = self.stand_in(storm)
            if target is not None:
                found[storm.incident.target] = target
        return found
