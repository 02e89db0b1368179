"""Paging about the database itself: when an agent has not reached the cluster's database for
``db_lost_page_after``, it pages the ``page_on_open`` pagers once, directly (the outbox lives
in that database), with one fixed dedup key. Every agent that lost the database pages, and
PagerDuty and Opsgenie collapse their triggers into one alert; when the database answers
again, each agent that paged resolves it.

While the database is away nothing opens and nothing is sent for targets (the agents keep
probing, see ``monitor.cluster.member``): this page is the one thing that still goes out.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping

from monitor.durations import format_duration
from ticketing.errors import DeliveryError
from ticketing.pagers.base import Page, Pager

log = logging.getLogger("watchdesk.cluster")

DEDUP_KEY = "watchdesk-database-unreachable"
SUBJECT = "watchdesk-database"


class DatabaseWatch:
    def __init__(
        self,
        after: float,
        pagers: Callable[[], Mapping[str, Pager]],
        page_on: Callable[[], list[str]],
        agent: str,
        where: str,
        count: Callable[[str, str], None],
    ) -> None:
        self.after = after
        self._pagers = pagers
        self._page_on = page_on
        self.agent = agent
        self.where = where
        self._count = count  # (pager, result) -> the pages metric
        self.lost_since: float | None = None  # monotonic
        self.lost_at: float | None = None  # wall clock, for messages
        self._paged: set[str] = set()
        self._resolving: set[str] = set()

    def reachable(self) -> None:
        if self.lost_since is not None:
            log.warning(
                "the %s answers again after %s",
                self.where,
                format_duration(time.monotonic() - self.lost_since),
            )
        self.lost_since = self.lost_at = None
        self._resolving |= self._paged
        self._paged = set()

    def unreachable(self) -> None:
        if self.lost_since is None:
            self.lost_since, self.lost_at = time.monotonic(), time.time()

    async def check(self) -> None:
        """Page when the database has been away long enough (each pager once per outage,
        retried until it answers); resolve when it is back."""
        pagers = self._pagers()
        for name in sorted(self._resolving):
            pager = pagers.get(name)
            try:
                if pager is not None and pager.supports_resolve:
                    await pager.resolve(DEDUP_KEY, f"watchdesk reaches the {self.where} again")
            except DeliveryError as error:
                log.warning("could not resolve the database page in %s: %s", name, error)
                continue
            self._resolving.discard(name)
        if self.lost_since is None or time.monotonic() - self.lost_since < self.after:
            return
        away = format_duration(time.monotonic() - self.lost_since)
        page = Page(
            dedup_key=DEDUP_KEY,
            summary=f"[URGENT] watchdesk cannot reach its database ({self.where})",
            details=(
                f"Agent {self.agent} has not reached the {self.where} for {away}. Probes go "
                "on, but no incident opens and no ticket or page goes out until it is back."
            ),
            priority="urgent",
            reason="database",
            target=SUBJECT,
        )
        for name in self._page_on():
            pager = pagers.get(name)
            if pager is None or name in self._paged:
                continue
            try:
                await pager.page(page)
            except DeliveryError as error:
                self._count(name, "retry")
                log.warning("could not page %s about the database: %s", name, error)
                continue
            self._paged.add(name)
            self._count(name, "success")
            log.error(
                "the %s has been unreachable for %s: paged %s",
                self.where,
                away,
                name,
                extra={"fields": {"event": "database_lost_page", "pager": name}},
            )
