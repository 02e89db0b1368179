"""What the agent asks about its place among others: which targets it probes, whether it may
write and send at all, whether it runs the singletons. One agent alone (no ``[cluster]``)
answers yes to everything (``Alone``); ``monitor.cluster.member.ClusterMember`` answers from
its leases."""

from __future__ import annotations

from typing import Any, Protocol


class Ownership(Protocol):
    def here(self, target: str) -> bool:
        """This agent probes ``target`` (holds the lease of its slot)."""
        ...

    def live(self) -> bool:
        """This agent may write and send: its own clock vouches for its leases."""
        ...

    def coordinator(self) -> bool:
        """This agent runs the singletons (policy sweep, polls, auto-close, reports)."""
        ...

    def view(self) -> dict[str, Any] | None:
        """What ``/api/cluster`` shows (None: not in a cluster)."""
        ...

    def slot(self, target: str) -> int | None:
        """The slot of ``target`` (None: not in a cluster)."""
        ...

    def problems(self) -> list[str]:
        """Why the agent is not ready (for ``/readyz``): fenced, or the database lost."""
        ...

    def refused_send(self) -> None:
        """A send was not made: the agent may no longer send for its claim (counted)."""
        ...


class Alone:
    """One agent on its own store: it probes everything and runs everything."""

    def here(self, target: str) -> bool:
        return True

    def live(self) -> bool:
        return True

    def coordinator(self) -> bool:
        return True

    def view(self) -> dict[str, Any] | None:
        return None

    def slot(self, target: str) -> int | None:
        return None

    def problems(self) -> list[str]:
        return []

    def refused_send(self) -> None:
        return None
