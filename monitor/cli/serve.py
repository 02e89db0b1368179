"""``watchdesk run`` and ``watchdesk probe-once``: the commands that probe.

Apart from ``monitor.cli.main`` so that the agent, aiohttp and the rest of what probing needs
are imported only by the commands that use them (``check-config`` at 50,000 targets must stay
under 1.5 s, and a third of that was imports).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import resource
import sys
from collections.abc import Callable
from typing import NoReturn

from checks import HttpClients, ProbeResult
from monitor import __version__, signals
from monitor.agent import Agent
from monitor.cli import db
from monitor.config import Config, TargetConfig
from monitor.errors import SecretError, StoreError
from monitor.logs import setup_logging
from monitor.probing import run_probe
from monitor.store.factory import store_key

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2

log = logging.getLogger("watchdesk")


def run(config: Config, path: str, args: argparse.Namespace) -> int:
    setup_logging(
        args.log_format or config.agent.log_format, args.log_level or config.agent.log_level
    )
    if args.migrate and config.cluster is not None and db.migrate_now(config) != EXIT_OK:
        return EXIT_CONFIG
    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            code = runner.run(_serve(config, path))
    except KeyboardInterrupt:
        return EXIT_OK
    _exit_at_once(code)


def _exit_at_once(code: int) -> NoReturn:
    """Exit without the interpreter's teardown, once the agent has stopped cleanly.

    By now the agent's stop has saved every target's state and closed the store, and the loop
    and its executor are shut down: nothing is left to save. What the teardown would still do
    is free the agent's millions of objects one by one (and run a last collection): 2 s of a
    mixed 20,000-target agent's exit after its log said ``stopped``, against the 5 s a SIGTERM
    has (issue 13). The log and the standard streams are flushed first."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)


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
    signals.install(asyncio.get_running_loop(), agent)
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


def probe_once(config: Config, path: str, args: argparse.Namespace) -> int:
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
