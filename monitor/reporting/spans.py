"""Time spans as sorted lists of ``(start, end)``: outages from transitions, and the arithmetic
reports need on them (clip, merge, overlap)."""

from __future__ import annotations

from collections.abc import Iterable

from monitor.store import StoredTransition

Span = tuple[float, float]


def down_intervals(transitions: Iterable[StoredTransition], until: float) -> list[Span]:
    """Each outage as (first failed check, recovery), the last one open until ``until``."""
    intervals: list[Span] = []
    start: float | None = None
    for transition in transitions:
        if transition.current == "down" and start is None:
            start = transition.first_failure_at or transition.at
        elif transition.current != "down" and start is not None:
            intervals.append((start, transition.at))
            start = None
    if start is not None:
        intervals.append((start, until))
    return merge(intervals)


def merge(spans: Iterable[Span]) -> list[Span]:
    """Sorted, with overlapping and touching spans joined, empty ones dropped."""
    merged: list[Span] = []
    for start, end in sorted(spans):
        if end <= start:
            continue
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def clip(spans: Iterable[Span], low: float, high: float) -> list[Span]:
    return [(max(a, low), min(b, high)) for a, b in spans if b > low and a < high]


def total(spans: Iterable[Span]) -> float:
    return sum(b - a for a, b in spans)


def overlap(first: list[Span], second: list[Span]) -> float:
    """How long two merged lists of spans overlap."""
    found, i, j = 0.0, 0, 0
    while i < len(first) and j < len(second):
        low = max(first[i][0], second[j][0])
        high = min(first[i][1], second[j][1])
        if high > low:
            found += high - low
        if first[i][1] < second[j][1]:
            i += 1
        else:
            j += 1
    return found
