"""``watchdesk report``: uptime and SLA figures from the store, per target, customer, priority
and tier (``monitor.reporting`` computes them; the scheduled ``[[reports]]`` mail the same
figures). ``--html FILE`` writes the HTML version, ``--send NAME`` mails a scheduled report
now.

Uptime comes from the state transitions, with each outage counted from its first failed
check (not from the moment the threshold was crossed), over the part of the period the
target was configured, maintenance windows left out (and shown on their own). The store keeps
state across restarts, so an outage that spans one is one outage.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable
from pathlib import Path

from monitor.config import Config
from monitor.durations import parse_duration
from monitor.errors import StoreError
from monitor.reporting.figures import Report
from monitor.reporting.figures import build_report as build_from_data
from monitor.reporting.html import BAR_DAYS, render_html
from monitor.reporting.sender import send_now
from monitor.reporting.text import as_csv, as_json, as_table
from monitor.reporting.timelines import ReportData
from monitor.store.factory import StoreReader, store_key

__all__ = ["as_csv", "as_json", "as_table", "build_report", "run"]

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2


def build_report(store: StoreReader, config: Config, since: float, until: float) -> Report:
    """The report over ``[since, until)`` of every target, from the store."""
    return build_from_data(ReportData.read(store), config, since, until)


def run(
    config: Config, args: argparse.Namespace, existing: Callable[[], StoreReader | None]
) -> int:
    if args.send is not None:
        return _send(config, args, existing)
    try:
        span = parse_duration(args.since)
    except ValueError as error:
        print(f"--since: {error}", file=sys.stderr)
        return EXIT_CONFIG
    now = time.time()
    store = existing()
    if store is None:
        return EXIT_CONFIG
    try:
        data = ReportData.read(store)
    finally:
        store.close()
    report = build_from_data(data, config, now - span, now, bars=BAR_DAYS if args.html else 0)
    if args.html:
        Path(args.html).write_text(render_html(report, "watchdesk report", now), encoding="utf-8")
    formats = {"table": as_table, "json": as_json, "csv": as_csv}
    print(formats[args.format](report), end="" if args.format == "csv" else "\n")
    return EXIT_OK


def _send(
    config: Config, args: argparse.Namespace, existing: Callable[[], StoreReader | None]
) -> int:
    names = [report.name for report in config.reports]
    if args.send not in names:
        print(
            f'--send: no [[reports]] entry named "{args.send}"'
            + (f" (defined: {', '.join(names)})" if names else ""),
            file=sys.stderr,
        )
        return EXIT_CONFIG
    store = existing()
    if store is None:
        return EXIT_CONFIG
    try:
        outcome = asyncio.run(send_now(config, args.send, store, time.time()))
    except StoreError as error:
        print(f"{store_key(config)}: {error}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        store.close()
    if args.html:
        Path(args.html).write_text(outcome.html, encoding="utf-8")
    if outcome.error is not None:
        print(f"report {args.send} not sent: {outcome.error}", file=sys.stderr)
        return EXIT_FAILED
    print(f"report {args.send} ({outcome.label}) sent to {', '.join(outcome.recipients)}")
    return EXIT_OK
