"""``watchdesk tickets``, ``report`` and ``test-notify``: the commands that read the agent's
store or talk to the helpdesk and pagers (their imports stay off ``check-config``'s path)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from monitor.actions import AddNote
from monitor.cli import report as report_command
from monitor.cli.testnotify import run_test_notify
from monitor.config import Config
from monitor.errors import SecretError, StoreError
from monitor.store.factory import StoreReader, open_reader, store_key
from monitor.web.views import incident_row

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2


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


def tickets(config: Config, path: str, args: argparse.Namespace) -> int:
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


def test_notify(config: Config, path: str, args: argparse.Namespace) -> int:
    results = asyncio.run(run_test_notify(config))
    width = max(len(result.channel) for result in results)
    for result in results:
        verdict = "ok" if result.ok else "FAILED"
        print(f"{result.channel.ljust(width)}  {result.kind:<10}  {verdict:<6}  {result.detail}")
    return EXIT_OK if all(result.ok for result in results) else EXIT_FAILED


def report(config: Config, path: str, args: argparse.Namespace) -> int:
    return report_command.run(config, args, lambda: _existing_store(config))
