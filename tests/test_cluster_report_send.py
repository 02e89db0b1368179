"""``watchdesk report --send NAME`` with ``[cluster]``: the report is built from the shared
PostgreSQL database and mailed, and the period's send is claimed in the same ledger as the
agents' scheduled sends, so no agent of the cluster mails that period again; a send that fails
gives the claim back."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from monitor.config import parse_config
from monitor.reporting.sender import due
from monitor.store.postgres import PostgresStore
from tests.fakes.smtp import SmtpFake
from tests.helpers import run_cli
from tests.report_scenario import CONFIG
from tests.test_scheduled_reports import reports_toml

pytestmark = pytest.mark.slow

CLUSTER = """
[cluster]
database_url_env = "WD_TEST_DATABASE_URL"
vantage = "east"
"""


@pytest.fixture
def smtp() -> Iterator[SmtpFake]:
    with SmtpFake(user=None, mode="plain") as fake:
        yield fake


def ledger(url: str) -> list[tuple[str, str]]:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute("SELECT report, state FROM reports_sent ORDER BY report").fetchall()
    return [(str(report), str(state)) for report, state in rows]


async def test_report_send_on_postgresql_is_claimed_once_for_the_whole_cluster(
    tmp_path: Path,
    smtp: SmtpFake,
    pg_url: str,
) -> None:
    text = f'[agent]\nstate_dir = "{tmp_path / "state"}"\n' + CONFIG
    text += reports_toml(smtp.port) + CLUSTER
    config = tmp_path / "config.toml"
    config.write_text(text)
    env = {"WD_TEST_DATABASE_URL": pg_url}

    sent = run_cli("report", "-c", str(config), "--send", "acme-monthly", env=env)
    assert sent.returncode == 0, sent.stderr
    assert "sent to cio@acme.example, it@acme.example" in sent.stdout
    assert len(smtp.messages) == 1
    assert ledger(pg_url) == [("acme-monthly", "sent")]
    assert not (tmp_path / "state").exists()  # the cluster's database, not a SQLite file

    # An agent's scheduler at that period's minute finds it taken: it mails nothing.
    item = due(parse_config(text), parse_config(text).reports[0], time.time())
    agent = PostgresStore(pg_url, "east")
    await agent.open()
    try:
        assert not await agent.claim_report("acme-monthly", item.period, item.scheduled_at, 0.0)
    finally:
        await agent.close()

    again = run_cli("report", "-c", str(config), "--send", "acme-monthly", env=env)
    assert again.returncode == 0, again.stderr
    assert len(smtp.messages) == 2  # mailed again on demand ...
    assert ledger(pg_url) == [("acme-monthly", "sent")]  # ... and claimed once

    # A send that fails gives its claim back: the agents still send the period.
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("DELETE FROM reports_sent")
    smtp.stop()
    down = run_cli("report", "-c", str(config), "--send", "acme-monthly", env=env)
    assert down.returncode == 1
    assert "not sent: email: cannot connect" in down.stderr
    assert ledger(pg_url) == []
