"""The ``watchdesk`` command: run, check-config, probe-once, tickets, report, test-notify.

A bad config prints every problem as ``dotted.key.path: what is wrong`` and exits 2, on every
command, never with a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from monitor.cli import cluster, db, desk
from monitor.config import Config, load_config
from monitor.config.secrets import read_api_token
from monitor.errors import ConfigError, SecretError

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2


def default_config_path() -> str:
    return os.environ.get("WATCHDESK_CONFIG") or "config.toml"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="watchdesk",
        description="Probe servers and sites; open tickets and page people when one goes down.",
    )
    parser.add_argument("--version", action=_Version, nargs=0, help="show the version and exit")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument(
            "-c",
            "--config",
            default=None,
            help="config file (default: $WATCHDESK_CONFIG, then ./config.toml)",
        )
        return sub

    run = command("run", "run the agent until SIGTERM/SIGINT; SIGHUP reloads the config")
    run.add_argument("--log-format", choices=["plain", "json"], default=None)
    run.add_argument("--log-level", choices=["debug", "info", "warning", "error"], default=None)
    run.add_argument(
        "--migrate",
        action="store_true",
        help="with [cluster]: apply the database's schema migrations before starting",
    )
    check = command("check-config", "validate the config and print a one-line summary")
    check.add_argument(
        "--no-secrets",
        action="store_true",
        help="do not read the secrets the config points to (lint a config without them)",
    )
    _report_arguments(command("report", "uptime and SLA report from the agent's store"))
    command("test-notify", "send a test ticket and a test page through every configured channel")
    tickets = command("tickets", "list incidents and their tickets from the agent's store")
    tickets.add_argument("--all", action="store_true", help="resolved incidents too")
    tickets.add_argument("--json", action="store_true", help="print one JSON array")
    tickets.add_argument(
        "--notes", type=int, metavar="ID", help="the notes on incident ID's ticket, oldest first"
    )
    desk.add_commands(command)
    db.add_commands(command)
    cluster.add_command(command)
    probe_once = command("probe-once", "probe each target once and print the results")
    probe_once.add_argument("--target", action="append", help="only this target (repeatable)")
    probe_once.add_argument("--json", action="store_true", help="print one JSON array")
    return parser


def _report_arguments(report: argparse.ArgumentParser) -> None:
    """``watchdesk report``'s options (its module, monitor.cli.report, loads only to run it)."""
    report.add_argument("--since", default="30d", help="how far back, as a duration (default 30d)")
    report.add_argument("--format", choices=["table", "json", "csv"], default="table")
    report.add_argument(
        "--html", metavar="FILE", help="write the HTML report (daily uptime bars) to FILE"
    )
    report.add_argument(
        "--send",
        metavar="NAME",
        help="mail the [[reports]] entry NAME now, over its latest period",
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    path = args.config or default_config_path()
    try:
        config = load_config(path)
    except ConfigError as error:
        print(f"{path}: invalid config, {len(error.problems)} problem(s):", file=sys.stderr)
        for problem in error.problems:
            print(str(problem), file=sys.stderr)
        return EXIT_CONFIG
    if args.command in ("ack", "mute", "unmute", "explain"):
        return desk.run(config, args)
    if args.command == "db":
        return db.run(config, args)
    if args.command == "cluster":
        return cluster.run(config, args)
    return _handler(args.command)(config, path, args)


Handler = Callable[[Config, str, argparse.Namespace], int]


def _handler(command: str) -> Handler:
    """The command's function, its module imported only now: what ``run`` needs (the agent,
    aiohttp, the web app) is not what ``check-config`` needs."""
    if command == "check-config":
        return _check_config
    if command in ("run", "probe-once"):
        from monitor.cli import serve

        return serve.run if command == "run" else serve.probe_once
    from monitor.cli import store_views

    handlers: dict[str, Handler] = {
        "tickets": store_views.tickets,
        "test-notify": store_views.test_notify,
        "report": store_views.report,
    }
    return handlers[command]


class _Version(argparse.Action):
    """``--version``: the installed version, read from the package metadata only when asked
    (importlib.metadata costs 30 ms on every other command)."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        from monitor import __version__

        print(f"watchdesk {__version__}")
        parser.exit()


def _check_config(config: Config, path: str, args: argparse.Namespace) -> int:
    if not args.no_secrets:
        from monitor.delivery.integrations import secret_problems

        problems = secret_problems(config)
        try:
            read_api_token(config)
        except SecretError as error:
            problems.insert(0, f"agent.api_token: {error}")
        if config.cluster is not None:
            problems[:0] = db.url_problems(config)
        if problems:
            print(f"{path}: {len(problems)} secret(s) cannot be read:", file=sys.stderr)
            for problem in problems:
                print(problem, file=sys.stderr)
            return EXIT_CONFIG
    print(config.summary())
    return EXIT_OK
