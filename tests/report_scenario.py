"""A month of history for the report tests, played through a real agent on a manual clock.

November 2026 (UTC), two targets of customer acme, both configured from Nov 1 00:00:

- ``web``: up from Nov 1; down 5 min 30 s on Nov 10 (amber: 99.6%); down 2 h 0 min 30 s on
  Nov 21 (red), an incident worked after 20 minutes; down an hour inside its maintenance window
  on Nov 15 (02:00-04:00), which counts neither up nor down (green, 2 h of maintenance).
- ``db``: no verdict before its first probe on Nov 5 (grey Nov 1-4), then up all month.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from tests.agent_harness import Harness

NOV_1 = datetime(2026, 11, 1, tzinfo=UTC).timestamp()
DEC_1 = datetime(2026, 12, 1, tzinfo=UTC).timestamp()

# Two targets of one customer: the agent's config in the report tests, which add to it.
ACME = """
[defaults]
interval = "30s"
failure_threshold = 3
recovery_threshold = 2

[[targets]]
name = "web"
kind = "http"
url = "https://web.acme.example/"
customer = "acme"

[[targets]]
name = "db"
kind = "tcp"
host = "db.acme.example"
port = 5432
customer = "acme"

[customers.acme]
email = "it@acme.example"
"""

CONFIG = (
    ACME
    + """
[[maintenance]]
targets = ["web"]
start = "2026-11-15T02:00:00+00:00"
end = "2026-11-15T04:00:00+00:00"
reason = "database upgrade"
"""
)


def at(day: int, hour: int, minute: int = 0) -> float:
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC).timestamp()


async def outage(h: Harness, target: str, start: float, end: float) -> None:
    """``target`` fails from ``start`` (three checks, 30 s apart) and is back at ``end`` (two
    successes: up 30 s after it)."""
    h.clock.set(start)
    await h.fail(target, 3)
    await h.sweep()
    h.clock.set(end)
    await h.succeed(target, 2)
    await h.sweep()


async def november(state: Path, extra: str = "") -> Harness:
    """The agent after November; close it when done."""
    h = await Harness.create(state, CONFIG + extra, start=NOV_1)
    await h.succeed("web")
    h.clock.set(at(5, 0))
    await h.succeed("db")
    await outage(h, "web", at(10, 6), at(10, 6, 5))
    await outage(h, "web", at(15, 2, 30), at(15, 3, 30))
    h.clock.set(at(21, 10))
    await h.fail("web", 3)
    await h.sweep()
    await h.deliver()
    h.clock.set(at(21, 10, 21))
    (incident,) = [i for i in await h.incidents() if i.status == "open"]
    await h.agent.desk.acknowledge(incident.id, "alice")
    h.clock.set(at(21, 12))
    await h.succeed("web", 2)
    await h.sweep()
    await h.agent.book.flush()
    return h
