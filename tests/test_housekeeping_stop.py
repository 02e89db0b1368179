"""A stop while a housekeeping sweep is under way (monitor/housekeeping.py): the sweep gets its
grace to finish, and one cut short is a warning, not apscheduler's "Error running job" with a
traceback at ERROR, which an operator's log alerting would page on at every restart."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pytest

from monitor.housekeeping import STOP_GRACE, Housekeeping
from tests.agent_harness import Harness

CONFIG = """
[[targets]]
name = "web"
kind = "tcp"
host = "127.0.0.1"
port = 9
"""


async def _idle() -> None:
    return None


async def _stop_during(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, lasts: float
) -> tuple[list[str], float]:
    """Start the jobs with a ticket follow-up (it runs at once) that lasts ``lasts`` seconds,
    stop them while it runs; what it got to do, and how long the stop took."""
    harness = await Harness.create(tmp_path, CONFIG)
    steps: list[str] = []
    started = asyncio.Event()

    async def follow_up() -> None:
        steps.append("asked the helpdesk")
        started.set()
        await asyncio.sleep(lasts)
        steps.append("stored the answer")

    house = Housekeeping(_idle, _idle, follow_up, harness.agent.housekeeping.reports)
    caplog.set_level(logging.INFO)
    house.start(harness.config)
    await asyncio.wait_for(started.wait(), 10)
    began = time.monotonic()
    await house.stop()
    took = time.monotonic() - began
    await asyncio.sleep(0.05)  # apscheduler's done-callbacks run
    await harness.close()
    return steps, took


async def test_a_sweep_under_way_finishes_before_the_jobs_stop(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    steps, took = await _stop_during(tmp_path, caplog, lasts=0.3)
    assert steps == ["asked the helpdesk", "stored the answer"]
    assert took < STOP_GRACE
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


async def test_a_sweep_past_the_grace_is_cut_with_a_warning_not_an_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    steps, took = await _stop_during(tmp_path, caplog, lasts=60)
    assert steps == ["asked the helpdesk"]
    assert took < STOP_GRACE + 1
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    assert "ticket follow-up was cut short by the stop" in caplog.text
