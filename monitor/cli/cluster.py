"""``watchdesk cluster``: the agents of a cluster as its database sees them: vantage, host, how
many slots each holds, how long since it renewed its leases, which one coordinates; and per
vantage how many slots are held, free, or expired (waiting for another agent's next renew).

It reads the database only (a stopped agent shows until its heartbeat is a day old), so it
answers the same from any machine with the config."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

from monitor.config import Config
from monitor.errors import SecretError, StoreError

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2


def add_command(command: Callable[[str, str], argparse.ArgumentParser]) -> None:
    parser = command("cluster", "the agents of the cluster, their slots and lease ages")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run(config: Config, args: argparse.Namespace) -> int:
    if config.cluster is None:
        print(
            "cluster: `watchdesk cluster` shows the agents of a [cluster], and this config has "
            "none (one agent, its SQLite file in agent.state_dir)",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    from monitor.store.factory import database_url
    from monitor.store.postgres import PostgresReader

    try:
        reader = PostgresReader(database_url(config) or "", config.cluster.vantage)
    except SecretError as error:
        print(error, file=sys.stderr)
        return EXIT_CONFIG
    except StoreError as error:
        print(f"cluster: {error}", file=sys.stderr)
        return EXIT_FAILED
    try:
        view = reader.cluster()
    except StoreError as error:
        print(f"cluster: {error}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        reader.close()
    if args.json:
        print(json.dumps(view.as_json(), indent=2))
        return EXIT_OK
    ttl = config.cluster.lease_ttl
    zone = ZoneInfo(config.agent.timezone)
    rows = [
        {
            "AGENT": agent.agent + (" *" if agent.agent == view.coordinator else ""),
            "VANTAGE": agent.vantage,
            "HOST": agent.host,
            "PID": str(agent.pid),
            "LISTEN": agent.listen,
            "STARTED": datetime.fromtimestamp(agent.started_at, zone).strftime("%Y-%m-%d %H:%M"),
            "HEARTBEAT": f"{agent.heartbeat_age:.1f}s ago",
            "SLOTS": str(agent.slots),
            "LEASES RENEWED": "-"
            if agent.expires_first is None
            else f"{max(0.0, ttl - agent.expires_first):.1f}s ago",
            "STATE": "live" if agent.heartbeat_age < ttl else "gone",
        }
        for agent in view.agents
    ]
    print(_table(rows) if rows else "no agents have registered")
    print()
    print(
        _table(
            [
                {
                    "VANTAGE": v.vantage,
                    "SLOTS": str(v.slots),
                    "HELD": str(v.held),
                    "FREE": str(v.free),
                    "EXPIRED": str(v.expired),
                    "LIVE AGENTS": str(
                        sum(a.vantage == v.vantage and a.heartbeat_age < ttl for a in view.agents)
                    ),
                }
                for v in view.vantages
            ]
        )
        if view.vantages
        else "no slots yet"
    )
    if view.coordinator is not None:
        print(f"\ncoordinator (*): {view.coordinator}, epoch {view.coordinator_epoch}")
    return EXIT_OK


def _table(rows: list[dict[str, str]]) -> str:
    header = list(rows[0])
    widths = [max(len(h), *(len(row[h]) for row in rows)) for h in header]
    lines = [header, *([row[h] for h in header] for row in rows)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )
