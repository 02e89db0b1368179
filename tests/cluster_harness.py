"""Several real agent processes on one PostgreSQL database, for the multi-agent tests.

SCALEOUT.md's faults are process faults, so the tests use processes: ``Cluster`` starts N
``watchdesk run`` processes (tests/helpers.py ``AgentProcess``) on one database of the session's
``pg_server``, each with the same config but for ``agent.listen`` and ``agent.state_dir``
(the same ``[cluster]`` with short lease timings, the same targets, helpdesk and pagers), and
each reaching the database through a ``TcpProxy`` of its own (tests/tcpproxy.py) so that one
agent can be cut off while the others keep the database. Faults: ``kill`` (SIGKILL),
``pause``/``resume`` (SIGSTOP/SIGCONT: the zombie), ``cut``/``heal`` (the partition), and for
the database itself ``pg_server``'s own stop/start is the test's.

What a test waits for is read from the outside: the agents' HTTP endpoints and metrics, the
stand-ins' records, and the database (``db()``, a connection of the test's own, not through any
proxy). Every wait is bounded and says, when it times out, what it last saw and each agent's log
tail.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import psycopg
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import STAND_IN_ENV, AgentProcess, free_port, http_get
from tests.pg import PostgresServer, database_name
from tests.tcpproxy import CutMode, TcpProxy

T = TypeVar("T")
URL_ENV = "WD_TEST_DATABASE_URL"
SLOTS_METRIC = "watchdesk_cluster_slots_owned"


@dataclass(frozen=True)
class Timings:
    """``[cluster]`` timings short enough for a test, in the ratios the config demands:
    ``lease_renew`` at most a third of ``lease_ttl``, and ``claim_ttl`` at least twice
    ``ticketing.request_timeout``, so a body must set a ``request_timeout`` of at most 2 s
    (``tests.helpers.freshdesk_toml`` does)."""

    lease_ttl: float = 3.0
    lease_renew: float = 1.0
    claim_ttl: float = 4.0
    db_lost_page_after: float = 10.0
    slots: int = 64

    @property
    def takeover(self) -> float:
        """The design's bound from a dead owner to its slots' new owner: the lease expires,
        and the next renew of another agent takes it."""
        return self.lease_ttl + self.lease_renew

    def toml(self, vantage: str) -> str:
        return f"""
[cluster]
database_url_env = "{URL_ENV}"
vantage = "{vantage}"
slots = {self.slots}
lease_ttl = "{_ms(self.lease_ttl)}"
lease_renew = "{_ms(self.lease_renew)}"
claim_ttl = "{_ms(self.claim_ttl)}"
db_lost_page_after = "{_ms(self.db_lost_page_after)}"
"""


def _ms(seconds: float) -> str:
    return f"{round(seconds * 1000)}ms"


class Metrics:
    """One scrape of an agent's /metrics: samples by name, summed over matching labels."""

    def __init__(self, text: str) -> None:
        self.samples: dict[str, list[tuple[dict[str, str], float]]] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                self.samples.setdefault(sample.name, []).append((sample.labels, sample.value))

    def value(self, name: str, **labels: str) -> float | None:
        """The sum of the samples of ``name`` whose labels include ``labels``; None when the
        agent exports no such sample at all."""
        found = [
            value
            for have, value in self.samples.get(name, [])
            if all(have.get(key) == want for key, want in labels.items())
        ]
        return sum(found) if found else None

    def by_label(self, name: str, label: str) -> dict[str, float]:
        totals: dict[str, float] = {}
        for labels, value in self.samples.get(name, []):
            if label in labels:
                totals[labels[label]] = totals.get(labels[label], 0.0) + value
        return totals


@dataclass
class Member:
    """One agent of the cluster: its config, its link to the database, its processes."""

    index: int
    port: int
    config: Path
    env: dict[str, str]
    proxy: TcpProxy | None
    process: AgentProcess | None = None
    history: list[AgentProcess] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.proc.poll() is None

    def start(self, migrate: bool = False) -> AgentProcess:
        assert not self.running, f"agent {self.index} is already running"
        extra = ("--migrate",) if migrate else ()
        self.process = AgentProcess(self.config, self.port, env=self.env, extra=extra)
        self.history.append(self.process)
        return self.process

    def get(self, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
        return http_get(self.base + path, timeout=timeout)

    def metrics(self) -> Metrics:
        status, body = self.get("/metrics")
        assert status == 200, body[:200]
        return Metrics(body.decode())

    def log_tail(self, lines: int = 30) -> str:
        if self.process is None:
            return "(not started)"
        return "\n".join(self.process.log().splitlines()[-lines:])


class Cluster:
    def __init__(
        self,
        pg: PostgresServer,
        workdir: Path,
        body: str,
        *,
        agents: int = 2,
        timings: Timings | None = None,
        env: dict[str, str] | None = None,
        proxied: bool = True,
        vantage: str = "test",
        migrated: bool = True,
        agent_extra: str = "",
    ) -> None:
        self.pg = pg
        self.timings = timings or Timings()
        self.url = pg.new_database(migrated=migrated)
        self.database = database_name(self.url)
        self.members: list[Member] = []
        workdir.mkdir(parents=True, exist_ok=True)
        for index in range(agents):
            proxy = TcpProxy(pg.host, pg.port).start() if proxied else None
            port = free_port()
            home = workdir / f"agent{index}"
            home.mkdir(exist_ok=True)
            config = home / "config.toml"
            config.write_text(
                f'[agent]\nlisten = "127.0.0.1:{port}"\nstate_dir = "{home / "state"}"\n'
                f'timezone = "UTC"\n{agent_extra}\n{body}\n{self.timings.toml(vantage)}'
            )
            url = pg.tcp_url(self.database, proxy.port if proxy else None)
            member_env = {**STAND_IN_ENV, **(env or {}), URL_ENV: url}
            self.members.append(Member(index, port, config, member_env, proxy))

    # --- processes --------------------------------------------------------------------------

    def start(self, *indexes: int, migrate: bool = False, wait: bool = True) -> None:
        """Start the given agents (all by default) together, then wait until each is ready."""
        chosen = [self.members[i] for i in indexes] if indexes else self.members
        for member in chosen:
            member.start(migrate=migrate)
        if wait:
            for member in chosen:
                assert member.process is not None
                member.process.wait_ready(timeout=30)

    def kill(self, index: int) -> float:
        """SIGKILL an agent (no flush, no handover); the moment it died."""
        process = self._process(index)
        process.proc.send_signal(signal.SIGKILL)
        process.proc.wait(timeout=10)
        died = time.monotonic()
        process.stop()  # closes its log
        return died

    def stop(self, index: int) -> int:
        """SIGTERM, the graceful stop (handover); its exit status."""
        return self._process(index).stop()

    def pause(self, index: int) -> None:
        self._process(index).signal(signal.SIGSTOP)

    def resume(self, index: int) -> None:
        self._process(index).signal(signal.SIGCONT)

    def cut(self, index: int, mode: CutMode = "reset") -> None:
        proxy = self.members[index].proxy
        assert proxy is not None, "an agent without a proxy (proxied=False) cannot be cut"
        proxy.cut(mode)

    def heal(self, index: int) -> None:
        proxy = self.members[index].proxy
        assert proxy is not None
        proxy.heal()

    def _process(self, index: int) -> AgentProcess:
        process = self.members[index].process
        assert process is not None, f"agent {index} was never started"
        return process

    # --- what the world sees ----------------------------------------------------------------

    def db(self) -> psycopg.Connection[tuple[Any, ...]]:
        """A connection of the test's own to the cluster's database (never cut)."""
        return psycopg.connect(self.pg.url(self.database), autocommit=True)

    def query(self, statement: str, *params: Any) -> list[tuple[Any, ...]]:
        with self.db() as conn:
            return conn.execute(statement, params).fetchall()

    def ready(self, index: int) -> bool:
        try:
            status, _ = self.members[index].get("/readyz", timeout=10)
        except OSError:
            return False
        return status == 200

    def slots_owned(self) -> list[float | None]:
        """Each running agent's ``watchdesk_cluster_slots_owned`` (None: not exported, or the
        agent is not running or does not answer)."""
        owned: list[float | None] = []
        for member in self.members:
            value = None
            if member.running:
                try:
                    value = member.metrics().value(SLOTS_METRIC)
                except OSError:
                    value = None
            owned.append(value)
        return owned

    def splits_slots(self) -> bool:
        """Whether these agents share slots at all (the leases of SCALEOUT.md): a running
        agent exports the slots it owns."""
        return any(value is not None for value in self.slots_owned())

    def logs(self) -> str:
        return "\n".join(
            f"--- agent {m.index} ({m.config.parent}) ---\n{m.log_tail()}" for m in self.members
        )

    # --- waiting ----------------------------------------------------------------------------

    def wait_until(
        self,
        probe: Callable[[], T | None],
        what: str,
        timeout: float = 20.0,
        every: float = 0.1,
    ) -> T:
        """Poll ``probe`` until it returns something truthy; that value."""
        deadline = time.monotonic() + timeout
        last: T | None = None
        while time.monotonic() < deadline:
            last = probe()
            if last:
                return last
            time.sleep(every)
        raise AssertionError(
            f"timed out after {timeout}s waiting for {what}; last: {last!r}\n{self.logs()}"
        )

    def wait_balanced(self, timeout: float, indexes: Iterable[int] | None = None) -> list[float]:
        """Until the given running agents (all running ones by default) own every slot
        between them, each within one slot of the fair share (the design's hysteresis); the
        counts."""
        chosen = list(indexes) if indexes is not None else None

        def balanced() -> list[float] | None:
            owned = self.slots_owned()
            picked = [
                owned[i]
                for i in (chosen if chosen is not None else range(len(owned)))
                if self.members[i].running
            ]
            if not picked or any(value is None for value in picked):
                return None
            counts = [float(value) for value in picked if value is not None]
            share = self.timings.slots / len(counts)
            fair = all(abs(count - share) <= 1 for count in counts)
            return counts if fair and sum(counts) == self.timings.slots else None

        return self.wait_until(balanced, "a fair share of the slots on every agent", timeout)

    def close(self) -> None:
        for member in self.members:
            for process in member.history:
                if process.proc.poll() is None:
                    process.proc.send_signal(signal.SIGCONT)  # a paused agent cannot stop
                process.stop()
            if member.proxy is not None:
                member.proxy.close()
        self.pg.drop(self.url)


def creates(freshdesk_state: dict[str, Any]) -> int:
    """Ticket creates the Freshdesk stand-in received (every attempt, answered or not)."""
    return [r["route"] for r in freshdesk_state["requests"]].count("create")


def triggers(pagerduty_state: dict[str, Any]) -> int:
    """Alerts the PagerDuty stand-in opened (open ones and resolved ones)."""
    return len(pagerduty_state["alerts"]) + len(pagerduty_state.get("resolved_alerts", []))
