"""When a scheduled report is due and what it covers, in its zone and across daylight-saving
changes; and the maintenance time reports leave out of uptime."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from monitor.config.model import MaintenanceWindow, TargetConfig
from monitor.config.reports import ReportSection
from monitor.policy.maintenance import target_spans
from monitor.reporting.schedule import latest_occurrence, period_label, period_of

TORONTO = ZoneInfo("America/Toronto")


def local(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=TORONTO)


def section(**keys: object) -> ReportSection:
    return ReportSection.model_validate(
        {"name": "r", "recipients": ["a@b.example"], "pager": "mail", **keys}
    )


def test_a_monthly_report_on_the_31st_goes_on_the_last_day_of_shorter_months() -> None:
    report = section(schedule="monthly", day=31, time="08:00")
    due = latest_occurrence(report, TORONTO, local(2027, 3, 1, 7, 0).timestamp())
    assert due == local(2027, 2, 28, 8, 0)
    assert period_of(report, due) == (
        local(2027, 1, 1).timestamp(),
        local(2027, 2, 1).timestamp(),
    )
    at_minute = latest_occurrence(report, TORONTO, local(2027, 3, 31, 8, 0).timestamp())
    assert at_minute == local(2027, 3, 31, 8, 0)  # due at the minute itself, not after it


def test_a_weekly_report_covers_the_week_before_monday_to_monday() -> None:
    report = section(schedule="weekly", weekday="mon", time="07:30")
    due = latest_occurrence(report, TORONTO, local(2026, 11, 25, 12).timestamp())  # Wednesday
    assert due == local(2026, 11, 23, 7, 30)
    start, end = period_of(report, due)
    assert (start, end) == (local(2026, 11, 16).timestamp(), local(2026, 11, 23).timestamp())
    assert period_label((start, end), TORONTO) == "2026-11-16 to 2026-11-22"
    early = latest_occurrence(report, TORONTO, local(2026, 11, 23, 7, 29).timestamp())
    assert early == local(2026, 11, 16, 7, 30)


def test_a_daily_report_over_the_day_the_clocks_went_back_covers_25_hours() -> None:
    report = section(schedule="daily", time="08:00")
    due = latest_occurrence(report, TORONTO, local(2026, 11, 2, 9).timestamp())
    start, end = period_of(report, due)
    assert end - start == 25 * 3600  # Nov 1, 2026: EDT to EST
    assert period_label((start, end), TORONTO) == "2026-11-01"


def test_a_duration_period_ends_at_the_scheduled_minute() -> None:
    report = section(schedule="weekly", weekday="fri", time="17:00", period="7d")
    due = latest_occurrence(report, TORONTO, local(2026, 11, 28, 0).timestamp())
    assert period_of(report, due) == (due.timestamp() - 7 * 86400, due.timestamp())
    assert period_label(period_of(report, due), TORONTO) == "2026-11-20 17:00 to 2026-11-27 17:00"


def test_maintenance_time_of_weekly_and_one_off_windows() -> None:
    web = TargetConfig("web", "http", None, 30, 5, 3, 2, "urgent", tags=("edge",))
    weekly = MaintenanceWindow(
        (), ("edge",), datetime(1, 1, 1, 22).time(), datetime(1, 1, 1, 2).time(), ("sat",)
    )
    one_off = MaintenanceWindow(
        ("web",), (), local(2026, 11, 4, 1), local(2026, 11, 4, 3), (), "upgrade"
    )
    other = MaintenanceWindow(("db",), (), local(2026, 11, 5, 1), local(2026, 11, 5, 3))
    spans = target_spans(
        web,
        (weekly, one_off, other),
        local(2026, 10, 31, 23).timestamp(),  # inside the first weekly window
        local(2026, 11, 15).timestamp(),
        TORONTO,
    )
    hours = [round((end - start) / 3600, 2) for start, end in spans]
    # Oct 31 23:00 EDT to Nov 1 02:00 EST: 4 hours (the clocks went back at 02:00 EDT); the
    # one-off window; Saturday Nov 7, 22:00 to 02:00; Nov 14 22:00 up to the end, midnight.
    assert hours == [4.0, 2.0, 4.0, 2.0]
    assert datetime.fromtimestamp(spans[1][0], TORONTO) == local(2026, 11, 4, 1)
