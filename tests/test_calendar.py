"""Business calendars against a brute-force, minute-by-minute reference, daylight-saving days
included (Toronto and Berlin change by an hour, Lord Howe by half an hour); and the SLA
deadlines counted on them (or on every hour) with the clocks paused while a ticket waits on the
customer."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.calendar import Calendar, parse_spans, weekday_spans
from monitor.policy.timeliness import clock_deadline

ZONES = ["UTC", "America/Toronto", "Europe/Berlin", "Australia/Lord_Howe", "Asia/Kolkata"]
# Around the 2026 changes: Toronto 03-08 and 11-01, Berlin 03-29 and 10-25, Lord Howe 04-05
# and 10-04.
STARTS = [
    datetime(2026, 3, 6).timestamp(),
    datetime(2026, 3, 27).timestamp(),
    datetime(2026, 4, 3).timestamp(),
    datetime(2026, 10, 2).timestamp(),
    datetime(2026, 10, 23).timestamp(),
    datetime(2026, 10, 30).timestamp(),
]


def brute_force(calendar: Calendar, start: float, end: float) -> float:
    """Open seconds by asking the definition at every minute (spans and DST are whole minutes)."""
    return 60.0 * sum(calendar.is_open(minute) for minute in range(int(start), int(end), 60))


@st.composite
def calendars(draw: st.DrawFn) -> Calendar:
    hours = {}
    # Quarter hours, with the hours clocks skip or repeat (01:00-03:00) drawn more often.
    edge = st.one_of(st.integers(0, 96), st.integers(4, 12))
    for day in range(7):
        edges = sorted(draw(st.sets(edge, max_size=4)))
        spans = [(a * 15, b * 15) for a, b in zip(edges[::2], edges[1::2], strict=False) if b > a]
        hours[day] = tuple(spans)
    holidays = draw(st.frozensets(st.dates(date(2026, 3, 1), date(2026, 11, 10)), max_size=30))
    return Calendar(ZoneInfo(draw(st.sampled_from(ZONES))), hours, holidays)


@settings(max_examples=200, deadline=None)
@given(
    calendars(),
    st.sampled_from(STARTS),
    st.integers(0, 5 * 24 * 60),
    st.integers(0, 4 * 24 * 60),
)
def test_open_time_matches_the_minute_by_minute_definition(
    calendar: Calendar, base: float, offset: int, length: int
) -> None:
    start = base + offset * 60
    end = start + length * 60
    assert calendar.open_seconds(start, end) == brute_force(calendar, start, end)


@settings(max_examples=80, deadline=None)
@given(calendars(), st.sampled_from(STARTS), st.integers(0, 3 * 24 * 60), st.integers(1, 600))
def test_a_deadline_in_open_time_is_exactly_that_much_open_time_away(
    calendar: Calendar, base: float, offset: int, minutes: int
) -> None:
    start = base + offset * 60
    deadline = calendar.add_open_time(start, minutes * 60)
    if deadline is None:
        assert calendar.open_seconds(start, start + 800 * 86400) < minutes * 60
        return
    assert calendar.open_seconds(start, deadline) == minutes * 60
    assert calendar.is_open(deadline - 1)


@pytest.mark.parametrize(
    ("spans", "day", "expected_hours"),
    [
        # Toronto falls back on 2026-11-01: 01:00-02:00 happens twice, 01:30-02:00 too.
        ("01:30-02:00", date(2026, 11, 1), 1.0),
        ("01:00-03:00", date(2026, 11, 1), 3.0),
        # ... and springs forward on 2026-03-08: 02:00-03:00 never happens.
        ("02:30-04:00", date(2026, 3, 8), 1.0),
        ("01:00-03:00", date(2026, 3, 8), 1.0),
    ],
)
def test_daylight_saving_days_count_the_hours_the_clocks_show(
    spans: str, day: date, expected_hours: float
) -> None:
    toronto = ZoneInfo("America/Toronto")
    calendar = Calendar(toronto, weekday_spans({"mon-sun": spans}))
    start = datetime(day.year, day.month, day.day, tzinfo=toronto).timestamp()
    assert calendar.open_seconds(start, start + 86400) == expected_hours * 3600
    assert calendar.open_seconds(start, start + 86400) == brute_force(
        calendar, start, start + 86400
    )


def test_a_friday_evening_ticket_meets_its_4_business_hours_on_monday() -> None:
    toronto = ZoneInfo("America/Toronto")
    calendar = Calendar(toronto, weekday_spans({"mon-fri": "08:00-17:00"}))
    friday_1800 = datetime(2026, 11, 20, 18, 0, tzinfo=toronto).timestamp()
    deadline = calendar.add_open_time(friday_1800, 4 * 3600)
    assert deadline == datetime(2026, 11, 23, 12, 0, tzinfo=toronto).timestamp()


def test_the_support_hours_of_the_policy() -> None:
    hours = weekday_spans({"mon-fri": "10:00-17:40", "sat": "09:30-13:30", "sun": "closed"})
    assert hours[0] == ((600, 1060),)
    assert hours[5] == ((570, 810),)
    assert hours[6] == ()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("8-17", "not a time of day"),
        ("17:00-08:00", "ends before it starts"),
        ("08:00-12:00, 11:00-13:00", "overlap"),
        ("08:00", "not a span"),
        ("08:60-09:00", "not a time of day"),
    ],
)
def test_a_bad_span_is_refused_with_words_a_person_can_act_on(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_spans(text)


def test_a_day_given_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="given twice"):
        weekday_spans({"mon-fri": "08:00-17:00", "fri": "08:00-12:00"})


def test_calendars_in_the_config_and_the_plan_that_uses_one() -> None:
    from monitor.config import parse_config

    config = parse_config(
        """
[agent]
timezone = "America/Toronto"

[calendars.support]
"mon-fri" = "10:00-17:40"
sat = "09:30-13:30"
sun = "closed"
holidays = [2026-12-25]

[sla.vip]
page_hours = "business"
calendar = "support"

[customers.acme]
sla = "vip"
"""
    )
    toronto = ZoneInfo("America/Toronto")
    support = config.calendar_of("acme")
    assert support.hours[5] == ((570, 810),)
    christmas = datetime(2026, 12, 25, 12, 0, tzinfo=toronto).timestamp()
    assert not support.is_open(christmas)
    default = config.calendar_of(None)  # from [business_hours]: mon-fri 08:00-17:00
    assert default.is_open(datetime(2026, 11, 24, 8, 30, tzinfo=toronto).timestamp())
    assert not support.is_open(datetime(2026, 11, 24, 8, 30, tzinfo=toronto).timestamp())


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('[calendars.x]\n"mon-fry" = "08:00-17:00"\n', 'calendars.x: "mon-fry" is not a day'),
        ('[calendars.x]\nmon = "8-5"\n', 'calendars.x: "8" is not a time of day'),
        ('[calendars.x]\ntimezone = "Mars/Base"\n', 'calendars.x.timezone: unknown time zone'),
        ('[sla.vip]\ncalendar = "suport"\n[calendars.support]\nmon = "08:00-17:00"\n',
         'sla.vip.calendar: calendar "suport" is not defined; did you mean "support"?'),
    ],
)  # fmt: skip
def test_a_bad_calendar_names_its_key(text: str, problem: str) -> None:
    from monitor.config import parse_config
    from monitor.errors import ConfigError

    with pytest.raises(ConfigError) as raised:
        parse_config(text)
    assert any(str(p).startswith(problem) for p in raised.value.problems), raised.value.problems


@st.composite
def pauses(draw: st.DrawFn, start: float) -> list[tuple[float, float | None]]:
    """Up to three pauses around ``start`` on whole minutes, overlapping or not, some still
    running (no end)."""
    found: list[tuple[float, float | None]] = []
    for _ in range(draw(st.integers(0, 3))):
        begin = start + 60 * draw(st.integers(-24 * 60, 2 * 24 * 60))
        length = draw(st.one_of(st.none(), st.integers(1, 24 * 60)))
        found.append((begin, None if length is None else begin + 60 * length))
    return found


def brute_deadline(
    calendar: Calendar | None,
    start: float,
    minutes: int,
    paused: list[tuple[float, float | None]],
    horizon: int,
) -> float | None:
    """The end of the ``minutes``-th minute after ``start`` that is open (every minute is
    without a calendar) and in no pause, found by walking minutes; None beyond ``horizon``."""
    if minutes == 0:
        return start
    counted = 0
    for index in range(horizon):
        moment = start + 60 * index
        if calendar is not None and not calendar.is_open(moment):
            continue
        if any(a <= moment and (b is None or moment < b) for a, b in paused):
            continue
        counted += 1
        if counted == minutes:
            return moment + 60
    return None


@settings(max_examples=100, deadline=None)
@given(
    st.one_of(st.none(), calendars()),
    st.sampled_from(STARTS),
    st.integers(0, 2 * 24 * 60),
    st.integers(0, 600),
    st.data(),
)
def test_a_deadline_with_pauses_matches_the_minute_by_minute_definition(
    calendar: Calendar | None, base: float, offset: int, minutes: int, data: st.DataObject
) -> None:
    """Paused time (a ticket waiting on the customer) is not counted, in calendar time or in
    a business calendar's open time, DST days included: a pause outside open hours costs
    nothing, one that has not ended holds the deadline back for good."""
    start = base + offset * 60
    paused = data.draw(pauses(start))
    horizon = 4 * 24 * 60
    due = clock_deadline(calendar, start, minutes * 60, paused)
    expected = brute_deadline(calendar, start, minutes, paused, horizon)
    if expected is None:
        assert due > start + horizon * 60
    else:
        assert due == expected


def test_a_pause_in_the_night_costs_a_business_hours_target_nothing() -> None:
    toronto = ZoneInfo("America/Toronto")
    calendar = Calendar(toronto, weekday_spans({"mon-fri": "08:00-17:00"}))

    def at(day: int, hour: int, minute: int = 0) -> float:
        return datetime(2026, 11, day, hour, minute, tzinfo=toronto).timestamp()

    opened = at(24, 5)  # Tuesday, before opening: due at 12:00 without pauses
    assert clock_deadline(calendar, opened, 4 * 3600) == at(24, 12)
    assert clock_deadline(calendar, opened, 4 * 3600, [(at(24, 6), at(24, 7, 30))]) == at(24, 12)
    assert clock_deadline(calendar, opened, 4 * 3600, [(at(24, 9), at(24, 10))]) == at(24, 13)
    assert clock_deadline(None, opened, 4 * 3600, [(at(24, 6), at(24, 7, 30))]) == at(24, 10, 30)
    assert clock_deadline(calendar, opened, 4 * 3600, [(at(24, 9), None)]) == float("inf")
