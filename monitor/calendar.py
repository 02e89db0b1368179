"""Business calendars and the open time between two moments: the clock SLA targets count.

A calendar is opening hours per weekday in one time zone (several spans a day allowed, e.g.
``mon-fri = "08:00-12:00, 13:00-17:00"``, ``sat = "09:30-13:30"``), minus holidays. A moment is
open when its local date is no holiday and its local time of day falls in one of that weekday's
spans: that predicate is the definition, and everything else here is computed from it exactly,
daylight-saving changes included (a span that starts in the hour that is skipped opens when
the clocks read a time inside it; an hour that happens twice is open twice if it is in a span).

The open time of ``[start, end)`` is measured without walking minutes: the predicate can only
change where a local day, a span boundary (in either reading of an ambiguous local time) or a
UTC offset change falls, so it is evaluated once between consecutive such points.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# Spans are minutes of the local day, [start, end), end at most 24 * 60.
Span = tuple[int, int]
DAY_MINUTES = 24 * 60
# How far ahead add_open_time looks before it gives up (a calendar with no open time at all).
HORIZON_DAYS = 800


@dataclass(frozen=True)
class Calendar:
    zone: ZoneInfo
    hours: Mapping[int, Sequence[Span]]  # weekday (0 = Monday) -> spans in minutes
    holidays: frozenset[date] = field(default_factory=frozenset)

    @classmethod
    def always(cls) -> Calendar:
        """Open at every moment: calendar time."""
        return cls(ZoneInfo("UTC"), {day: ((0, DAY_MINUTES),) for day in range(7)})

    # ---- the definition --------------------------------------------------------------------

    def is_open(self, at: float) -> bool:
        local = datetime.fromtimestamp(at, self.zone)
        if local.date() in self.holidays:
            return False
        minute = local.hour * 60 + local.minute + local.second / 60 + local.microsecond / 6e7
        return any(start <= minute < end for start, end in self.hours.get(local.weekday(), ()))

    # ---- computed from it --------------------------------------------------------------------

    def open_intervals(self, start: float, end: float) -> Iterator[tuple[float, float]]:
        """The open parts of ``[start, end)``, in order, merged."""
        points = sorted({start, end, *(p for p in self._breakpoints(start, end))})
        current: tuple[float, float] | None = None
        for low, high in itertools.pairwise(points):
            if high <= start or low >= end or high <= low:
                continue
            if self.is_open((low + high) / 2):
                if current is not None and current[1] == low:
                    current = (current[0], high)
                else:
                    if current is not None:
                        yield current
                    current = (low, high)
        if current is not None:
            yield current

    def open_seconds(self, start: float, end: float) -> float:
        """How much of ``[start, end)`` is open time."""
        if end <= start:
            return 0.0
        return sum(high - low for low, high in self.open_intervals(start, end))

    def add_open_time(self, start: float, seconds: float) -> float | None:
        """The moment at which ``seconds`` of open time have passed since ``start``: a deadline
        counted in business hours. None when the calendar has no open time ahead."""
        remaining = seconds
        if remaining <= 0:
            return start
        low = start
        for _ in range(HORIZON_DAYS // 7):
            high = low + 7 * 86400
            for a, b in self.open_intervals(low, high):
                if b - a >= remaining:
                    return a + remaining
                remaining -= b - a
            low = high
        return None

    def next_open(self, at: float) -> float | None:
        """The first open moment at or after ``at``."""
        low = at
        for _ in range(HORIZON_DAYS // 7):
            for a, _b in self.open_intervals(low, low + 7 * 86400):
                return a
            low += 7 * 86400
        return None

    # ---- where the predicate may change --------------------------------------------------------

    def _breakpoints(self, start: float, end: float) -> Iterator[float]:
        first = datetime.fromtimestamp(start, self.zone).date() - timedelta(days=1)
        last = datetime.fromtimestamp(end, self.zone).date() + timedelta(days=1)
        day = first
        while day <= last:
            minutes = {0, *(m for span in self.hours.get(day.weekday(), ()) for m in span)}
            for minute in minutes:
                for fold in (0, 1):
                    yield self._local(day, minute, fold)
            yield from self._offset_changes(day)
            day += timedelta(days=1)

    def _local(self, day: date, minute: int, fold: int) -> float:
        if minute >= DAY_MINUTES:
            moment = datetime.combine(day + timedelta(days=1), time(0), self.zone)
        else:
            moment = datetime.combine(day, time(minute // 60, minute % 60), self.zone)
        return moment.replace(fold=fold).timestamp()

    def _offset_changes(self, day: date) -> Iterator[float]:
        """The instants during ``day`` (local) at which the UTC offset changes."""
        low = datetime.combine(day, time(0), self.zone).timestamp()
        high = datetime.combine(day + timedelta(days=1), time(0), self.zone).timestamp()
        if self._offset(low) == self._offset(high):
            return
        while high - low > 1:  # offsets change on whole seconds
            middle = (low + high) // 2
            if self._offset(middle) == self._offset(low):
                low = middle
            else:
                high = middle
        yield high

    def _offset(self, at: float) -> float:
        offset = datetime.fromtimestamp(at, self.zone).utcoffset()
        return offset.total_seconds() if offset is not None else 0.0


def parse_spans(text: str) -> tuple[Span, ...]:
    """ "08:00-12:00, 13:00-17:00" -> ((480, 720), (780, 1020)); "closed" -> (); ValueError
    with a message a person can act on."""
    cleaned = text.strip().lower()
    if cleaned in ("", "closed"):
        return ()
    spans: list[Span] = []
    for part in cleaned.split(","):
        begin, sep, finish = part.strip().partition("-")
        if not sep:
            raise ValueError(f'"{part.strip()}" is not a span; write it like "08:00-17:00"')
        low, high = _minute(begin), _minute(finish)
        if high <= low:
            raise ValueError(f'"{part.strip()}" ends before it starts')
        spans.append((low, high))
    spans.sort()
    for (_a, b), (c, _d) in itertools.pairwise(spans):
        if c < b:
            raise ValueError(f'spans "{text}" overlap')
    return tuple(spans)


def _minute(text: str) -> int:
    hours, sep, minutes = text.strip().partition(":")
    if not sep or not hours.isdigit() or not minutes.isdigit() or len(minutes) != 2:
        raise ValueError(f'"{text.strip()}" is not a time of day; write it like "08:30"')
    value = int(hours) * 60 + int(minutes)
    if int(minutes) >= 60 or value > DAY_MINUTES:
        raise ValueError(f'"{text.strip()}" is not a time of day between 00:00 and 24:00')
    return value


def weekday_spans(days: Mapping[str, str]) -> dict[int, tuple[Span, ...]]:
    """``{"mon-fri": "08:00-17:00", "sat": "09:30-13:30"}`` -> spans per weekday number."""
    hours: dict[int, tuple[Span, ...]] = {}
    for key, value in days.items():
        spans = parse_spans(value)
        for day in _days(key):
            if day in hours:
                raise ValueError(f'"{WEEKDAYS[day]}" is given twice')
            hours[day] = spans
    return hours


def _days(key: str) -> list[int]:
    first, sep, last = key.strip().lower().partition("-")
    if first not in WEEKDAYS or (sep and last not in WEEKDAYS):
        raise ValueError(f'"{key}" is not a day or range of days; write "mon" or "mon-fri"')
    a = WEEKDAYS.index(first)
    b = WEEKDAYS.index(last) if sep else a
    if b < a:
        raise ValueError(f'"{key}" runs backwards; write the earlier day first')
    return list(range(a, b + 1))
