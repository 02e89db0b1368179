from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from monitor.config import parse_config
from monitor.delivery.integrations import build_backend
from tests.cluster_harness import Cluster
from tests.helpdesks import ENV, NAMES, Helpdesk, helpdesk
from tests.helpers import FD_KEY, PD_KEY, AgentProcess, FakeProcess, free_port
from tests.pg import PostgresServer
from ticketing.backends.local import LocalBackend
from ticketing.base import TicketBackend


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


@pytest.fixture(params=NAMES)
async def desk_and_backend(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> AsyncIterator[tuple[Helpdesk, TicketBackend]]:
    """Each helpdesk's stand-in (``tests.helpdesks``) with the real backend that talks to it."""
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    async with helpdesk(request.param) as desk:
        config = parse_config(f'[agent]\nstate_dir = "{tmp_path}"\n' + desk.toml())
        backend = build_backend(config)
        if isinstance(backend, LocalBackend):
            local = backend
            desk.bind(lambda: local)
        yield desk, backend
        await backend.aclose()


@pytest.fixture
def make_cluster(pg_server: PostgresServer, tmp_path: Path) -> Iterator[Callable[..., Cluster]]:
    """``make_cluster(body, agents=2, ...)``: agents on one database of their own
    (tests/cluster_harness.py); every agent, proxy and database is gone at the end."""
    made: list[Cluster] = []

    def make(body: str, **options: object) -> Cluster:
        cluster = Cluster(pg_server, tmp_path / f"cluster{len(made)}", body, **options)  # type: ignore[arg-type]
        made.append(cluster)
        return cluster

    yield make
    for cluster in made:
        cluster.close()
