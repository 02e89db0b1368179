"""This agent as a member of its cluster: its leases, what they let it probe, write and send.

Every ``lease_renew`` one renew (``monitor.store.postgres.leases``, one transaction) keeps the
agent's slots, takes free ones up to its fair share, keeps or takes the coordinator lease.
Then the agent follows what the database said:

- **Slots it no longer holds** (another agent took them after they expired: this agent was
  paused, cut off, or too slow) are dropped at once: their targets leave the scheduler and
  the agent's memory, unwritten changes are counted as fenced writes.
- **Slots it gained** bring their targets in: state and open incidents are read from the
  database (the previous owner wrote them, fenced), then the scheduler probes them.
- **Over its share + 1** it hands the excess over (the one slot of slack keeps agents from
  passing slots back and forth), and down to ``slots // agents`` while another live agent
  holds fewer than that (it just joined, and finds nothing free): a bounded number per
  renew, the targets leave the scheduler, their state is flushed while the leases are still
  its own, then the slots are released and the others are woken to take them.

It fences itself on its own monotonic clock: from ``last renew + lease_ttl - margin`` on it
writes nothing (``Fencing.fences`` refuses) and sends nothing (``live`` is false), and
``/readyz`` says so, until a renew succeeds again. While the database is away it keeps
probing and its memory of each target (the failing streaks with their real start), and
renews the same slots under the same epochs when the database is back, since nobody could
take them meanwhile without also being able to reach the database; an agent takes another's
expired slots only after being connected for a whole ``lease_ttl``, so that after an outage
of the database every agent gets back its own.

A graceful stop releases everything (after the agent's last flush): the others, woken by a
NOTIFY, take the slots at once; one whose database does not answer gives it up (``giveup``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

from monitor import __version__
from monitor.cluster.dblost import DatabaseWatch
from monitor.cluster.giveup import GiveUp
from monitor.cluster.metrics import ClusterMetrics
from monitor.cluster.slots import slot_map
from monitor.config import Config
from monitor.errors import StoreError
from monitor.store.fence import Fence, Fenced, WriteScope
from monitor.store.postgres.connect import describe
from monitor.store.postgres.leases import LeaseTable, Registration, Renewal
from monitor.waits import wait_set
from ticketing.pagers.base import Pager

log = logging.getLogger("watchdesk.cluster")


class Handoff(Protocol):
    """How the agent takes targets in and lets them go (``monitor.roster.Roster``)."""

    async def arrive(self, names: Sequence[str]) -> None: ...

    async def leave(self, names: Sequence[str], flush: bool) -> None: ...


def margin_of(ttl: float) -> float:
    """How long before its lease's expiry an agent stops trusting it."""
    return max(0.2, ttl / 5)


class ClusterMember:
    def __init__(
        self,
        config: Config,
        url: str,
        metrics: ClusterMetrics,
        pagers: Callable[[], Mapping[str, Pager]],
        count_page: Callable[[str, str], None],
    ) -> None:
        section = config.cluster
        assert section is not None
        self.vantage = section.vantage
        self.slots = section.slots
        self.ttl = section.lease_ttl
        self.every = section.lease_renew
        self.margin = margin_of(self.ttl)
        host = socket.gethostname()
        self.agent_id = f"{host}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.metrics = metrics
        self.leases = LeaseTable(
            url,
            Registration(
                self.agent_id, self.vantage, host, os.getpid(), config.agent.listen, __version__
            ),
            self.slots,
            self.ttl,
            limit=min(self.ttl / 2, max(self.every, 2.0)),
        )
        self.where = describe(url)
        self.give_up = GiveUp(self.where, self.leases.abandon)
        self.watch = DatabaseWatch(
            section.db_lost_page_after,
            pagers,
            lambda: list(self._page_on),
            self.agent_id,
            self.where,
            count_page,
        )
        self._page_on: list[str] = []
        self.handoff: Handoff | None = None
        # Called when a renew succeeds after failing: the store reconnects at once.
        self.on_database_back: Callable[[], Awaitable[None]] | None = None
        self.owned: dict[int, int] = {}  # slot -> epoch, as the last renew left them
        self.coordinator_epoch: int | None = None
        self.agents = 0
        self.share = 0
        self._valid_until = 0.0  # monotonic: until then the agent vouches for its leases
        self._connected_since: float | None = None
        self._last_renew: float | None = None
        self._joined = False
        self._refused: set[int] = set()  # slots the database refused a write for
        self._handing_over: set[int] = set()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._watching: asyncio.Task[None] | None = None
        self._slot_of: dict[str, int] = {}
        self._canaries: set[str] = set()
        self._members: dict[int, list[str]] = {}
        # At most this many slots are handed over per renew.
        self.release_bound = max(64, self.slots // 2)
        self.set_config(config)

    # ---- what the agent asks -------------------------------------------------------------

    def set_config(self, config: Config) -> None:
        """The targets' slots (and who is paged about the database) of this config. Canaries
        have none: they are each agent's own view of the world, probed by every agent."""
        self._canaries = set(config.agent.canaries)
        sharded = [t for t in config.targets if t.name not in self._canaries]
        self._slot_of = slot_map(sharded, self.slots)
        members: dict[int, list[str]] = {}
        for name, slot in self._slot_of.items():
            members.setdefault(slot, []).append(name)
        self._members = members
        self._page_on = list(config.escalation.page_on_open)

    def here(self, target: str) -> bool:
        if target in self._canaries:
            return True
        slot = self._slot_of.get(target)
        return slot is not None and slot in self.owned and slot not in self._handing_over

    def slot(self, target: str) -> int | None:
        return self._slot_of.get(target)

    def live(self) -> bool:
        return time.monotonic() < self._valid_until

    def coordinator(self) -> bool:
        return self.coordinator_epoch is not None and self.live()

    def problems(self) -> list[str]:
        """Nothing while the leases are vouched for (whether the store takes a write then
        decides, as it does for one agent alone); else why not."""
        if self.live():
            return []
        if self.watch.lost_since is not None:
            away = time.monotonic() - self.watch.lost_since
            return [
                f"cluster: the {self.where} has been unreachable for {away:.0f}s: probing goes "
                "on, nothing is written or sent"
            ]
        return ["cluster: this agent's leases are not renewed: it writes and sends nothing"]

    def view(self) -> dict[str, Any]:
        renewed = self._last_renew
        return {
            "agent": self.agent_id,
            "vantage": self.vantage,
            "live": self.live(),
            "coordinator": self.coordinator(),
            "slots": self.slots,
            "slots_owned": len(self.owned),
            "owned": {str(slot): epoch for slot, epoch in sorted(self.owned.items())},
            "share": self.share,
            "agents": self.agents,
            "seconds_since_renew": None if renewed is None else time.monotonic() - renewed,
            "database_unreachable_since": self.watch.lost_at,
        }

    # ---- fencing (asked by the store) ------------------------------------------------------

    @property
    def check_margin(self) -> float:
        return self.margin / 2

    @property
    def idle_limit(self) -> float:
        return self.margin / 3

    def fences(self, targets: Iterable[str], scope: WriteScope) -> list[Fence]:
        names = {*targets, *scope.targets}
        if not names and not scope.coordinator:
            return []
        if not self.live():
            self.metrics.fenced["expired"].inc()
            raise Fenced("write refused: this agent's leases are not renewed", "expired")
        found: dict[int | None, Fence] = {}
        # Names without a slot (a canary, the agent's impairment alert, a storm) need the
        # agent live, and the scope's leases, nothing more.
        for name, slot in sorted((n, self._slot_of[n]) for n in names if n in self._slot_of):
            epoch = self.owned.get(slot)
            if epoch is None:
                self.metrics.fenced["lost"].inc()
                raise Fenced(f"write refused: this agent does not hold the slot of {name}", "lost")
            found[slot] = Fence(self.agent_id, epoch, self.vantage, slot)
        if scope.coordinator:
            if self.coordinator_epoch is None:
                self.metrics.fenced["lost"].inc()
                raise Fenced("write refused: this agent is not the coordinator", "lost")
            found[None] = Fence(self.agent_id, self.coordinator_epoch)
        return list(found.values())

    def refused(self, fences: Sequence[Fence], reason: str) -> None:
        self.metrics.fenced[reason].inc()
        if reason != "lost":
            return  # still this agent's, about to run out: the next renew keeps it
        for fence in fences:
            if fence.slot is None:
                if self.coordinator_epoch == fence.epoch:
                    self.coordinator_epoch = None
                    self.metrics.coordinator.set(0)
            elif self.owned.get(fence.slot) == fence.epoch:
                del self.owned[fence.slot]
                self._refused.add(fence.slot)
        log.warning(
            "the database refused a write: %d lease(s) are no longer this agent's",
            len(fences),
            extra={"fields": {"event": "fenced", "slots": [f.slot for f in fences]}},
        )
        self._wake.set()

    def refused_send(self) -> None:
        self.metrics.fenced["claim"].inc()

    # ---- the renew loop --------------------------------------------------------------------

    async def join(self) -> None:
        """The first renew, before the agent starts probing: its share of the free slots."""
        await self._tick()

    def start(self) -> None:
        """Renew every ``lease_renew`` from now on (and when another agent says so)."""
        self._tasks = [
            asyncio.create_task(self._loop(), name="watchdesk-leases"),
            asyncio.create_task(
                self.leases.listen(self._wake.set, self.every), name="watchdesk-listen"
            ),
        ]

    async def _loop(self) -> None:
        while True:
            await wait_set(self._wake, self.every)
            self._wake.clear()
            try:
                await self._tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("the lease renew failed inside the agent")

    async def _tick(self) -> None:
        lost = sorted(self._refused)
        self._refused.clear()
        if lost:
            await self._leave(lost, flush=False)
        started = time.monotonic()
        connected = self._connected_since
        try:
            renewal = await self.leases.renew(
                take_others=connected is not None and started - connected >= self.ttl,
                announce=not self._joined,
            )
        except StoreError as error:
            self._connected_since = None
            if self.watch.lost_since is None:
                log.error("cannot renew the leases: %s", error)
            self.watch.unreachable()
            self.metrics.live.set(1 if self.live() else 0)
            self._check_database()
            return
        self.metrics.renew_seconds.observe(time.monotonic() - started)
        self._joined = True
        self._valid_until = started + self.ttl - self.margin
        self._last_renew = started
        if connected is None:
            self._connected_since = started
        if self.watch.lost_since is not None and self.on_database_back is not None:
            await self.on_database_back()
        self.watch.reachable()
        await self._follow(renewal)
        await self._rebalance(renewal)
        self._publish()
        self._check_database()

    def _check_database(self) -> None:
        """Page (or resolve) about the database beside the renews, never holding one up: a
        pager that takes its time must not delay the renew that finds the database back."""
        if self._watching is None or self._watching.done():
            self._watching = asyncio.create_task(self.watch.check(), name="watchdesk-dblost")

    async def _follow(self, renewal: Renewal) -> None:
        """Drop the slots that are no longer this agent's, bring in the ones it gained."""
        before = dict(self.owned)
        held = renewal.held
        gone = sorted(s for s, epoch in before.items() if held.get(s) != epoch)
        gained = sorted(s for s, epoch in held.items() if before.get(s) != epoch)
        self.agents, self.share = renewal.agents, renewal.share
        if renewal.coordinator != self.coordinator_epoch:
            log.info(
                "this agent %s the coordinator",
                "is now" if renewal.coordinator is not None else "is no longer",
            )
        self.coordinator_epoch = renewal.coordinator
        if gone:
            for slot in gone:
                self.owned.pop(slot, None)
            log.warning(
                "lost %d slot(s) to other agents (their leases expired): %s",
                len(gone),
                _slots(gone),
                extra={"fields": {"event": "slots_lost", "count": len(gone)}},
            )
            await self._leave(gone, flush=False)
        if gained:
            self.owned.update({slot: held[slot] for slot in gained})
            log.info(
                "took %d slot(s) (%d held, fair share %d of %d among %d agent(s))",
                len(gained),
                len(self.owned),
                renewal.share,
                self.slots,
                renewal.agents,
                extra={"fields": {"event": "slots_taken", "count": len(gained)}},
            )
            if self.handoff is not None:
                await self.handoff.arrive(self._names(gained))

    async def _rebalance(self, renewal: Renewal) -> None:
        """Hand over what is over share + 1 (over the floor share while another agent is
        short of it): flushed first, then released."""
        floor = self.slots // max(1, renewal.agents)
        starved = renewal.fewest_elsewhere is not None and renewal.fewest_elsewhere < floor
        excess = len(self.owned) - (floor if starved else renewal.share + 1)
        if excess <= 0:
            return
        give = sorted(self.owned)[-min(excess, self.release_bound) :]
        # Probed no more from now, but still held (and fencing writes) until the flush is done.
        self._handing_over = set(give)
        try:
            await self._leave(give, flush=True)
        finally:
            released = {slot: self.owned.pop(slot) for slot in give}
            self._handing_over = set()
        try:
            await self.leases.release(released)
        except StoreError as error:
            log.warning("could not release %d slot(s), they expire instead: %s", len(give), error)
            return
        log.info(
            "handed %d slot(s) over (fair share %d of %d among %d agents)",
            len(give),
            renewal.share,
            self.slots,
            renewal.agents,
            extra={"fields": {"event": "slots_released", "count": len(give)}},
        )

    async def _leave(self, slots: Sequence[int], flush: bool) -> None:
        if self.handoff is not None:
            await self.handoff.leave(self._names(slots), flush)

    def _names(self, slots: Iterable[int]) -> list[str]:
        return [name for slot in slots for name in self._members.get(slot, ())]

    def _publish(self) -> None:
        self.metrics.slots_owned.set(len(self.owned))
        self.metrics.agents.set(self.agents)
        self.metrics.coordinator.set(1 if self.coordinator() else 0)
        self.metrics.live.set(1 if self.live() else 0)

    async def _cancel(self) -> None:
        tasks = [*self._tasks, *([self._watching] if self._watching is not None else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks, self._watching = [], None

    async def leave(self) -> None:
        """A graceful stop (the agent has flushed its state): release every lease now."""
        await self._cancel()
        held = len(self.owned)
        self.owned, self.coordinator_epoch, self._valid_until = {}, None, 0.0
        try:
            await self.leases.leave()
        except StoreError as error:
            log.warning("could not release the leases, they expire instead: %s", error)
            return
        log.info("released %d slot(s) for the other agents", held)

    async def close(self) -> None:
        await self._cancel()
        await self.leases.close()


def _slots(slots: Sequence[int]) -> str:
    shown = ", ".join(str(s) for s in slots[:10])
    return shown + (f" and {len(slots) - 10} more" if len(slots) > 10 else "")
