"""What a report shows: uptime with maintenance left out (and shown), the daily CSV, the HTML's
30 daily uptime bars per target in the right colours, and the same bars as a browser draws
them (headless Chromium, its screenshot's pixels read back)."""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from pathlib import Path

import pytest

from monitor.reporting.csvfile import daily_csv
from monitor.reporting.figures import Report, build_report
from monitor.reporting.html import AMBER, GREEN, GREY, RED, render_html
from monitor.reporting.text import as_table
from monitor.reporting.timelines import ReportData
from tests.png import read_png
from tests.report_scenario import DEC_1, NOV_1, november

CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture
async def report(tmp_path: Path) -> AsyncIterator[Report]:
    h = await november(tmp_path / "state")
    try:
        data = await ReportData.fetch(h.agent.store)
        yield build_report(data, h.config, NOV_1, DEC_1, bars=30)
    finally:
        await h.close()


def test_uptime_leaves_maintenance_out_and_shows_it(report: Report) -> None:
    rows = {row.target: row for row in report.targets}
    web = rows["web"]
    # The hour down inside the window (Nov 15, 02:00-04:00) is not downtime; the window's two
    # hours are measured neither up nor down.
    assert web.maintenance_seconds == 2 * 3600
    assert web.downtime_seconds == 330 + 7230  # Nov 10 and Nov 21, from the first failed check
    month = 30 * 86400
    assert web.observed_seconds == month - 2 * 3600
    assert web.uptime_percent == pytest.approx(100 * (1 - 7560 / (month - 7200)))
    # db had no verdict before its first probe on Nov 5: measured from then.
    assert rows["db"].observed_seconds == 26 * 86400
    assert rows["db"].uptime_percent == 100.0
    assert report.customers[0].maintenance_seconds == 2 * 3600
    table = as_table(report)
    assert "MAINTENANCE" in table
    assert any(line.split()[:2] == ["web", "acme"] and "2h" in line for line in table.splitlines())

    days = {(r["date"], r["target"]): r for r in csv.DictReader(io.StringIO(daily_csv(report)))}
    assert len(days) == 2 * 30  # one row per target per day of November
    window_day = days[("2026-11-15", "web")]
    assert (window_day["downtime_seconds"], window_day["maintenance_seconds"]) == ("0", "7200")
    assert window_day["uptime_percent"] == "100.0000"
    assert window_day["measured_seconds"] == str(86400 - 7200)
    assert days[("2026-11-21", "web")]["downtime_seconds"] == "7230"
    assert days[("2026-11-21", "web")]["incidents"] == "1"
    assert days[("2026-11-02", "db")]["uptime_percent"] == ""  # no data yet


class _Bars(HTMLParser):
    """target -> [(day, fill)] of each row of daily bars."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, list[tuple[str, str]]] = {}
        self._in_name = False
        self._target = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "th" and values.get("scope") == "row":
            self._in_name = True
        elif tag == "rect" and values.get("class") == "bar":
            self.rows[self._target].append((str(values["data-day"]), str(values["fill"])))

    def handle_data(self, data: str) -> None:
        if self._in_name:
            self._target = data.strip()
            self.rows[self._target] = []
            self._in_name = False


def expected_colours() -> dict[str, list[str]]:
    web = [GREEN] * 30
    web[10 - 1] = AMBER  # Nov 10: 5m30s down, 99.6%
    web[21 - 1] = RED  # Nov 21: two hours down
    return {"web": web, "db": [GREY] * 4 + [GREEN] * 26}


def test_each_target_has_30_daily_bars_coloured_by_uptime(report: Report) -> None:
    parser = _Bars()
    parser.feed(render_html(report, "November", DEC_1))
    assert set(parser.rows) == {"web", "db"}
    for target, colours in expected_colours().items():
        bars = parser.rows[target]
        assert len(bars) == 30
        assert [day for day, _ in bars] == [f"2026-11-{d:02d}" for d in range(1, 31)]
        assert [fill for _, fill in bars] == colours, target


def _hex(rgb: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def bar_rows(shot: Path) -> list[list[str]]:
    """Each horizontal band of bar-coloured pixels in the screenshot, read along its middle
    line left to right as one colour per bar (runs of the same colour, gaps between)."""
    image = read_png(shot)
    colours = {GREEN, AMBER, RED, GREY}
    bands: list[tuple[int, int]] = []
    for y in range(image.height):
        hits = sum(_hex(image.pixel(x, y)) in colours for x in range(0, image.width, 3))
        if hits >= 40:  # a row of bars, not a legend swatch
            if bands and bands[-1][1] == y - 1:
                bands[-1] = (bands[-1][0], y)
            else:
                bands.append((y, y))
    rows = []
    for top, bottom in bands:
        y = (top + bottom) // 2
        runs: list[str] = []
        previous = None
        for x in range(image.width):
            colour = _hex(image.pixel(x, y))
            if colour in colours and colour != previous:
                runs.append(colour)
            previous = colour if colour in colours else None
        rows.append(runs)
    return rows


@pytest.mark.skipif(not CHROMIUM.exists(), reason="no /usr/bin/chromium (apt-get install chromium)")
def test_a_browser_draws_the_bars_where_they_belong(report: Report, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    page.write_text(render_html(report, "November", DEC_1), encoding="utf-8")
    shot = tmp_path / "shot.png"
    subprocess.run(
        [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--screenshot={shot}",
            "--window-size=1200,800",
            page.as_uri(),
        ],
        capture_output=True,
        timeout=120,
        check=True,
    )
    shutil.rmtree(tmp_path / "profile", ignore_errors=True)
    expected = expected_colours()
    # Rows in the page's order (db, then web), each bar one run of its colour.
    assert bar_rows(shot) == [expected["db"], expected["web"]]
