"""``watchdesk db migrate`` and ``watchdesk db import``: the cluster's PostgreSQL database.

The PostgreSQL modules are imported by the functions that use them: psycopg costs every other
command a third of a second at start, for nothing.

Both need a ``[cluster]`` section (its URL is read from where ``database_url_env``/``_file``
point, and never printed). ``migrate`` is safe to run from every agent at once; ``import``
copies an agent's SQLite store into an empty database (``monitor.store.postgres.importer``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from monitor.config import Config
from monitor.config.secrets import read_database_url
from monitor.errors import SecretError, StoreError

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2


def add_commands(command: Callable[[str, str], argparse.ArgumentParser]) -> None:
    """Register ``db`` and its actions through the CLI's ``command(name, help)`` factory."""
    db = command("db", "the cluster's PostgreSQL database: migrate it, import a SQLite store")
    actions = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    up = actions.add_parser(
        "migrate", help="apply the schema migrations this watchdesk ships (idempotent)"
    )
    into = actions.add_parser(
        "import", help="copy an agent's SQLite store into the (empty) cluster database"
    )
    into.add_argument("sqlite", help="the SQLite store: an agent.state_dir or its file")
    into.add_argument(
        "--force", action="store_true", help="replace whatever the database holds (no merge)"
    )
    for parser in (up, into):
        parser.add_argument("-c", "--config", default=argparse.SUPPRESS, help="config file")


def run(config: Config, args: argparse.Namespace) -> int:
    if args.db_command == "migrate":
        return migrate_now(config)
    found = _database(config)
    if found is None or config.cluster is None:
        return EXIT_CONFIG
    url, where = found
    from monitor.store.postgres import importer

    try:
        counts = importer.import_store(
            Path(args.sqlite), url, config.cluster.vantage, force=args.force
        )
    except StoreError as error:
        print(f"cluster: {error}", file=sys.stderr)
        return EXIT_FAILED
    copied = ", ".join(f"{count} {table}" for table, count in counts.items())
    print(f"imported {args.sqlite} into the {where} (vantage {config.cluster.vantage}): {copied}")
    return EXIT_OK


def migrate_now(config: Config) -> int:
    """Apply the migrations the database lacks and say what was done: ``db migrate`` and
    ``run --migrate``."""
    found = _database(config)
    if found is None:
        return EXIT_CONFIG
    url, where = found
    from monitor.store.postgres import migrate

    try:
        applied = migrate.apply_to(url)
    except StoreError as error:
        print(f"cluster: {error}", file=sys.stderr)
        return EXIT_FAILED
    if applied:
        names = ", ".join(f"{m.version:04d}_{m.name}" for m in applied)
        print(f"{where}: applied {len(applied)} migration(s): {names}", flush=True)
    else:
        print(f"{where}: up to date (schema {migrate.latest()})", flush=True)
    return EXIT_OK


def url_problems(config: Config) -> list[str]:
    """What ``check-config`` says about the database URL: unreadable, or not a URL."""
    try:
        _url_of(config)
    except (SecretError, StoreError) as error:
        return [f"cluster.database_url: {error}"]
    return []


def _url_of(config: Config) -> tuple[str, str]:
    """The database URL and its description (which never holds the URL)."""
    from monitor.store.postgres.connect import describe

    url = read_database_url(config) or ""
    return url, describe(url)


def _database(config: Config) -> tuple[str, str] | None:
    """The database URL and its description, or None (said on stderr)."""
    if config.cluster is None:
        print(
            "cluster: `watchdesk db` works on the database of a [cluster] section, and this "
            "config has none (its store is the SQLite file in agent.state_dir)",
            file=sys.stderr,
        )
        return None
    try:
        return _url_of(config)
    except (SecretError, StoreError) as error:
        print(f"cluster.database_url: {error}", file=sys.stderr)
        return None
