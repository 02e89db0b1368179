from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.helpers import FD_KEY, PD_KEY, AgentProcess, FakeProcess, free_port
from tests.pg import PostgresServer


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[[str], Path]:
    def write(text: str, name: str = "config.toml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return write


@pytest.fixture
def agent_port() -> int:
    return free_port()


@pytest.fixture
def agents() -> Iterator[list[AgentProcess]]:
    """Agent processes started by a test; any still running at the end is stopped."""
    started: list[AgentProcess] = []
    yield started
    for agent in started:
        agent.stop()


@pytest.fixture
def stand_ins() -> Iterator[tuple[FakeProcess, FakeProcess]]:
    """A Freshdesk and a PagerDuty stand-in, each in its own process, with the keys of
    ``tests.helpers.STAND_IN_ENV``."""
    freshdesk = FakeProcess("freshdesk", "--api-key", FD_KEY)
    pagerduty = FakeProcess("pagerduty", "--routing-key", PD_KEY)
    yield freshdesk, pagerduty
    freshdesk.stop()
    pagerduty.stop()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """One PostgreSQL cluster for the session (tests/pg.py); skips where none is installed."""
    server = PostgresServer.find()
    if isinstance(server, str):
        pytest.skip(server)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def pg_url(pg_server: PostgresServer) -> Iterator[str]:
    """The URL of a database of its own for this test, migrated to the current schema."""
    url = pg_server.new_database()
    yield url
    pg_server.drop(url)
