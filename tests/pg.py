"""A real PostgreSQL server for the tests (SCALEOUT.md, "Testing it for real").

Debian's ``postgresql`` (``.ci/run`` installs it): one throwaway cluster per test session,
made by ``initdb`` in a temporary directory (as the ``postgres`` user through ``runuser`` when
the tests run as root, since initdb refuses root), started by ``pg_ctl -w`` on a Unix socket
in that directory with ``fsync=off``, and stopped and removed at the end. Each test gets its
own database, a copy of a template the migrations were applied to once (``CREATE DATABASE ...
TEMPLATE`` copies files: a few milliseconds), so tests never see each other's rows.

The server also listens on ``127.0.0.1:PORT`` (the same port number as its socket), so that a
test can put a TCP proxy of its own between an agent and the database (``tcp_url``, and
tests/tcpproxy.py) and cut that link.

Where the binaries are missing, ``PostgresServer.find`` says so and the tests skip with that
reason.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import psycopg

from monitor.store.postgres import migrate
from tests.helpers import free_port

TEMPLATE = "watchdesk_template"


def binaries() -> Path | None:
    """The newest installed PostgreSQL's bin directory (Debian keeps one per version)."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: (
            int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0
        ),
    )
    return Path(found[-1]).parent if found else None


class PostgresServer:
    def __init__(self, bin_dir: Path) -> None:
        self.bin = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="watchdesk-pg-"))
        self.data = self.root / "data"
        self.host = "127.0.0.1"
        self.port = free_port()
        self._as_postgres = os.geteuid() == 0
        self._names = itertools.count(1)
        if self._as_postgres:
            shutil.chown(self.root, "postgres", "postgres")

    @classmethod
    def find(cls) -> PostgresServer | str:
        """A server ready to start, or why there is none."""
        bin_dir = binaries()
        if bin_dir is None:
            return "PostgreSQL is not installed (apt-get install postgresql; see .ci/run)"
        if os.geteuid() == 0:
            if shutil.which("runuser") is None:
                return "running as root without runuser: cannot run initdb as postgres"
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                return "running as root and there is no postgres user to run initdb as"
        return cls(bin_dir)

    def _run(self, *command: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if self._as_postgres else []
        subprocess.run(
            [*prefix, *command],
            check=True,
            capture_output=True,
            timeout=60,
            cwd=self.root,
        )

    def start(self) -> None:
        self._run(
            str(self.bin / "initdb"),
            "-D",
            str(self.data),
            "-A",
            "trust",
            "--no-sync",
            "-U",
            "postgres",
            "--no-locale",  # whatever LANG says, the server starts (C collation, UTF8)
            "-E",
            "UTF8",
        )
        for attempt in range(3):
            try:
                self._pg_ctl_start()
                break
            except subprocess.CalledProcessError:
                # The TCP port was free when picked, but another process may have bound it
                # since (the Unix socket alone never collided: it lives in our own directory).
                if attempt == 2:
                    raise
                self.port = free_port()
        with self.admin() as conn:
            conn.execute(f"CREATE DATABASE {TEMPLATE}")
        with psycopg.connect(self.url(TEMPLATE), autocommit=True) as conn:
            migrate.apply(conn)

    def _pg_ctl_start(self) -> None:
        settings = (
            f"-c listen_addresses='{self.host}' -c unix_socket_directories='{self.root}' "
            f"-c port={self.port} -c fsync=off -c synchronous_commit=off "
            "-c full_page_writes=off -c max_connections=200"
        )
        self._run(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.root / "server.log"),
            "-o",
            settings,
            "-w",
            "-t",
            "30",
            "start",
        )

    def halt(self) -> None:
        """Stop the server as an outage does (its clients' connections are cut)."""
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def resume(self) -> None:
        """Start the server again after ``halt``, on the same socket and port."""
        self._pg_ctl_start()

    def stop(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str) -> str:
        return f"postgresql://postgres@/{database}?host={self.root}&port={self.port}"

    def tcp_url(self, database: str, port: int | None = None) -> str:
        """The URL of ``database`` over TCP: to the server itself, or to ``port`` on
        127.0.0.1 where a test's proxy forwards to ``self.port``."""
        return f"postgresql://postgres@{self.host}:{port or self.port}/{database}"

    def admin(self) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(self.url("postgres"), autocommit=True)

    def new_database(self, migrated: bool = True) -> str:
        """A fresh database's URL: a copy of the migrated template, or empty."""
        name = f"test_{os.getpid()}_{next(self._names)}"
        template = TEMPLATE if migrated else "template0"
        with self.admin() as conn:
            conn.execute(f"CREATE DATABASE {name} TEMPLATE {template}")
        return self.url(name)

    def drop(self, url: str) -> None:
        name = database_name(url)
        with self.admin() as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def database_name(url: str) -> str:
    """The database a URL of this module names (either form, socket or TCP)."""
    return url.split("?")[0].rsplit("/", 1)[-1]


def apply_first_migrations(conn: Any, count: int) -> None:
    """Bring an unmigrated database to the schema of its first ``count`` migrations, recorded in
    the ledger as ``watchdesk db migrate`` records them: a database of an older release."""
    from monitor.store.postgres import migrate

    conn.execute(migrate.CREATE_LEDGER)
    for step in migrate.migrations()[:count]:
        conn.execute(step.sql)
        conn.execute(
            "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
            (step.version, step.name),
        )
