"""The live state of every target and how it reaches the store.

A state change is numbered (``seq``) so that the store keeps only the newest row of a target,
whichever write lands last. Three ways to the store, by what a restart may read from them
(see ``monitor.store``): a transition goes with what it causes (``row`` handed to the incident
manager), a streak that turned around is written at once (``write_now``), everything else is
batched by the periodic ``flush``.

Every write goes through the store, whose calls run in the order they were made. One more rule
keeps the flush from ever carrying a transition's state before the transition is stored: from
the moment a transition changes a target's state until its transaction is done, the target is
``held`` and the flush leaves it for the next round (the transaction may wait for the incident
manager, and the flush must not write a ``down`` that no incident stands behind).
"""

from __future__ import annotations

import asyncio
import logging

from monitor.errors import StoreError
from monitor.state import States, Transition
from monitor.store import StateRow, Store
from monitor.store.fence import Fenced

log = logging.getLogger("watchdesk")

FLUSH_INTERVAL = 1.0


class StateBook:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.states = States()
        self.identities: dict[str, str] = {}
        self._seq = 0
        self._seqs: dict[str, int] = {}
        self._dirty: set[str] = set()
        self._held: dict[str, int] = {}
        self._pending_transitions: list[tuple[str, Transition]] = []

    async def load(self) -> None:
        """Number the writes after the highest one stored (by an earlier run)."""
        self._seq = max(self._seq, await self.store.last_seq())

    def row(self, name: str) -> StateRow:
        """The target's current state as the next numbered row (to be written now)."""
        self._seq += 1
        self._seqs[name] = self._seq
        return (name, self.identities[name], self.states[name], self._seq)

    def touch(self, name: str) -> None:
        """The state changed in a way the periodic flush may carry."""
        self._seq += 1
        self._seqs[name] = self._seq
        self._dirty.add(name)

    def forget(self, name: str) -> bool:
        """The target is no longer probed here (removed, or its slot went to another agent);
        True if it had changes not yet written (they never will be)."""
        if name in self.states:
            del self.states[name]
        self.identities.pop(name, None)
        unsaved = name in self._dirty or any(n == name for n, _ in self._pending_transitions)
        self._dirty.discard(name)
        self._pending_transitions = [(n, t) for n, t in self._pending_transitions if n != name]
        return unsaved

    def hold(self, name: str) -> None:
        """A transition of ``name`` is on its way to the store: the flush leaves it alone."""
        self._held[name] = self._held.get(name, 0) + 1

    def release(self, name: str) -> None:
        count = self._held.pop(name, 0) - 1
        if count > 0:
            self._held[name] = count

    async def write_now(self, row: StateRow) -> None:
        try:
            await self.store.record(row)
        except StoreError as error:
            (log.debug if isinstance(error, Fenced) else log.error)(
                "could not save the state of %s, will retry: %s", row[0], error
            )
            if row[0] in self.states:
                self._dirty.add(row[0])

    def retry_later(self, name: str, transition: Transition) -> None:
        """A transition whose transaction failed: the flush stores it with the state (unless
        the target is no longer probed here)."""
        if name not in self.states:
            return
        self._dirty.add(name)
        self._pending_transitions.append((name, transition))

    async def flush_loop(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_INTERVAL)
            await self.flush()

    async def flush(self) -> None:
        if not self._dirty and not self._pending_transitions:
            return
        transitions, self._pending_transitions = self._pending_transitions, []
        held = {name for name in self._dirty if name in self._held}
        names, self._dirty = self._dirty - held, held
        rows = [
            (n, self.identities[n], self.states[n], self._seqs.get(n, 0))
            for n in names
            if n in self.states and n in self.identities
        ]
        if not rows and not transitions:
            return
        try:
            await self.store.save(rows, transitions)
        except StoreError as error:
            # Fenced (in a cluster: the leases are not vouched for) is said once by the
            # cluster's log and counted; the flush keeps trying quietly.
            (log.debug if isinstance(error, Fenced) else log.error)(
                "could not save target state, will retry: %s", error
            )
            self._dirty |= {name for name in names if name in self.states}
            self._pending_transitions = [
                (n, t) for n, t in transitions if n in self.states
            ] + self._pending_transitions
