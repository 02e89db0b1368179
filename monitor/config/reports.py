"""``[[reports]]``: scheduled reports, one table each. What spans other sections (the pager,
the customer, the calendar) is checked by ``schedules.parse_reports``."""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from monitor.config.types import ClockTime
from monitor.durations import parse_duration

# The period a report covers: the calendar month, week (Monday to Monday) or day before the
# one it is sent on, or a duration up to the moment it is sent ("30d").
PERIOD_KINDS = ("month", "week", "day")
DEFAULT_PERIOD = {"monthly": "month", "weekly": "week", "daily": "day"}


def _email(value: str) -> str:
    if not re.fullmatch(r"[^@\s]+@[^@\s]+", value):
        raise ValueError(f'"{value}" is not an email address, like "it@acme.example"')
    return value


Email = Annotated[str, AfterValidator(_email)]


class ReportSection(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    schedule: Literal["monthly", "weekly", "daily"]
    # monthly: the day of the month (31 = the last day of shorter months); weekly: the weekday.
    day: int | None = Field(default=None, ge=1, le=31)
    weekday: Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"] | None = None
    time: ClockTime = dt.time(8, 0)
    # The zone "time" is in: a [calendars.NAME]'s, or an IANA name; default agent.timezone.
    calendar: str | None = None
    timezone: str | None = None
    # One customer's targets; unset: every target.
    customer: str | None = None
    recipients: list[Email] = Field(min_length=1)
    formats: list[Literal["html", "csv"]] = Field(default=["html", "csv"], min_length=1)
    period: str | None = None
    # The [pagers.NAME] of type email whose SMTP settings send it.
    pager: str

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is None:
            return value
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f'unknown time zone "{value}"; use an IANA name like "America/Toronto" or "UTC"'
            ) from None
        return value

    @field_validator("period")
    @classmethod
    def _period(cls, value: str | None) -> str | None:
        if value is None or value in PERIOD_KINDS:
            return value
        try:
            seconds = parse_duration(value)
        except ValueError:
            seconds = 0.0
        if seconds <= 0:
            raise ValueError(
                f'"{value}" is not a period: write "month", "week", "day" (the one before the '
                'send) or a duration like "30d" (up to the send)'
            )
        return value

    @property
    def period_kind(self) -> str:
        """``month``, ``week``, ``day``, or a duration string."""
        return self.period or DEFAULT_PERIOD[self.schedule]
