"""Which incidents the incident manager follows, as the store has them: every open one at
start, or in a cluster those of the targets this agent probes (``follow_owner``); and as
targets move between agents (their slot changes hands), what the previous agent left in the
store for those that arrive, and nothing more of those that leave. Part of
``IncidentManager``."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

from monitor.clock import Clock
from monitor.policy.canaries import Canaries
from monitor.policy.confirmation import Confirmation
from monitor.policy.storms import Storms
from monitor.store import Incident, Store
from monitor.store.records import OWN_KINDS


class Handover:
    """Mixed into ``IncidentManager``, which holds these."""

    store: Store
    clock: Clock
    decisions: asyncio.Lock
    storms: Storms
    canaries: Canaries
    confirmation: Confirmation
    _open: dict[str, Incident]
    _failed_checks: dict[str, int]
    _fresh: set[str]
    _changes: dict[str, deque[float]]
    _last_resolved: dict[str, float]

    # In a cluster: whether this agent probes a target (None: it probes every one).
    _owner: Callable[[str], bool] | None = None

    def _update_open_gauge(self) -> None:
        raise NotImplementedError

    def follow_owner(self, here: Callable[[str], bool]) -> None:
        """Follow only the incidents of the targets ``here`` says this agent probes."""
        self._owner = here

    async def reload_open(self) -> None:
        found = await self.store.incidents(open_only=True)
        owner = self._owner
        self._open = {
            i.target: i for i in found if i.kind in OWN_KINDS and (owner is None or owner(i.target))
        }
        self._last_resolved = await self.store.last_resolved()
        self._failed_checks = {name: i.failed_checks for name, i in self._open.items()}
        await self.storms.load([i for i in found if i.kind == "storm"], self.clock.now())
        await self.canaries.load(found, self._last_resolved)
        await self.confirmation.load()
        self._update_open_gauge()

    async def adopt(self, names: list[str]) -> None:
        """Targets now probed here: their open incidents and last recoveries, as the agent
        that probed them before left them in the store."""
        coming = set(names)
        async with self.decisions:
            for found in await self.store.incidents(open_only=True):
                if found.kind in OWN_KINDS and found.target in coming:
                    self._open[found.target] = found
                    self._failed_checks[found.target] = found.failed_checks
            resolved = await self.store.last_resolved()
            self._last_resolved.update({n: at for n, at in resolved.items() if n in coming})
        self._update_open_gauge()

    def forget(self, names: list[str]) -> None:
        """Targets no longer probed here: their incidents are another agent's to follow, and
        only fresh probes of this agent's own may open one if they come back."""
        for name in names:
            self._open.pop(name, None)
            self._failed_checks.pop(name, None)
            self._fresh.discard(name)
            self._changes.pop(name, None)
        self._update_open_gauge()
