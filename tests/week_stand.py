"""The stand of the week-long policy replay (tests/test_policy_week.py): the pagers' receiver,
the week's clock, and the driver that plays an outage script minute by minute and writes down
everything a person would notice, stamped with the local minute it happened.

What it records, as ``(when, who, what)`` rows:

- a ticket opening, its status going to pending;
- every note on a ticket: private notes word for word, public ones by kind (status update,
  escalation told to the requester, recovery note with how long and how it was resolved);
- every page and resolve that reaches a pager (a real HTTP request to ``PagerReceiver``);
- every SLA verdict: ``watchdesk_sla_breaches_total`` going up, ``watchdesk_sla_breaching``
  changing value.

Nothing here knows the policy: the expected rows are written by hand in the test.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from tests.agent_harness import Harness
from tests.helpers import free_port

NEW_YORK = ZoneInfo("America/New_York")
# The replayed week: Monday 2026-11-23 .. Sunday 2026-11-29 (Thanksgiving is Thursday the 26th).
DAYS = {"Mon": 23, "Tue": 24, "Wed": 25, "Thu": 26, "Fri": 27, "Sat": 28, "Sun": 29}
WEEK_START = datetime(2026, 11, 23, tzinfo=NEW_YORK).timestamp()
WEEK_END = datetime(2026, 11, 30, tzinfo=NEW_YORK).timestamp()  # Sunday 24:00
MINUTE = 60.0

Row = tuple[str, str, str]


@functools.cache
def at(when: str) -> float:
    """ "Tue 02:10" -> the moment, New York time, in the replayed week."""
    day, clock = when.split()
    hour, minute = clock.split(":")
    return datetime(2026, 11, DAYS[day], int(hour), int(minute), tzinfo=NEW_YORK).timestamp()


def local(moment: float) -> str:
    return datetime.fromtimestamp(moment, NEW_YORK).strftime("%a %H:%M")


class PagerReceiver:
    """Every pager of the stand is a webhook pager POSTing to ``/<pager name>`` here: a real
    HTTP endpoint that keeps each request's JSON with the manual-clock moment it arrived."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.received: list[tuple[float, str, dict[str, Any]]] = []
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        self.received.append((self.clock(), request.match_info["pager"], await request.json()))
        return web.Response(status=204)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/{pager}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@dataclass(frozen=True)
class Outage:
    """``target`` fails its checks from the minute before ``down`` (so ``down`` is the second
    failure: the verdict) and passes them again from the minute before ``up`` (``up`` is the
    second success: the recovery verdict)."""

    target: str
    down: str
    up: str

    def failing(self, moment: float) -> bool:
        return at(self.down) - MINUTE <= moment <= at(self.up) - 2 * MINUTE

    def probed(self, moment: float) -> bool:
        """The target is probed from its first failure to its recovery verdict (a healthy
        target's checks change nothing anyone sees, so the rest of the week skips them)."""
        return at(self.down) - MINUTE <= moment <= at(self.up)


def public_kind(body: str) -> str:
    """A customer-visible note by what it tells the requester."""
    if "it is still down" in body:
        return "update"
    escalated = re.search(r"has been escalated to our (.+?), who", body)
    if escalated:
        return f"told: escalated to our {escalated.group(1)}"
    recovered = re.search(r"It was down for (\S+) .*How it was resolved: ([^\n]+)", body, re.S)
    if recovered:
        return f"recovery after {recovered.group(1)}: {recovered.group(2)}"
    return "public: " + body.splitlines()[0]


Act = Callable[[], Awaitable[None]]


class Week:
    """Plays ``outages`` and operator ``acts`` (by local minute) on the harness's agent, one
    minute at a time, as the running agent's probes, housekeeping sweeps and outbox would."""

    def __init__(
        self,
        h: Harness,
        pages: PagerReceiver,
        outages: list[Outage],
        acts: Mapping[str, Act],
        owner: Mapping[tuple[str, str], str],
    ) -> None:
        self.h = h
        self.pages = pages
        self.outages = outages
        self.acts = {at(when): act for when, act in acts.items()}
        # (customer, priority) -> the target: how an SLA counter's labels name an incident.
        self.owner = owner
        self.rows: list[Row] = []
        # (when, who) -> the full text of each note written then, for reading one closely.
        self.texts: dict[tuple[str, str], list[str]] = {}
        self._pages_seen = 0
        self._tickets: dict[str, tuple[str, str, int]] = {}  # id -> (target, status, notes)
        self._breaches: dict[tuple[str, ...], float] = {}
        self._breaching: dict[str, float] = {"response": 0.0, "resolution": 0.0}

    async def run(self, start: float, end: float) -> None:
        moment = start
        while moment < end:
            await self.minute(moment)
            moment += MINUTE

    async def minute(self, moment: float) -> None:
        h = self.h
        h.clock.set(moment)
        for name in h.agent.targets:
            outages = [o for o in self.outages if o.target == name]
            if moment == WEEK_START or any(o.probed(moment) for o in outages):
                ok = not any(o.failing(moment) for o in outages)
                await h.result(name, ok)
                h.clock.set(moment)  # the harness moves the clock on; this minute is not over
        act = self.acts.get(moment)
        if act is not None:
            await act()
        await h.sweep()
        await h.agent.policy.sweep()
        if await h.deliver():
            self._tickets_changed(moment)
        self._pages_arrived()
        self._verdicts(moment)

    def sample(self, name: str, **labels: str) -> float:
        """One series of the agent's /metrics (0 when absent)."""
        value = self.h.agent.metrics.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value

    def _row(self, moment: float, who: str, what: str) -> None:
        self.rows.append((local(moment), who, what))

    def _pages_arrived(self) -> None:
        for moment, pager, body in self.pages.received[self._pages_seen :]:
            if body["event"] == "page":
                self._row(moment, body["target"], f"page {pager} ({body['reason']})")
            else:
                target = self._target_of_key(body["dedup_key"])
                self._row(moment, target, f"resolve {pager}")
        self._pages_seen = len(self.pages.received)

    def _target_of_key(self, key: str) -> str:
        for ticket in self.h.tickets():
            if ticket["dedup_key"] == key:
                return str(ticket["target"])
        return "?"

    def _tickets_changed(self, moment: float) -> None:
        for ticket in self.h.tickets():
            ticket_id = str(ticket["id"])
            target = str(ticket["target"])
            known = self._tickets.get(ticket_id)
            if known is None:
                self._row(moment, target, f"ticket {ticket['subject']}")
                known = (target, "open", 0)
            notes = self.h.local.notes(ticket_id)
            for note in notes[known[2] :]:
                body = str(note["body"])
                what = public_kind(body) if note["public"] else f"private: {body}"
                self._row(moment, target, what)
                self.texts.setdefault((local(moment), target), []).append(body)
            status = str(ticket["status"])
            if status != known[1]:
                self._row(moment, target, f"status {status}")
            self._tickets[ticket_id] = (target, status, len(notes))

    def _verdicts(self, moment: float) -> None:
        metrics = self.h.agent.metrics
        for family in metrics.sla_breaches.collect():
            for sample in family.samples:
                if not sample.name.endswith("_total"):
                    continue
                labels = sample.labels
                key = (labels["kind"], labels["priority"], labels["customer"])
                if sample.value > self._breaches.get(key, 0.0):
                    who = self.owner[(labels["customer"], labels["priority"])]
                    self._row(moment, who, f"SLA {labels['kind']} breached")
                self._breaches[key] = sample.value
        for family in metrics.sla_breaching.collect():
            for sample in family.samples:
                kind = sample.labels["kind"]
                if sample.value != self._breaching[kind]:
                    self._row(moment, "-", f"breaching {kind} = {sample.value:g}")
                self._breaching[kind] = sample.value


def expand(table: str) -> list[Row]:
    """A hand-written table, one row a line: ``Tue 02:10  vip-web  what happened``."""
    rows = []
    for line in table.strip().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        day, clock, who, what = line.split(maxsplit=3)
        rows.append((f"{day} {clock}", who, " ".join(what.split())))
    return rows


def hourly(who: str, first: str, last: str, what: str = "update") -> list[Row]:
    """``what`` every hour from ``first`` to ``last``, both included."""
    rows = []
    moment = at(first)
    while moment <= at(last):
        rows.append((local(moment), who, what))
        moment += 3600
    return rows


def in_order(rows: list[Row]) -> list[Row]:
    """Rows by minute; within one minute by who and what (channels deliver concurrently)."""
    return sorted(rows, key=lambda row: (at(row[0]), row[1], row[2]))


def differences(actual: list[Row], expected: list[Row]) -> str:
    """What the agent did that the table does not say (+) and what it failed to do (-), in
    time order: readable where a whole-list diff of a week is not."""
    remaining = list(expected)
    extra = []
    for row in actual:
        if row in remaining:
            remaining.remove(row)
        else:
            extra.append(row)
    lines = [f"+ {' | '.join(row)}" for row in extra] + [
        f"- {' | '.join(row)}" for row in remaining
    ]
    return "\n".join(sorted(lines, key=lambda line: at(line[2:11])))
