"""Fenced writes: in a cluster a write counts only while the lease it depends on is this
agent's (SCALEOUT.md, "Fenced writes").

A write depends on the slot lease of every target it is about (a state row, a transition, an
incident opened for a target) and on the leases its caller declared with ``for_target`` or
``as_coordinator``: the incident manager acts on behalf of one target at a time, the support
policy's sweep on behalf of the coordinator. The declaration is a context variable, so the
layers between the caller and the store (the policy, the shared-outage rules) stay unaware of
it, and a task started inside the block inherits it.

Two checks guard a fenced write, and either refuses it with ``Fenced``:

- the agent's own clock (``Fencing.fences``): a lease whose last renew is more than
  ``lease_ttl`` minus a margin ago may belong to someone else by now, so nothing is even tried;
- the database, as the last statement of the write's transaction: the lease row must still
  carry this agent and the epoch it took the lease with, and live on for a margin. Since a
  transaction that idles longer than that margin is ended by the server, a write that passed
  the check commits before another agent can take the lease.

Without a ``[cluster]`` nothing is fenced (the SQLite store ignores all of this).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Protocol

from monitor.errors import StoreError


@dataclass(frozen=True)
class Fence:
    """A lease a write depends on: slot ``slot`` of ``vantage`` (None: the coordinator's)."""

    owner: str
    epoch: int
    vantage: str = ""
    slot: int | None = None


@dataclass(frozen=True)
class WriteScope:
    """On whose behalf the writes of a block are made."""

    targets: tuple[str, ...] = ()
    coordinator: bool = False


class Fenced(StoreError):
    """A write refused because a lease it depends on is not (surely) this agent's any more:
    ``reason`` is "expired" (the agent's own clock) or "lost" (the database)."""

    def __init__(self, message: str, reason: str, fences: Sequence[Fence] = ()) -> None:
        super().__init__(message)
        self.reason = reason
        self.fences = tuple(fences)


class Fencing(Protocol):
    """What the store asks the agent's cluster membership about each write."""

    @property
    def check_margin(self) -> float:
        """Seconds a lease must still live when the write's transaction checks it."""
        ...

    @property
    def idle_limit(self) -> float:
        """Seconds a fenced transaction may idle before the server ends it."""
        ...

    def fences(self, targets: Iterable[str], scope: WriteScope) -> list[Fence]:
        """The leases a write about ``targets`` within ``scope`` needs; ``Fenced`` (counted)
        when the agent's own clock says one of them may be lost already."""
        ...

    def refused(self, fences: Sequence[Fence], reason: str) -> None:
        """The database refused a write that needed ``fences``: count it, treat them as lost."""
        ...


_NOBODY = WriteScope()
_scope: ContextVar[WriteScope | None] = ContextVar("watchdesk_write_scope", default=None)


def current_scope() -> WriteScope:
    return _scope.get() or _NOBODY


@contextlib.contextmanager
def _within(scope: WriteScope) -> Iterator[None]:
    token = _scope.set(scope)
    try:
        yield
    finally:
        _scope.reset(token)


def for_target(name: str) -> contextlib.AbstractContextManager[None]:
    """The writes of this block are made on behalf of target ``name`` (fenced by its slot)."""
    scope = current_scope()
    return _within(WriteScope((*scope.targets, name), scope.coordinator))


def as_coordinator() -> contextlib.AbstractContextManager[None]:
    """The writes of this block are the coordinator's (fenced by its lease)."""
    return _within(WriteScope(current_scope().targets, True))
