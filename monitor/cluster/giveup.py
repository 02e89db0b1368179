"""A stop that does not wait for a database that does not answer.

A graceful stop flushes the agent's state and hands its leases over, both through the
database. When the link to it went silent (a blackholed route answers never, and cancelling a
query waits on the same link for the server's cancel), those calls would hold the stop for a
minute or more, past the 5 s the contract gives it. So ``STOP_GRACE`` after the stop began,
every party that talks to the database (the leases, the store) is told to give it up: what is
under way fails at once, nothing more is tried, and the agent exits with what it saved by
then. Its leases run out on their own, as after a kill, and the others take the slots.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

log = logging.getLogger("watchdesk.cluster")

# Seconds into a stop after which the database calls still waiting give up: the agent exits
# within 5 s (the probes' 0.5 s, this, then closing), whatever the database does.
STOP_GRACE = 2.5


class GiveUp:
    def __init__(self, where: str, *abandon: Callable[[], None]) -> None:
        self.where = where
        self._abandon = list(abandon)
        self._timer: asyncio.TimerHandle | None = None

    def also(self, abandon: Callable[[], None]) -> None:
        """One more party to tell (the store)."""
        self._abandon.append(abandon)

    def arm(self, grace: float = STOP_GRACE) -> None:
        """The stop begins: the database is given up in ``grace`` seconds."""
        self._timer = asyncio.get_running_loop().call_later(grace, self.now)

    def disarm(self) -> None:
        """The stop is over (the store is closed): nothing left to give up."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def now(self) -> None:
        log.warning("stopping without waiting any longer for the %s", self.where)
        for abandon in self._abandon:
            abandon()
