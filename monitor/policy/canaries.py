"""Canaries: targets that are the agent's own view of the world (two outside resolvers, the
default gateway; ``[agent] canaries``). When every one of them is down, what fails is the
agent's view, not the world: the agent is **impaired**.

While impaired:

- no incident opens (a canary's own neither), probes and metrics go on, open incidents keep
  recovering;
- the pagers of ``page_on_open`` get one page, "monitoring is impaired", with a fixed dedup
  key per agent (``watchdesk-impaired-<agent>``): an incident of kind ``agent``, opened with the
  canary's transition in one transaction (so once across restarts), reopened by the next
  impairment; its resolve goes out when a canary is back.

Before the canaries have decided (one is failing, not yet past its threshold, and the others
are down or failing too) a target that goes down waits for their verdict, at most the time the
slowest canary needs to reach its threshold: the canaries must win the race against the
targets they vouch for.

After an impairment the backlog does not fire: a target that was failing then opens an
incident only after ``failure_threshold`` failed probes that *started* after a canary came
back (``on_result``), whatever its counters said before. A restart keeps that rule for the
targets that were failing before the impairment ended (its end is the alert's ``resolved_at``).
"""

from __future__ import annotations

import dataclasses
import logging
import socket
from collections.abc import Callable, Collection, Mapping
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from monitor.actions import Action, SendPage
from monitor.config import Config
from monitor.durations import format_duration, format_local
from monitor.metrics import Metrics
from monitor.policy import storm_texts
from monitor.policy.verdict import Verdict
from monitor.state import TargetState, Transition
from monitor.store import Incident, StateRow, Store
from monitor.store.records import agent_target
from ticketing.pagers.base import Page

if TYPE_CHECKING:
    from monitor.policy.escalation import SupportPolicy

log = logging.getLogger("watchdesk.incidents")


def agent_name(vantage: str | None = None) -> str:
    """This agent's name in the impairment page's dedup key: a cluster's vantage (agents of
    one vantage share one view of the world), else the machine's name."""
    if vantage is not None:
        return vantage
    name = socket.gethostname().split(".")[0] or "agent"
    return "".join(c if c.isalnum() or c in "_-" else "-" for c in name)


class Canaries:
    def __init__(
        self,
        store: Store,
        config: Config,
        states: Mapping[str, TargetState],
        metrics: Metrics,
    ) -> None:
        self.store = store
        self.states = states
        self.metrics = metrics
        vantage = config.cluster.vantage if config.cluster is not None else None
        self.agent = agent_name(vantage)
        self.key = f"watchdesk-impaired-{self.agent}"
        self.target = agent_target(vantage)
        # The impairment's incident as the store has it (open or resolved); None: never made.
        self.alert: Incident | None = None
        # When the last impairment ended: fresh probes are the ones started after it.
        self.recovered_at: float | None = None
        # target -> failed probes started after ``recovered_at`` (while it must earn its open).
        self._gate: dict[str, int] = {}
        self._by_hand = False  # a person resolved the alert: no new page until a canary is up
        self._restoring = True  # until the first sweep: ``settle`` rebuilds the gate
        self._was: bool | None = None  # impaired as of the last ``follow`` (None: not yet)
        self.policy: SupportPolicy | None = None
        self.set_config(config)

    def set_config(self, config: Config) -> None:
        self.config = config
        self.names: tuple[str, ...] = tuple(config.agent.canaries)
        self._thresholds = {t.name: t.failure_threshold for t in config.targets}
        # The longest a canary needs from its first failure to its verdict.
        self._verdict_time = max(
            (t.failure_threshold * t.interval for t in config.targets if t.name in self.names),
            default=0.0,
        )

    async def load(
        self, open_incidents: Collection[Incident], resolved: Mapping[str, float]
    ) -> None:
        """The open alert, if any, and when the last impairment ended (from the store)."""
        for incident in open_incidents:
            if incident.kind == "agent" and incident.target == self.target:
                self.alert = incident
        self.recovered_at = resolved.get(self.target)
        self.metrics.agent_impaired.set(1 if self.impaired() else 0)

    def settle(self, name: str, state: TargetState, has_incident: bool) -> None:
        """At start: a target failing since before the last impairment ended, with no
        incident, still has to show ``failure_threshold`` fresh failures."""
        if not self._restoring or self.recovered_at is None or has_incident:
            return
        failing = state.status == "down" or state.consecutive_failures > 0
        if failing and (state.first_failure_at or 0.0) < self.recovered_at:
            self._gate.setdefault(name, 0)

    # ---- the agent's view ------------------------------------------------------------------

    def _statuses(self) -> list[str]:
        return [(self.states.get(n) or TargetState()).status for n in self.names]

    def impaired(self) -> bool:
        """Every canary is down (or the alert is open and none is up yet): verdicts of this
        agent open nothing."""
        if not self.names:
            return False
        statuses = self._statuses()
        if all(status == "down" for status in statuses):
            return True
        alert_open = self.alert is not None and self.alert.status == "open"
        return alert_open and "up" not in statuses

    def undecided(self) -> str | None:
        """A canary that is failing but not past its threshold, while every other one is down
        or failing too (so that all of them may be about to be down)."""
        if not self.names:
            return None
        waiting = None
        for name in self.names:
            state = self.states.get(name) or TargetState()
            if state.status != "down" and state.consecutive_failures == 0:
                return None
            if state.status != "down":
                waiting = name
        return waiting

    def problem(self) -> str | None:
        """What /readyz says while impaired."""
        if not self.impaired():
            return None
        return f"monitoring is impaired: every canary is down ({', '.join(self.names)})"

    def on_result(self, name: str, ok: bool, started_at: float | None) -> bool:
        """Count a probe of a target that must earn its open after an impairment; True when
        it just has (it may open now)."""
        count = self._gate.get(name)
        if count is None:
            return False
        if ok:  # still down until it recovers: its fresh count starts again
            self._gate[name] = 0
            return False
        fresh = self.recovered_at is None or (started_at or 0.0) >= self.recovered_at
        count += 1 if fresh else 0
        if count >= self._thresholds.get(name, 1):
            del self._gate[name]
            return True
        self._gate[name] = count
        return False

    @property
    def gated(self) -> Collection[str]:
        """The targets that must fail fresh probes before they open (after an impairment)."""
        return self._gate.keys()

    def forget(self, name: str) -> None:
        """``name`` is up: whatever fails from now on is fresh."""
        self._gate.pop(name, None)

    def verdict(self, name: str, state: TargetState, now: float) -> Verdict | None:
        """Why a target that is down opens nothing now because of the canaries; None: they
        have nothing against it."""
        if not self.names:
            return None
        if self.impaired():
            if name in self.names:
                why = "it is a canary and every canary is down: monitoring is impaired"
            else:
                why = (
                    f"monitoring is impaired: every canary ({', '.join(self.names)}) is down, "
                    "so this agent cannot tell an outage from its own loss of view"
                )
            return Verdict("none", why)
        waiting = self.undecided()
        until = (state.since or now) + self._verdict_time
        if waiting is not None and now < until:
            canary = self.states.get(waiting) or TargetState()
            return Verdict(
                "hold",
                f"canary {waiting} is failing too ({canary.consecutive_failures} of "
                f"{self._thresholds.get(waiting, 1)}): waiting for the canaries' verdict",
                until=until,
            )
        count = self._gate.get(name)
        if count is not None and self.recovered_at is not None:
            ended = format_local(self.recovered_at, ZoneInfo(self.config.agent.timezone))
            return Verdict(
                "none",
                f"monitoring was impaired until {ended}: only "
                f"probes started since count, {count} of {self._thresholds.get(name, 1)} "
                "failed so far",
            )
        return None

    # ---- the alert -------------------------------------------------------------------------

    async def follow(
        self,
        now: float,
        fresh: Collection[str],
        failing: Callable[[], Mapping[str, TargetState]],
        cause: tuple[StateRow, Transition] | None,
    ) -> bool:
        """Open or resolve the alert as the canaries now say (with the transition that made
        them say it); True when ``cause`` was stored with it. ``failing()``: the targets with
        no incident of their own, which must earn their open once the impairment ends."""
        self._restoring = False
        if not self.names:
            return False
        statuses = self._statuses()
        alert_open = self.alert is not None and self.alert.status == "open"
        was = self.impaired() if self._was is None else self._was
        consumed = False
        if all(s == "down" for s in statuses) and not alert_open and not self._by_hand:
            if all(name in fresh for name in self.names):  # never from a stored state alone
                await self._open(now, cause)
                consumed = cause is not None
        elif "up" in statuses:
            self._by_hand = False
            if alert_open:
                await self._resolve(now, cause)
                consumed = cause is not None
        self._was = self.impaired()
        if was and not self._was:
            self._end(now, failing())
        self.metrics.agent_impaired.set(1 if self._was else 0)
        return consumed

    def closed_by_hand(self, at: float) -> None:
        """A person resolved the alert: the canaries may stay down, it is not sent again."""
        self._by_hand = True
        if self.alert is not None:
            self.alert = dataclasses.replace(self.alert, status="resolved", resolved_at=at)

    def _end(self, now: float, failing: Mapping[str, TargetState]) -> None:
        self.recovered_at = now
        self._gate = {
            name: 0
            for name, state in failing.items()
            if state.status == "down" or state.consecutive_failures > 0
        }
        log.warning(
            "monitoring is no longer impaired: %d failing targets need %s fresh failed probes",
            len(self._gate),
            "their failure_threshold",
            extra={"fields": {"event": "impaired_end", "gated": len(self._gate)}},
        )

    def _reasons(self) -> list[tuple[str, str]]:
        return [(n, (self.states.get(n) or TargetState()).last_reason) for n in self.names]

    async def _open(self, now: float, cause: tuple[StateRow, Transition] | None) -> None:
        reasons = self._reasons()
        page = Page(
            dedup_key=self.key,
            summary=f"[URGENT] monitoring is impaired: every canary of {self.agent} is down",
            details=storm_texts.impaired_page(self.agent, reasons),
            priority="urgent",
            reason="open",
            target=self.target,
        )
        pages: list[Action] = [SendPage(name, page) for name in self.config.escalation.page_on_open]
        firsts = [(self.states.get(n) or TargetState()).first_failure_at for n in self.names]
        fields: dict[str, Any] = {
            "status": "open",
            "opened_at": now,
            "first_failure_at": min((f for f in firsts if f is not None), default=now),
            "resolved_at": None,
            "last_reason": "; ".join(f"{name}: {reason}" for name, reason in reasons),
            "last_update_at": now,
            "worked_at": None,
            "escalated_at": None,
            "escalation_level": 0,
            "failed_checks": 0,
        }
        row, transition = cause if cause is not None else (None, None)
        if self.alert is None:
            self.alert = await self._known()
        if self.alert is None:
            new = {
                **fields,
                "target": self.target,
                "kind": "agent",
                "priority": "urgent",
                "customer": None,
                "backend": self.config.ticketing.backend,
            }
            opened = await self.store.open_incident(
                new, lambda _id: (self.key, pages), row, transition
            )
            self.alert = opened or await self._known()
        else:
            await self.store.update_incident(self.alert.id, fields, pages, now, row, transition)
            self.alert = await self.store.incident(self.alert.id)
        log.error(
            "monitoring is impaired: every canary is down (%s); no incident opens until one "
            "is back",
            "; ".join(f"{name}: {reason}" for name, reason in reasons),
            extra={"fields": {"event": "impaired", "canaries": list(self.names)}},
        )

    async def _known(self) -> Incident | None:
        """The alert row an earlier impairment left (its dedup key is fixed: it is reused),
        or an open one of another name of this machine (on a cluster's database: of this
        vantage, never another's)."""
        for incident in await self.store.incidents():
            if incident.kind == "agent" and (
                incident.dedup_key == self.key
                or (incident.status == "open" and incident.target == self.target)
            ):
                return incident
        return None

    async def _resolve(self, now: float, cause: tuple[StateRow, Transition] | None) -> None:
        assert self.alert is not None
        back = [n for n in self.names if (self.states.get(n) or TargetState()).status == "up"]
        summary = (
            f"monitoring is no longer impaired: {', '.join(back)} back after "
            f"{format_duration(max(0.0, now - self.alert.opened_at))}"
        )
        actions = await self.policy.recover_actions(self.alert, summary) if self.policy else []
        row, transition = cause if cause is not None else (None, None)
        changes = {"status": "resolved", "resolved_at": now}
        await self.store.update_incident(self.alert.id, changes, actions, now, row, transition)
        self.alert = await self.store.incident(self.alert.id)
        log.warning(summary, extra={"fields": {"event": "impaired_resolved"}})
