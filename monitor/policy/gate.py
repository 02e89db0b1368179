"""The gate an incident opens through: what a target that is down, with no incident of its
own, does now, and why (``Verdict``). Part of ``IncidentManager``.

In order: only results of probes run since the start count; a down that a resolved incident
covers opens nothing; nor does maintenance or a mute; a child behind a down parent is named on
the parent's ticket; the canaries (``canaries``: impaired, undecided, fresh probes after an
impairment); confirmation from several vantages (``confirmation``: held until enough say
down); then grouping (``storms``: join a storm, open one, wait ``group_wait`` for
company) or an incident of its own. ``watchdesk explain`` reads the same ``verdict``.

A verdict "hold" names when to decide again at the latest; a timer (``start_timers``) decides
then, or earlier when something it waited for happened (a canary's verdict, a fresh failure).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from zoneinfo import ZoneInfo

from monitor.clock import Clock
from monitor.config import Config, TargetConfig
from monitor.durations import format_local
from monitor.metrics import Metrics
from monitor.policy.canaries import Canaries
from monitor.policy.confirmation import Confirmation
from monitor.policy.maintenance import window_for
from monitor.policy.shared_outage import SharedOutages
from monitor.policy.storms import Storms
from monitor.policy.verdict import Verdict
from monitor.state import States, TargetState, Transition
from monitor.store import Incident, StateRow
from monitor.waits import wait_set

log = logging.getLogger("watchdesk.incidents")

# The longest the timer sleeps without looking (a hold it was not woken for is met this late).
TIMER_IDLE = 1.0


class OpenRules:
    """Mixed into ``IncidentManager``, which holds these."""

    config: Config
    clock: Clock
    metrics: Metrics
    states: States
    decisions: asyncio.Lock
    shared: SharedOutages
    canaries: Canaries
    confirmation: Confirmation
    storms: Storms
    muted: Callable[[str], bool]
    _zone: ZoneInfo
    _open: dict[str, Incident]
    _fresh: set[str]
    _last_resolved: dict[str, float]
    _expected: dict[str, int]
    _targets: Mapping[str, TargetConfig]
    # Targets waiting for a verdict (held), when to decide each again, and who fails now.
    _waiting: set[str]
    _due: dict[str, float]
    _failing: set[str]
    _wake: asyncio.Event
    _timer: asyncio.Task[None] | None

    async def _reconcile(
        self, target: TargetConfig, cause: tuple[StateRow, Transition] | None = None
    ) -> bool:
        raise NotImplementedError

    # ---- the verdict -----------------------------------------------------------------------

    def blocked(self, target: TargetConfig, state: TargetState, now: float) -> Verdict | None:
        """A reason the target opens nothing of its own now, before any grouping; None: none.
        The last of them, a cluster's confirmation from several vantages (a quorum of their
        verdicts, asked when due: ``held_back`` then the quorum), comes before any grouping:
        a storm counts a target only once its own down is confirmed."""
        return self.held_back(target, state, now) or self.confirmation.verdict(target, now)

    def held_back(self, target: TargetConfig, state: TargetState, now: float) -> Verdict | None:
        """``blocked`` but for the quorum: what holds a target back before it is asked."""
        name = target.name
        if name not in self._fresh:
            return Verdict(
                "none",
                "no probe of it has run since the agent started: only fresh results open one",
            )
        resolved = self._last_resolved.get(name)
        if resolved is not None and (state.since or 0.0) <= resolved:
            return Verdict(
                "none",
                f"its incident was resolved at {format_local(resolved, self._zone)} while it "
                "was down: it opens no new one until it has recovered",
            )
        window = window_for(target, self.config.maintenance, now, self._zone)
        if window is not None:
            reason = f" ({window.reason})" if window.reason else ""
            return Verdict("none", f"it is in a maintenance window{reason}")
        if self.muted(name):
            return Verdict("none", "it is muted (watchdesk mute)")
        parent = self.shared.parent_down(target, self.states)
        if parent is not None:
            return Verdict(
                "affected",
                f"its parent {parent} is down (depends_on): it is named on {parent}'s ticket",
                parent=parent,
            )
        waiting = self._parent_failing(target, state, now)
        if waiting is not None:
            return waiting
        # The agent's own view first: an impaired vantage asks no other.
        return self.canaries.verdict(name, state, now)

    def _parent_failing(
        self, target: TargetConfig, state: TargetState, now: float
    ) -> Verdict | None:
        """A parent failing but not down yet decides first: if it goes down, the child is
        named on its ticket (never in a storm of its own). Waits at most as long as the parent
        needs from its first failure to its verdict."""
        for name in target.depends_on:
            parent, parent_state = self._targets.get(name), self.states.get(name)
            if parent is None or parent_state is None or parent_state.status == "down":
                continue
            if parent_state.consecutive_failures == 0:
                continue
            until = (state.since or now) + parent.failure_threshold * parent.interval
            if now < until:
                return Verdict(
                    "hold",
                    f"its parent {name} is failing too ({parent_state.consecutive_failures} of "
                    f"{parent.failure_threshold}): waiting for its verdict (depends_on)",
                    until=until,
                )
        return None

    def verdict(self, target: TargetConfig, state: TargetState, now: float) -> Verdict:
        """What the rules say about ``target`` (down, no incident of its own), acting on
        nothing: what ``watchdesk explain`` shows."""
        blocked = self.blocked(target, state, now)
        if blocked is not None:
            return blocked
        arrived = self.storms.arrival(target.name)
        return self._grouping(target, now, now if arrived is None else arrived)

    def _grouping(self, target: TargetConfig, now: float, arrived: float) -> Verdict:
        name = target.name
        return self.storms.verdict(
            target,
            now,
            arrived,
            lambda: self._company(name, now),
            lambda: self._others_failing(name),
        )

    def _company(self, name: str, now: float) -> list[str]:
        """The other targets waiting for their verdict that could go with ``name`` now."""
        found = []
        for other in sorted(self._waiting):
            target, state = self._targets.get(other), self.states.get(other)
            if other == name or target is None or state is None or state.status != "down":
                continue
            if other in self._open or other in self.storms.member_of or self._expected.get(other):
                continue
            if self.blocked(target, state, now) is None:
                found.append(other)
        return found

    def _others_failing(self, name: str) -> bool:
        """Another target fails now and has no incident: ``name`` may not be alone."""
        return any(
            other != name
            and other not in self._open
            and other not in self.storms.member_of
            and other not in self.canaries.names
            for other in self._failing
        )

    # ---- holds -----------------------------------------------------------------------------

    def _hold(self, name: str, until: float) -> None:
        self._waiting.add(name)
        self._due[name] = until
        self._wake.set()
        self.metrics.targets_waiting.set(len(self._waiting))

    def _settled(self, name: str) -> None:
        """``name`` waits no more (decided, or no longer down)."""
        if name in self._waiting:
            self._waiting.discard(name)
            self.metrics.targets_waiting.set(len(self._waiting))
        self._due.pop(name, None)

    def _due_now(self, names: Iterable[str]) -> None:
        """Decide these again at once: what they waited for may have happened."""
        now = self.clock.now()
        for name in names:
            self._due[name] = min(self._due.get(name, now), now)
        self._wake.set()

    def next_due(self) -> float | None:
        dues = [*self._due.values()]
        tell = self.storms.next_tell()
        if tell is not None:
            dues.append(tell)
        return min(dues, default=None)

    async def release_due(self) -> None:
        """Decide what is due: held targets, and storms whose customers are to be told."""
        now = self.clock.now()
        due_at = self.next_due()
        if due_at is None or due_at > now:
            return
        async with self.decisions:
            for name in sorted(n for n, at in self._due.items() if at <= now):
                self._due.pop(name, None)
                target = self._targets.get(name)
                if target is not None:
                    await self._reconcile(target)
            await self.storms.tell_due(self.clock.now())

    def start_timers(self) -> None:
        self._timer = asyncio.create_task(self._run_timers(), name="watchdesk-holds")

    async def stop_timers(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            await asyncio.gather(self._timer, return_exceptions=True)
            self._timer = None

    async def _run_timers(self) -> None:
        while True:
            try:
                await self.release_due()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("deciding held targets failed; the sweep retries")
            self._wake.clear()
            due_at = self.next_due()
            delay = TIMER_IDLE if due_at is None else due_at - self.clock.now()
            await wait_set(self._wake, min(TIMER_IDLE, delay))
