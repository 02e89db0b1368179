"""The ``watchdesk`` command: run, check-config, probe-once, tickets, report, test-notify.

A bad config prints every problem as ``dotted.key.path: what is wrong`` and exits 2, on every
command, never with a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import resource
import signal
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from checks import HttpClients, ProbeResult
from monitor import __version__
from monitor.actions import AddNote
from monitor.agent import Agent
from monitor.cli import cluster, db, desk, report
from monitor.cli.testnotify import run_test_notify
from monitor.config import Config, TargetConfig, load_config
from monitor.config.secrets import read_api_token
from monitor.delivery.integrations import secret_problems
from monitor.errors import ConfigError, SecretError, StoreError
from monitor.logs import setup_logging
from monitor.probing import run_probe
from monitor.store.factory import StoreReader, open_reader, store_key
from monitor.taskdump import dump_tasks
from monitor.web.views import incident_row

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2

log = logging.getLogger("watchdesk")


def default_config_path() -> str:
    return os.environ.get("WATCHDESK_CONFIG") or "config.toml"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="watchdesk",
        description="Probe servers and sites; open tickets and page people when one goes down.",
    )
    parser.add_argument("--version", action="version", version=f"watchdesk {__version__}")
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
    report.add_arguments(command("report", "uptime and SLA report from the agent's store"))
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
    handlers = {
        "run": _run,
        "check-config": _check_config,
        "probe-once": _probe_once,
        "tickets": _tickets,
        "test-notify": _test_notify,
        "report": _report,
    }
    return handlers[args.command](config, path, args)


def _check_config(config: Config, path: str, args: argparse.Namespace) -> int:
    if not args.no_secrets:
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


def _run(config: Config, path: str, args: argparse.Namespace) -> int:
    setup_logging(
        args.log_format or config.agent.log_format, args.log_level or config.agent.log_level
    )
    if args.migrate and config.cluster is not None and db.migrate_now(config) != EXIT_OK:
        return EXIT_CONFIG
    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            return runner.run(_serve(config, path))
    except KeyboardInterrupt:
        return EXIT_OK


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop where it is installed (it halves the event loop's share of CPU), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def _raise_open_file_limit() -> None:
    """Thousands of probes in flight need thousands of sockets: lift the soft limit to the hard
    one (1024 is a common default)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


async def _serve(config: Config, path: str) -> int:
    _raise_open_file_limit()
    try:
        agent = Agent(config, config_path=path)
    except StoreError as error:
        log.error("%s: %s", store_key(config), error)
        return EXIT_CONFIG
    except SecretError as error:
        for problem in str(error).split("; "):
            log.error("%s", problem)
        return EXIT_CONFIG
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, agent.request_stop)
    loop.add_signal_handler(signal.SIGINT, agent.request_stop)
    loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(agent.reload()))
    loop.add_signal_handler(signal.SIGUSR1, dump_tasks)
    try:
        await agent.start()
    except StoreError as error:
        log.error("%s: %s", store_key(config), error)
        await agent.stop()
        return EXIT_CONFIG
    except SecretError as error:
        log.error("agent.api_token: %s", error)
        await agent.stop()
        return EXIT_CONFIG
    except OSError as error:
        log.error("agent.listen: cannot listen on %s: %s", config.agent.listen, error.strerror)
        await agent.stop()
        return EXIT_CONFIG
    try:
        await agent.wait_stopped()
    finally:
        await agent.stop()
    return EXIT_OK


def _probe_once(config: Config, path: str, args: argparse.Namespace) -> int:
    targets = list(config.targets)
    if args.target:
        known = {target.name for target in targets}
        unknown = [name for name in args.target if name not in known]
        if unknown:
            for name in unknown:
                print(f'--target: no target named "{name}" in {path}', file=sys.stderr)
            return EXIT_CONFIG
        targets = [target for target in targets if target.name in args.target]
    results = asyncio.run(_probe_all(targets))
    rows = [
        {
            "target": target.name,
            "kind": target.kind,
            "ok": result.ok,
            "duration_seconds": round(result.duration_seconds, 6),
            "reason": result.reason,
        }
        for target, result in zip(targets, results, strict=True)
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(_table(rows))
    return EXIT_OK if all(result.ok for result in results) else EXIT_FAILED


async def _probe_all(targets: list[TargetConfig]) -> list[ProbeResult]:
    clients = HttpClients(user_agent=f"watchdesk/{__version__}")
    limit = asyncio.Semaphore(200)

    async def one(target: TargetConfig) -> ProbeResult:
        async with limit:
            return await run_probe(target, clients)

    try:
        return list(await asyncio.gather(*(one(target) for target in targets)))
    finally:
        await clients.close()


def _table(rows: list[dict[str, object]]) -> str:
    header = ("TARGET", "KIND", "RESULT", "DURATION", "REASON")
    lines = [
        (
            str(row["target"]),
            str(row["kind"]),
            "ok" if row["ok"] else "FAIL",
            f"{float(row['duration_seconds']) * 1000:.1f}ms",  # type: ignore[arg-type]
            str(row["reason"]),
        )
        for row in rows
    ]
    widths = [max(len(cell) for cell in column) for column in zip(header, *lines, strict=False)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in (header, *lines)
    )


def _existing_store(config: Config) -> StoreReader | None:
    """The store the agent keeps (its SQLite file, or the cluster's database), or None (said
    on stderr) when there is none."""
    try:
        return open_reader(config)
    except StoreError as error:
        print(f"{store_key(config)}: {error}", file=sys.stderr)
        return None
    except SecretError as error:
        print(error, file=sys.stderr)
        return None


def _tickets(config: Config, path: str, args: argparse.Namespace) -> int:
    store = _existing_store(config)
    if store is None:
        return EXIT_CONFIG
    if args.notes is not None:
        try:
            return _notes(store, args.notes, config.agent.timezone, args.json)
        finally:
            store.close()
    try:
        listed = store.incidents(limit=200) if args.all else store.watched_incidents()
        rows = [
            incident_row(
                incident,
                store.actions_of(incident.id),
                store.notices(incident.id),
                store.storm_members(incident.id) if incident.kind == "storm" else (),
            )
            for incident in listed
            if args.all or incident.status == "open" or incident.reopened
        ]
    finally:
        store.close()
    if args.json:
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    if not rows:
        print("no open incidents" if not args.all else "no incidents")
        return EXIT_OK
    table = [
        {
            "INCIDENT": str(row["id"]),
            "TARGET": str(row["target"]),
            "STATUS": str(row["status"]),
            "PRIORITY": str(row["priority"]),
            "TIER": str(row["tier"]),
            "TICKET STATE": str(row["ticket_state"])
            + (f" ({row['reopens']}x reopened)" if row["reopens"] else ""),
            "OPENED": _when(row["opened_at"], config.agent.timezone),
            "TICKET": f"{row['backend']}#{row['ticket_id']}"
            if row["ticket_id"]
            else NO_TICKET.get(str(row["kind"]), "(pending)"),
            "OUTBOX": str(row["outbox"]),
            "LAST ERROR": str(row["last_reason"]),
        }
        for row in rows
    ]
    header, *lines = _columns(table).split("\n")
    print(header)
    for row, line in zip(rows, lines, strict=True):
        print(line)
        for notice in row["customer_tickets"]:  # a shared component's: what each customer got
            print(f"  -> customer {_customer_ticket(row, notice)}")
    return EXIT_OK


# Incidents with no ticket of their own: a storm's are its customers', the agent's pages only.
NO_TICKET = {"storm": "(per customer)", "agent": "(pages only)"}


def _customer_ticket(row: dict[str, Any], notice: dict[str, Any]) -> str:
    """What a customer behind a shared component got: their ticket, or a note on their own."""
    if notice["via_incident"] is not None:
        return f"{notice['customer']}: note on incident {notice['via_incident']}"
    ticket = f"{row['backend']}#{notice['ticket_id']}" if notice["ticket_id"] else "(pending)"
    return f"{notice['customer']}: ticket {ticket}, outbox {notice['outbox']}"


def _notes(store: StoreReader, incident_id: int, zone: str, as_json: bool) -> int:
    """Every note watchdesk wrote (or will write) on an incident's ticket, oldest first."""
    if store.incident(incident_id) is None:
        print(f"no incident {incident_id}", file=sys.stderr)
        return EXIT_FAILED
    notes = []
    for action in store.actions_of(incident_id):
        typed = action.action()
        if isinstance(typed, AddNote):
            notes.append(
                {
                    "written_at": action.created_at,
                    "public": typed.public,
                    "delivered": action.state == "done",
                    "body": typed.body,
                    # Set on a note for a customer's ticket of a shared component's outage.
                    "customer_ticket": typed.notice,
                }
            )
    if as_json:
        print(json.dumps(notes, indent=2))
        return EXIT_OK
    for note in notes:
        who = "customer-visible" if note["public"] else "internal"
        state = "" if note["delivered"] else " (not delivered yet)"
        if note["customer_ticket"]:
            who += f", on the ticket of customer {note['customer_ticket']}"
        print(f"--- {_when(note['written_at'], zone)}, {who}{state}")
        print(note["body"])
    return EXIT_OK


def _when(timestamp: object, zone: str) -> str:
    moment = datetime.fromtimestamp(float(timestamp), ZoneInfo(zone))  # type: ignore[arg-type]
    return moment.strftime("%Y-%m-%d %H:%M %Z")


def _columns(rows: list[dict[str, str]]) -> str:
    header = list(rows[0])
    widths = [max(len(h), *(len(row[h]) for row in rows)) for h in header]
    lines = [header, *([row[h] for h in header] for row in rows)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def _test_notify(config: Config, path: str, args: argparse.Namespace) -> int:
    results = asyncio.run(run_test_notify(config))
    width = max(len(result.channel) for result in results)
    for result in results:
        verdict = "ok" if result.ok else "FAILED"
        print(f"{result.channel.ljust(width)}  {result.kind:<10}  {verdict:<6}  {result.detail}")
    return EXIT_OK if all(result.ok for result in results) else EXIT_FAILED


def _report(config: Config, path: str, args: argparse.Namespace) -> int:
    return report.run(config, args, lambda: _existing_store(config))
