"""Scheduled ``[[reports]]``: mailed through the email pager's SMTP settings to a real SMTP
server (aiosmtpd), on the agent's manual clock, exactly at the scheduled minute and exactly once,
across restarts (no duplicate after one, a catch-up when the minute passed while the agent was
stopped); a failed send is tried again; ``watchdesk report --send`` and ``--html``."""

from __future__ import annotations

import csv
import io
import sqlite3
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from monitor.config import parse_config
from monitor.errors import ConfigError
from tests.agent_harness import START, Harness
from tests.fakes.smtp import SmtpFake
from tests.helpers import run_cli
from tests.report_scenario import CONFIG, november

TORONTO = ZoneInfo("America/Toronto")


def toronto(year: int, month: int, day: int, hour: int, minute: int = 0, second: int = 0) -> float:
    return datetime(year, month, day, hour, minute, second, tzinfo=TORONTO).timestamp()


def reports_toml(port: int, extra: str = "") -> str:
    return f"""
[pagers.mail]
type = "email"
to = ["oncall@example.com"]
from_address = "watchdesk@example.com"
smtp_host = "127.0.0.1"
smtp_port = {port}
starttls = false

[calendars.support]
timezone = "America/Toronto"
"mon-fri" = "08:00-17:00"

[[reports]]
name = "acme-monthly"
schedule = "monthly"
day = 1
time = "08:00"
calendar = "support"
customer = "acme"
recipients = ["cio@acme.example", "it@acme.example"]
pager = "mail"
{extra}
"""


@pytest.fixture
def smtp() -> Iterator[SmtpFake]:
    with SmtpFake(user=None, mode="plain") as fake:
        yield fake


def subjects(smtp: SmtpFake) -> list[str]:
    return [str(received.message["Subject"]) for received in smtp.messages]


async def start(state: Path, smtp: SmtpFake, at: float, extra: str = "") -> Harness:
    """An agent (re)started at ``at`` on ``state``; its report job runs once, as at start-up."""
    h = await Harness.create(state, CONFIG + reports_toml(smtp.port, extra), start=at)
    await h.agent.reports.tick()
    return h


async def test_the_report_goes_out_at_its_minute_once_and_never_twice_across_restarts(
    tmp_path: Path, smtp: SmtpFake
) -> None:
    state = tmp_path / "state"
    h = await november(state)  # a month of history, agent running since Nov 1
    await h.close()
    h = await start(state, smtp, toronto(2026, 11, 30, 12))
    try:
        assert smtp.messages == []  # Nov 1's report was due before the report existed
        h.clock.set(toronto(2026, 12, 1, 7, 59, 59))
        await h.agent.reports.tick()
        assert smtp.messages == []
        h.clock.set(toronto(2026, 12, 1, 8, 0, 0))
        await h.agent.reports.tick()
        assert subjects(smtp) == ["watchdesk report acme-monthly: 2026-11-01 to 2026-11-30"]
        h.clock.set(toronto(2026, 12, 1, 8, 0, 30))
        await h.agent.reports.tick()
        assert len(smtp.messages) == 1
    finally:
        await h.close()

    (mail,) = smtp.messages
    assert sorted(mail.rcpt_tos) == ["cio@acme.example", "it@acme.example"]
    assert mail.mail_from == "watchdesk@example.com"
    html = mail.message.get_body(("html",))
    assert html is not None
    assert html.get_content().count('class="bar"') == 2 * 30
    (attachment,) = list(mail.message.iter_attachments())
    assert attachment.get_filename() == "watchdesk-acme-monthly-2026-11-01.csv"
    rows = list(csv.DictReader(io.StringIO(attachment.get_content())))
    assert {(r["date"], r["target"]) for r in rows} >= {("2026-11-01", "web"), ("2026-11-30", "db")}
    plain = mail.message.get_body(("plain",))
    assert plain is not None
    assert "web" in plain.get_content()

    # Restarted at 08:00:30 the same morning: it was sent, nothing goes again.
    h = await start(state, smtp, toronto(2026, 12, 1, 8, 0, 30))
    try:
        h.clock.set(toronto(2026, 12, 1, 8, 5))
        await h.agent.reports.tick()
    finally:
        await h.close()
    assert len(smtp.messages) == 1

    # Stopped over Jan 1, 08:00 and started at 08:20: December's report is caught up, once.
    h = await start(state, smtp, toronto(2027, 1, 1, 8, 20))
    try:
        assert subjects(smtp)[1:] == ["watchdesk report acme-monthly: 2026-12-01 to 2026-12-31"]
        h.clock.set(toronto(2027, 1, 1, 8, 21))
        await h.agent.reports.tick()
    finally:
        await h.close()
    h = await start(state, smtp, toronto(2027, 1, 1, 9))
    await h.close()
    assert len(smtp.messages) == 2
    with sqlite3.connect(state / "watchdesk.sqlite3") as db:
        sent = db.execute("SELECT report, state FROM reports_sent ORDER BY period_start").fetchall()
    assert sent == [("acme-monthly", "sent"), ("acme-monthly", "sent")]


async def test_a_failed_send_is_tried_again_after_a_backoff(tmp_path: Path, smtp: SmtpFake) -> None:
    extra = """
[[reports]]
name = "daily-all"
schedule = "daily"
time = "06:30"
timezone = "UTC"
formats = ["csv"]
recipients = ["ops@example.com"]
pager = "mail"
"""
    h = await start(tmp_path / "state", smtp, START, extra)  # Tue 10:00 UTC
    try:
        smtp.fail_next("data", "451 4.3.0 Try again later")
        h.clock.set(START + 20.5 * 3600)  # Wed 06:30 UTC
        await h.agent.reports.tick()
        assert smtp.messages == []
        h.clock.advance(30)
        await h.agent.reports.tick()  # within its backoff: not yet
        assert smtp.messages == []
        h.clock.advance(31)
        await h.agent.reports.tick()
        assert subjects(smtp) == ["watchdesk report daily-all: 2026-11-24"]
        assert smtp.messages[0].message.get_body(("html",)) is None  # formats = ["csv"]
        text = h.agent.metrics.exposition().decode()
        assert 'watchdesk_reports_sent_total{report="daily-all",result="failure"} 1.0' in text
        assert 'watchdesk_reports_sent_total{report="daily-all",result="success"} 1.0' in text
    finally:
        await h.close()


async def test_a_send_cut_off_by_a_stop_is_not_repeated(
    tmp_path: Path, smtp: SmtpFake, caplog: pytest.LogCaptureFixture
) -> None:
    """Whether a mail left when the agent stopped mid-send is unknown: said, not resent."""
    state = tmp_path / "state"
    h = await start(state, smtp, toronto(2026, 11, 30, 12))
    due = toronto(2026, 12, 1, 8)
    period = (toronto(2026, 11, 1, 0), toronto(2026, 12, 1, 0))
    assert await h.agent.store.claim_report("acme-monthly", period, due, due)
    await h.close()
    h = await start(state, smtp, toronto(2026, 12, 1, 8, 1))
    await h.close()
    assert smtp.messages == []
    assert "may not have been sent" in caplog.text
    assert "watchdesk report --send acme-monthly" in caplog.text


def test_report_send_and_html_from_the_command_line(tmp_path: Path, smtp: SmtpFake) -> None:
    state = tmp_path / "state"
    config = tmp_path / "config.toml"
    config.write_text(f'[agent]\nstate_dir = "{state}"\n' + CONFIG + reports_toml(smtp.port))
    assert run_cli("report", "-c", str(config)).returncode == 2  # no store yet: refused
    state.mkdir()
    from monitor.store import SqliteDatabase

    SqliteDatabase(state).close()
    page = tmp_path / "report.html"
    sent = run_cli("report", "-c", str(config), "--send", "acme-monthly", "--html", str(page))
    assert sent.returncode == 0, sent.stderr
    assert "sent to cio@acme.example, it@acme.example" in sent.stdout
    assert len(smtp.messages) == 1
    assert page.read_text().count('class="bar"') == 2 * 30
    with sqlite3.connect(state / "watchdesk.sqlite3") as db:
        assert db.execute("SELECT state FROM reports_sent").fetchall() == [("sent",)]
    unknown = run_cli("report", "-c", str(config), "--send", "nope")
    assert unknown.returncode == 2
    assert 'no [[reports]] entry named "nope" (defined: acme-monthly)' in unknown.stderr
    local = tmp_path / "local.html"
    assert run_cli("report", "-c", str(config), "--html", str(local)).returncode == 0
    assert "Daily uptime, last 30 days" in local.read_text()
    smtp.stop()
    down = run_cli("report", "-c", str(config), "--send", "acme-monthly")
    assert down.returncode == 1
    assert "not sent: email: cannot connect" in down.stderr


def problems(text: str) -> dict[str, str]:
    with pytest.raises(ConfigError) as raised:
        parse_config(text)
    return {p.path: p.message for p in raised.value.problems}


def test_a_bad_report_names_its_dotted_key() -> None:
    base = CONFIG + reports_toml(25)
    found = problems(
        base.replace('time = "08:00"', 'time = "8am"')
        + '\n[[reports]]\nname = "x"\nschedule = "yearly"\n'
        + 'recipients = ["nobody"]\npager = "mail"\n'
    )
    assert found["reports.0.time"] == 'write times of day as "HH:MM", like "08:00"'
    assert found["reports.1.schedule"] == "must be 'monthly', 'weekly' or 'daily'"
    assert found["reports.1.recipients.0"].startswith('"nobody" is not an email address')
    found = problems(
        base.replace("day = 1", 'weekday = "mon"')
        .replace('customer = "acme"\nrecipients', 'customer = "acne"\nrecipients')
        .replace('pager = "mail"', 'pager = "mial"')
        .replace('calendar = "support"', 'calendar = "support"\ntimezone = "UTC"')
    )
    assert found["reports.0.weekday"].startswith('is for schedule = "weekly"')
    assert found["reports.0.customer"].startswith('customer "acne" is not defined')
    assert found["reports.0.pager"] == 'email pager "mial" is not defined; did you mean "mail"?'
    assert found["reports.0.timezone"].startswith("set calendar or timezone, not both")
    log_pager = base.replace('pager = "mail"', 'pager = "log"') + '[pagers.log]\ntype = "log"\n'
    assert "of type log" in problems(log_pager)["reports.0.pager"]


def test_check_config_exits_2_on_a_bad_report(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(CONFIG + reports_toml(25).replace('schedule = "monthly"', 'schedule = "m"'))
    result = run_cli("check-config", "--no-secrets", "-c", str(config))
    assert result.returncode == 2
    assert "reports.0.schedule: must be 'monthly', 'weekly' or 'daily'" in result.stderr
