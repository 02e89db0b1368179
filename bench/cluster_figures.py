"""The cluster bench's figures, from what it recorded: pure functions, no process, no clock.

Probe times come from the target server (bench/probe_log_server.py: every request per target,
whichever agent sent it); lateness, slots and counters (probes completed: the kept-up share)
from the agents' /metrics text; commits from pg_stat_database; the box's CPU from /proc/stat.
Kept apart from the orchestration so that a test can check each figure on made-up data
(tests/test_bench_cluster.py).
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

LATENESS = "watchdesk_schedule_lateness_seconds"
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$")
_LE = re.compile(r'le="([^"]+)"')


def scalar_metrics(text: str, names: Iterable[str]) -> dict[str, float | None]:
    """The sum of every sample of each of ``names`` (None when the agent has none). Reads the
    text line by line without a full parse: an agent with 30,000 targets answers megabytes."""
    wanted = set(names)
    found: dict[str, float | None] = dict.fromkeys(wanted)
    for line in text.splitlines():
        if not line or line[0] == "#":
            continue
        match = _SAMPLE.match(line)
        if match and match.group(1) in wanted:
            found[match.group(1)] = (found[match.group(1)] or 0.0) + float(match.group(3))
    return found


def sample_sum(text: str, name: str, having: str) -> float:
    """The sum of the samples of ``name`` whose labels contain ``having`` (e.g.
    ``result="failure"``), line by line like ``scalar_metrics``."""
    prefix = f"{name}{{"
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(prefix) and having in line
    )


def histogram(text: str, name: str = LATENESS) -> dict[float, float]:
    """Cumulative bucket counts ``{le: count}`` of an unlabelled histogram (+Inf as inf)."""
    buckets: dict[float, float] = {}
    prefix = f"{name}_bucket{{"
    for line in text.splitlines():
        if line.startswith(prefix):
            le = _LE.search(line)
            if le:
                bound = math.inf if le.group(1) == "+Inf" else float(le.group(1))
                buckets[bound] = buckets.get(bound, 0.0) + float(line.rsplit(" ", 1)[1])
    return buckets


def delta(after: dict[float, float], before: dict[float, float]) -> dict[float, float]:
    return {le: count - before.get(le, 0.0) for le, count in after.items()}


def summed(histograms: Iterable[dict[float, float]]) -> dict[float, float]:
    total: dict[float, float] = {}
    for one in histograms:
        for le, count in one.items():
            total[le] = total.get(le, 0.0) + count
    return total


def quantile(buckets: dict[float, float], q: float) -> float | None:
    """Prometheus' histogram_quantile: linear inside the bucket the rank falls in."""
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return None
    rank = q * buckets[bounds[-1]]
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                return lower  # beyond the last finite bucket: its bound is all we know
            inside = count - below
            return lower + (bound - lower) * ((rank - below) / inside if inside else 1.0)
        lower, below = bound, count
    return lower


def share_within(buckets: dict[float, float], bound: float) -> float | None:
    """The share of observations at most ``bound`` (a bucket boundary): exact, unlike a
    quantile interpolated inside a bucket."""
    total = buckets.get(math.inf) or max(buckets.values(), default=0.0)
    if not total:
        return None
    return buckets.get(bound, 0.0) / total


@dataclass(frozen=True)
class Steady:
    """Probes seen by the targets in the steady window [start, end)."""

    requests: int
    expected: float  # targets x window / interval
    duplicates: int  # a probe less than half an interval after the previous one of its target
    unprobed: int  # targets with no probe at all in the window (when it spans an interval)

    @property
    def duplicate_share(self) -> float:
        return self.duplicates / self.requests if self.requests else 0.0


def steady(times: Sequence[Sequence[float]], start: float, end: float, interval: float) -> Steady:
    requests = duplicates = unprobed = 0
    for probes in times:
        lo, hi = bisect.bisect_left(probes, start), bisect.bisect_left(probes, end)
        inside = probes[lo:hi]
        requests += len(inside)
        previous = probes[lo - 1] if lo > 0 else None
        for at in inside:
            if previous is not None and at - previous < interval / 2:
                duplicates += 1
            previous = at
        if not inside and end - start >= interval:
            unprobed += 1
    return Steady(requests, len(times) * (end - start) / interval, duplicates, unprobed)


@dataclass(frozen=True)
class Failover:
    """What happened to the targets whose probe fell due while the killed agent's slots had no
    owner: ``orphaned`` (their next probe came more than ``tolerance`` after it was due), how
    long after the kill they were probed again, and those never probed again."""

    orphaned: int
    reprobed_p50: float | None  # seconds from the kill to the next probe, orphaned targets
    reprobed_max: float | None
    late_max: float | None  # seconds past the due time, worst orphaned target
    never: int  # orphaned and not probed again before the end

    def row(self) -> dict[str, Any]:
        return asdict(self)


def failover(
    times: Sequence[Sequence[float]],
    killed_at: float,
    interval: float,
    until: float,
    tolerance: float = 2.0,
) -> Failover:
    again: list[float] = []
    late: list[float] = []
    never = 0
    for probes in times:
        cut = bisect.bisect_right(probes, killed_at)
        if cut == 0:
            continue  # never probed before the kill: nothing to compare with
        due = probes[cut - 1] + interval
        if cut < len(probes):
            following = probes[cut]
            if following - due > tolerance:
                again.append(following - killed_at)
                late.append(following - due)
        elif due + tolerance < until:
            never += 1
    again.sort()
    return Failover(
        orphaned=len(again) + never,
        reprobed_p50=again[len(again) // 2] if again else None,
        reprobed_max=again[-1] if again else None,
        late_max=max(late) if late else None,
        never=never,
    )


def balance(values: Sequence[float | None]) -> float | None:
    """max / min of the agents' counts (None: an agent has none, or no count at all)."""
    counts = [value for value in values if value is not None]
    if not counts or len(counts) != len(values) or min(counts) <= 0:
        return None
    return max(counts) / min(counts)


def kept_up(
    completed: Sequence[float],
    windows: Sequence[float],
    slots: Sequence[float | None],
    targets: int,
    interval: float,
) -> tuple[list[float | None], float | None]:
    """The share of due probes each agent and the whole cluster completed in the window.

    Each agent's probes completed (``watchdesk_probes_total``, window delta) over its own
    window (its two scrapes); the cluster's rate over ``targets / interval``. An agent's due
    probes are its share of the slots times the targets (an estimate: a slot holds about
    ``targets / slots`` targets, by hash); agents that own no slot count (they do not split
    the targets) each owe every target."""
    rates = [
        done / window if window > 0 else 0.0
        for done, window in zip(completed, windows, strict=True)
    ]
    due = targets / interval
    if not due:
        return [None] * len(rates), None
    owned = [value or 0.0 for value in slots]
    split = all(value is not None for value in slots) and sum(owned) > 0
    shares = [value / sum(owned) for value in owned] if split else [1.0] * len(rates)
    each = [
        rate / (due * share) if share else None for rate, share in zip(rates, shares, strict=True)
    ]
    return each, sum(rates) / (due if split else due * len(rates))


def cpu_share(before: tuple[int, int], after: tuple[int, int]) -> float | None:
    """Busy share of all the box's CPUs between two ``(busy, all)`` tick readings."""
    spent = after[1] - before[1]
    return (after[0] - before[0]) / spent if spent > 0 else None
