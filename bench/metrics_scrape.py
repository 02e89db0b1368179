"""How long one /metrics exposition takes at N targets, and how much it stalls the event loop.

The agent's own ``Metrics`` is filled as a running agent fills it (every target added, one
probe result each, up or down, a TLS expiry on a third of them); then the exposition is built
the way the HTTP handler builds it (in a worker thread) while a ticker on the event loop
measures how late it wakes (what a probe due meanwhile would see).

    python bench/metrics_scrape.py --targets 50000
    python bench/metrics_scrape.py --targets 50000 --scrapes 5 --json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from checks import ProbeResult
from monitor.config import parse_config
from monitor.metrics import Metrics


def config_text(count: int) -> str:
    targets = "".join(
        f'\n[[targets]]\nname = "t{i}"\nkind = "tcp"\nhost = "10.{i // 62500}.'
        f'{i // 250 % 250}.{i % 250 + 1}"\nport = 443\ncustomer = "c{i % 50}"\n'
        for i in range(count)
    )
    customers = "".join(f'\n[customers.c{c}]\nemail = "it@c{c}.example"\n' for c in range(50))
    return targets + customers


def filled(count: int) -> Metrics:
    config = parse_config(config_text(count), "bench.toml")
    metrics = Metrics("bench")
    for index, target in enumerate(config.targets):
        metrics.add_target(target)
        ok = index % 10 != 0
        expiry = 1_800_000_000.0 + index if index % 3 == 0 else None
        metrics.record(target.name, ProbeResult(ok, 0.0123, "ok", tls_expiry=expiry), 0)
        metrics.set_up(target.name, "up" if ok else "down")
    return metrics


async def ticker(period: float, worst: list[float], stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        due = loop.time() + period
        await asyncio.sleep(period)
        worst[0] = max(worst[0], loop.time() - due)


async def scrape(metrics: Metrics) -> tuple[float, float, int]:
    """One exposition in a worker thread: its seconds, the loop's worst lateness, its bytes."""
    loop = asyncio.get_running_loop()
    worst, stop = [0.0], asyncio.Event()
    tick = asyncio.create_task(ticker(0.005, worst, stop))
    await asyncio.sleep(0.02)
    started = time.perf_counter()
    # As the /metrics handler does: the per-target lines joined on the loop, the rest in a
    # worker thread.
    body = await loop.run_in_executor(None, metrics.exposition, metrics.targets.text())
    seconds = time.perf_counter() - started
    stop.set()
    await tick
    return seconds, worst[0], len(body)


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    metrics = filled(args.targets)
    fill_seconds = time.perf_counter() - started
    runs = [await scrape(metrics) for _ in range(args.scrapes)]
    return {
        "targets": args.targets,
        "fill_seconds": round(fill_seconds, 2),
        "scrape_seconds": [round(r[0], 3) for r in runs],
        "loop_worst_lateness_ms": [round(r[1] * 1000, 1) for r in runs],
        "bytes": runs[-1][2],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--targets", type=int, default=50_000)
    parser.add_argument("--scrapes", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = asyncio.run(main_async(args))
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>24}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
