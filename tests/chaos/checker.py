"""The chaos test's judge: from evidence to violations, pure (no I/O, no clock).

Evidence is what the world saw, never what the agent believes (its store is not read):

- ``truth``: the flapper's real toggle times per target (``toggles``: ``[[time, up], ...]``, the
  first one "up" at the start) and the times of the connections it accepted;
- ``alive``: ``[[ready, killed], ...]`` for every agent process (from its /readyz 200 to its
  SIGKILL or stop);
- ``freshdesk`` and ``pagerduty``: the stand-ins' own records (``/_fake/state``);
- ``config``: ``interval``, ``failure_threshold``, ``recovery_threshold``, ``on_recovery``;
- ``seed``, ``kills`` (the kill times), ``ended_at``, ``wall``.

Down periods are classified by their real length: a *blip* (shorter than
``BLIP_SHARE`` of an interval: one probe at most can see it), a *long outage* (at least
``LONG_OUTAGE`` seconds), or *ambiguous* between the two (a flapper that fell behind; tickets
for one are neither required nor wrong).

A ticket maps to the down period of its target that contains its "Failing since" time (second
resolution: the claim covers ``[S, S+1)``, widened by ``SLACK`` each side, 1.2 s in all). Then:

- ``dup_ticket``: two tickets for one outage, or two tickets with one dedup tag;
- ``lost``: an *observable* outage (the agent alive for ``(failure_threshold + 1) x interval +
  MARGIN`` in one stretch inside it) without a ticket, unless it continues an earlier outage
  that has one and the agent never saw the target up in between (alive for
  ``(recovery_threshold + 1) x interval + MARGIN`` in one stretch of the gap): for the agent
  both are one outage;
- ``blip_ticket``: a ticket whose first failure falls in a blip or an up period; except a
  *stale streak*: the agent was blind (never alive for ``2 x interval + MARGIN`` in one stretch)
  from that time until the target's next long outage, so a failure it counted before dying and
  the next outage's failures are one streak for it (mapped to that outage, and counted);
- ``missing_recovery_note`` / ``missing_recovery_status``: the outage ended but the ticket has no
  public "<target> has recovered at" note, or is not in the ``on_recovery`` status (Freshdesk 3
  pending; 4/5 for resolve);
- ``false_recovery``: a recovery note whose claimed time (``[S-SLACK, S+1+SLACK]``) falls
  wholly inside a down period of the target, or before the ticket's first failure;
- ``pd_double_alert``: a dedup key with more than one PagerDuty alert ever opened (a trigger
  after its resolve); ``pd_missing_resolve``: an alert still open at the end;
  ``missing_page``: a ticket whose dedup key was never paged.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

SLACK = 0.2  # around a claimed second: probe timing (with the 1 s resolution: 1.2 s)
MARGIN = 0.4  # added to the alive time an agent needs to see something surely
BLIP_SHARE = 0.6  # a down period shorter than this share of an interval is a blip
LONG_OUTAGE = 1.0  # seconds: a down period at least this long is an outage

SUBJECT = re.compile(r"^\[[A-Z]+\] (?P<target>[A-Za-z0-9_.-]+) is down$")
FAILING_SINCE = re.compile(
    r"Failing since: (?P<at>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC \(first failed check\)"
)
RECOVERED = re.compile(
    r"(?P<target>[A-Za-z0-9_.-]+) has recovered at (?P<at>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC"
)
ON_RECOVERY_STATUS = {"pending": {3}, "resolve": {4, 5}}


@dataclass(frozen=True)
class Violation:
    kind: str
    target: str
    detail: str

    def __str__(self) -> str:
        return f"{self.kind} [{self.target}]: {self.detail}"


@dataclass
class Figures:
    seed: int = 0
    outages: int = 0
    observable: int = 0
    tickets: int = 0
    dup: int = 0
    lost: int = 0
    kills: int = 0
    missing_recovery: int = 0
    false_recovery: int = 0
    blips: int = 0
    blip_tickets: int = 0
    pd_alerts: int = 0
    pd_double: int = 0
    pd_unresolved: int = 0
    missing_pages: int = 0
    ambiguous: int = 0
    stale_streaks: int = 0
    continued: int = 0
    wall: float = 0.0
    counts: dict[str, int] = field(default_factory=dict)

    def line(self) -> str:
        return (
            f"chaos: seed={self.seed} outages={self.outages} tickets={self.tickets} "
            f"dup={self.dup} lost={self.lost} kills={self.kills} "
            f"missing_recovery={self.missing_recovery} false_recovery={self.false_recovery} "
            f"blips={self.blips} blip_tickets={self.blip_tickets} pd_alerts={self.pd_alerts} "
            f"wall={self.wall:.1f}s"
        )

    def extra_line(self) -> str:
        return (
            f"chaos: observable={self.observable} ambiguous={self.ambiguous} "
            f"continued={self.continued} stale_streaks={self.stale_streaks} "
            f"pd_double={self.pd_double} pd_unresolved={self.pd_unresolved} "
            f"missing_pages={self.missing_pages}"
        )


@dataclass(frozen=True)
class Period:
    """One down period of a target, from the flapper's real toggle times."""

    target: str
    index: int
    start: float
    end: float
    kind: str  # "outage" | "blip" | "ambiguous"

    def overlaps(self, a: float, b: float) -> bool:
        return self.start <= b and a <= self.end

    def __str__(self) -> str:
        return f"{self.kind} {self.target}#{self.index} {self.start:.3f}-{self.end:.3f}"


@dataclass
class Ticket:
    record: dict[str, Any]
    target: str
    key: str | None
    since: float | None
    period: Period | None = None
    stale: bool = False

    @property
    def id(self) -> int:
        return int(self.record["id"])


def parse_utc(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC).timestamp()


def stamp(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%H:%M:%S.%f")[:-3]


def down_periods(
    toggles: Mapping[str, Sequence[Sequence[Any]]], interval: float, ended_at: float
) -> dict[str, list[Period]]:
    periods: dict[str, list[Period]] = {}
    for target, items in toggles.items():
        found: list[Period] = []
        down_since: float | None = None
        for at, up in sorted(items, key=lambda item: float(item[0])):
            if not up and down_since is None:
                down_since = float(at)
            elif up and down_since is not None:
                found.append(_period(target, len(found), down_since, float(at), interval))
                down_since = None
        if down_since is not None:
            found.append(_period(target, len(found), down_since, ended_at, interval))
        periods[target] = found
    return periods


def _period(target: str, index: int, start: float, end: float, interval: float) -> Period:
    length = end - start
    if length < BLIP_SHARE * interval:
        kind = "blip"
    elif length >= LONG_OUTAGE:
        kind = "outage"
    else:
        kind = "ambiguous"
    return Period(target, index, start, end, kind)


def longest_alive(alive: Iterable[Sequence[float]], a: float, b: float) -> float:
    """The longest stretch of [a, b] during which one agent process was alive."""
    best = 0.0
    for start, end in alive:
        best = max(best, min(end, b) - max(start, a))
    return best


def check(evidence: Mapping[str, Any]) -> tuple[list[Violation], Figures]:
    config = evidence["config"]
    interval = float(config["interval"])
    observe_need = (int(config["failure_threshold"]) + 1) * interval + MARGIN
    recover_need = (int(config["recovery_threshold"]) + 1) * interval + MARGIN
    success_need = 2 * interval + MARGIN
    expected_status = ON_RECOVERY_STATUS.get(str(config.get("on_recovery", "pending")), {3})
    ended_at = float(evidence["ended_at"])
    alive: list[Sequence[float]] = [(float(s), float(e)) for s, e in evidence["alive"]]
    truth = evidence["truth"]
    accepts: Mapping[str, Sequence[float]] = truth.get("accepts", {})
    periods = down_periods(truth["toggles"], interval, ended_at)
    freshdesk = evidence["freshdesk"]
    pagerduty = evidence["pagerduty"]

    violations: list[Violation] = []
    figures = Figures(
        seed=int(evidence.get("seed", 0)),
        kills=len(evidence.get("kills", [])),
        wall=float(evidence.get("wall", 0.0)),
    )
    all_periods = [p for found in periods.values() for p in found]
    figures.outages = sum(p.kind == "outage" for p in all_periods)
    figures.blips = sum(p.kind == "blip" for p in all_periods)
    figures.ambiguous = sum(p.kind == "ambiguous" for p in all_periods)

    def down_throughout(target: str, a: float, b: float) -> Period | None:
        for period in periods.get(target, []):
            if period.start <= a and b <= period.end:
                return period
        return None

    def around(target: str, period_start: float, period_end: float) -> str:
        near = [t for t in accepts.get(target, []) if period_start - 1.0 <= t <= period_end + 1.0]
        return "accepted probes near it: " + (", ".join(stamp(t) for t in near) or "none")

    # --- tickets, and the outage each one is for ---------------------------------------------
    tickets: list[Ticket] = []
    for record in sorted(freshdesk.get("tickets", []), key=lambda t: int(t["id"])):
        match = SUBJECT.match(str(record.get("subject", "")))
        target = match.group("target") if match else "?"
        tags = [str(tag) for tag in record.get("tags", [])]
        key = next((tag for tag in tags if tag != "watchdesk"), None)
        since_match = FAILING_SINCE.search(str(record.get("description", "")))
        since = parse_utc(since_match.group("at")) if since_match else None
        ticket = Ticket(record, target, key, since)
        tickets.append(ticket)
        if match is None or target not in periods or since is None:
            violations.append(
                Violation(
                    "stray_ticket",
                    target,
                    f"ticket {ticket.id} names no known target or first failure: "
                    f"{record.get('subject')!r}",
                )
            )
            continue
        window = (since - SLACK, since + 1.0 + SLACK)
        hits = [p for p in periods[target] if p.overlaps(*window)]
        chosen = next((p for p in hits if p.kind == "outage"), None) or next(
            (p for p in hits if p.kind == "ambiguous"), None
        )
        if chosen is not None:
            ticket.period = chosen
            continue
        blip = next((p for p in hits if p.kind == "blip"), None)
        following = next(
            (p for p in periods[target] if p.kind == "outage" and p.start > window[1]), None
        )
        if following is not None and (
            longest_alive(alive, window[1], following.start) < success_need
        ):
            ticket.period = following
            ticket.stale = True
            figures.stale_streaks += 1
            continue
        where = f"in {blip}" if blip else "while the target was up"
        lo, hi = (blip.start, blip.end) if blip else window
        violations.append(
            Violation(
                "blip_ticket",
                target,
                f"ticket {ticket.id} says failing since {stamp(since)} UTC: {where}; "
                + around(target, lo, hi),
            )
        )
        figures.blip_tickets += 1
    figures.tickets = len(tickets)

    # --- one ticket per outage ----------------------------------------------------------------
    duplicates: set[int] = set()
    by_period: dict[Period, list[Ticket]] = defaultdict(list)
    by_key: dict[str, list[Ticket]] = defaultdict(list)
    for ticket in tickets:
        if ticket.period is not None:
            by_period[ticket.period].append(ticket)
        if ticket.key is not None:
            by_key[ticket.key].append(ticket)
    for period, group in by_period.items():
        if len(group) > 1:
            duplicates |= {t.id for t in group[1:]}
            violations.append(
                Violation(
                    "dup_ticket",
                    period.target,
                    f"{len(group)} tickets for {period}: "
                    + ", ".join(f"{t.id} (key {t.key})" for t in group),
                )
            )
    for key, group in by_key.items():
        if len(group) > 1:
            duplicates |= {t.id for t in group[1:]}
            violations.append(
                Violation(
                    "dup_ticket",
                    group[0].target,
                    f"{len(group)} tickets tagged {key}: " + ", ".join(str(t.id) for t in group),
                )
            )
    figures.dup = len(duplicates)

    # --- every outage the agent could see has a ticket ----------------------------------------
    for target, found in periods.items():
        previous: Period | None = None
        previous_covered = False
        for period in found:
            if period.kind != "outage":
                continue
            seen = longest_alive(alive, period.start, period.end)
            has_ticket = bool(by_period.get(period))
            continued = (
                previous is not None
                and previous_covered
                and longest_alive(alive, previous.end, period.start) < recover_need
            )
            if seen >= observe_need:
                figures.observable += 1
                if not has_ticket and continued:
                    figures.continued += 1
                elif not has_ticket:
                    figures.lost += 1
                    violations.append(
                        Violation(
                            "lost",
                            target,
                            f"no ticket for {period} ({period.end - period.start:.1f} s), "
                            f"though the agent watched {seen:.1f} s of it",
                        )
                    )
            previous, previous_covered = period, has_ticket or continued

    # --- recovery: a public note, the on_recovery status, and a true claim --------------------
    notes: Mapping[str, list[dict[str, Any]]] = freshdesk.get("notes", {})
    for ticket in tickets:
        if ticket.target not in periods:
            continue
        if ticket.period is not None and ticket.period.end > ended_at:
            continue  # still down at the end: no recovery expected
        recoveries = [
            note
            for note in notes.get(str(ticket.id), [])
            if (m := RECOVERED.search(str(note.get("body", ""))))
            and m.group("target") == ticket.target
        ]
        missing = False
        if not any(note.get("private") is False for note in recoveries):
            missing = True
            violations.append(
                Violation(
                    "missing_recovery_note",
                    ticket.target,
                    f"ticket {ticket.id} ({ticket.period}) has no public recovery note",
                )
            )
        if ticket.record.get("status") not in expected_status:
            missing = True
            violations.append(
                Violation(
                    "missing_recovery_status",
                    ticket.target,
                    f"ticket {ticket.id} ({ticket.period}) ended in status "
                    f"{ticket.record.get('status')}, expected {sorted(expected_status)}",
                )
            )
        figures.missing_recovery += missing
        for note in recoveries:
            match = RECOVERED.search(str(note["body"]))
            assert match is not None
            claimed = parse_utc(match.group("at"))
            inside = down_throughout(ticket.target, claimed - SLACK, claimed + 1.0 + SLACK)
            before = ticket.since is not None and claimed + 1.0 + SLACK < ticket.since
            if inside is not None or before:
                figures.false_recovery += 1
                why = f"the target was down ({inside})" if inside else "before the first failure"
                violations.append(
                    Violation(
                        "false_recovery",
                        ticket.target,
                        f"ticket {ticket.id} ({ticket.period}): note {note.get('id')} claims "
                        f"recovery at {match.group('at')} UTC, {why}",
                    )
                )

    # --- PagerDuty: one alert per dedup key, resolved by the end ------------------------------
    alerts: Mapping[str, dict[str, Any]] = pagerduty.get("alerts", {})
    superseded: list[dict[str, Any]] = pagerduty.get("resolved_alerts", [])
    opened: dict[str, int] = defaultdict(int)
    for key in alerts:
        opened[key] += 1
    for alert in superseded:
        opened[str(alert["dedup_key"])] += 1
    figures.pd_alerts = sum(opened.values())
    for key, count in sorted(opened.items()):
        if count > 1:
            figures.pd_double += 1
            violations.append(
                Violation("pd_double_alert", _target_of(key, by_key), f"{count} alerts for {key}")
            )
    for key, alert in sorted(alerts.items()):
        if alert.get("status") != "resolved":
            figures.pd_unresolved += 1
            violations.append(
                Violation(
                    "pd_missing_resolve",
                    _target_of(key, by_key),
                    f"alert {key} is {alert.get('status')} at the end",
                )
            )
    for ticket in tickets:
        if ticket.key is not None and ticket.key not in opened:
            figures.missing_pages += 1
            violations.append(
                Violation(
                    "missing_page", ticket.target, f"ticket {ticket.id}: {ticket.key} never paged"
                )
            )

    for violation in violations:
        figures.counts[violation.kind] = figures.counts.get(violation.kind, 0) + 1
    return violations, figures


def _target_of(key: str, by_key: Mapping[str, list[Ticket]]) -> str:
    group = by_key.get(key)
    return group[0].target if group else "?"


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m tests.chaos.checker EVIDENCE.json``: judge saved evidence again."""
    import json
    import sys

    paths = list(sys.argv[1:] if argv is None else argv)
    if len(paths) != 1:
        print("usage: python -m tests.chaos.checker EVIDENCE.json", file=sys.stderr)
        return 2
    with open(paths[0]) as file:
        evidence = json.load(file)
    violations, figures = check(evidence)
    for violation in violations:
        print(f"chaos: {violation}")
    print(figures.line())
    print(figures.extra_line())
    print(f"chaos: violations {figures.counts}")
    return 1 if violations else 0


if __name__ == "__main__":
    raise SystemExit(main())
