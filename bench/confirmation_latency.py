"""How long confirmation from several vantages adds to an outage's ticket.

Three vantages of one cluster run as real agent processes on a throwaway PostgreSQL (the test
suite's ``tests.pg``), each probing from its own loopback address (127.0.0.2/.3/.4); the
target's stand-in refuses two of them at once (east and west), ``min_vantages = 2``. The
figure is the time from the outage's start to the ticket's create request at the Freshdesk
stand-in, over ``--rounds`` outages (each recovered before the next). The bound the issue
sets is ``failure_threshold x interval + 2 s``: confirmation must cost no more than 2 s over
one vantage's own verdict.

    python bench/confirmation_latency.py --rounds 5 --interval 1s
    python bench/confirmation_latency.py --json

Not a timed test: the figures go into bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]  # tests.pg, tests.vantage_rig: the suite's throwaway services

from tests.cluster_rig import THRESHOLD, wait_until  # noqa: E402
from tests.helpers import FD_KEY, PD_KEY, FakeProcess  # noqa: E402
from tests.pg import PostgresServer  # noqa: E402
from tests.vantage_rig import VantageRig  # noqa: E402


class BenchRig(VantageRig):
    """The rig of the tests, but outages one after the other are not flapping here: each
    round must open its own ticket."""

    def config(self, port: int) -> Path:
        path = super().config(port)
        text = path.read_text().replace("[escalation]\n", "[escalation]\nflap_threshold = 1000\n")
        path.write_text(text)
        return path


def creates_at(rig: VantageRig) -> list[float]:
    return [r["at"] for r in rig.freshdesk.state()["requests"] if r["route"] == "create"]


def run(rounds: int, interval: float) -> dict[str, Any]:
    server = PostgresServer.find()
    if isinstance(server, str):
        raise SystemExit(server)
    server.start()
    stand_ins = (
        FakeProcess("freshdesk", "--api-key", FD_KEY),
        FakeProcess("pagerduty", "--routing-key", PD_KEY),
    )
    url = server.new_database()
    latencies: list[float] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            rig = BenchRig(
                Path(tmp), url, stand_ins, 'min_vantages = 2\nwindow = "1m"\n', interval=interval
            )
            try:
                for vantage in ("east", "west", "north"):
                    agent = rig.start_at(vantage)
                    wait_until(lambda a=agent: "api" in rig.probed(a), f"{vantage} probing")
                time.sleep(2 * interval)
                for _ in range(rounds):
                    before = len(creates_at(rig))
                    started = time.time()
                    rig.api.refuse("east", "west")
                    wait_until(lambda n=before: len(creates_at(rig)) > n, "the ticket", timeout=60)
                    latencies.append(creates_at(rig)[-1] - started)
                    rig.api.refuse()
                    wait_until(lambda: not rig.open_incidents(), "the recovery", timeout=60)
                    time.sleep(2 * interval)
            finally:
                rig.stop_all()
    finally:
        for stand_in in stand_ins:
            stand_in.stop()
        server.drop(url)
        server.stop()
    bound = THRESHOLD * interval + 2.0
    return {
        "vantages": 3,
        "min_vantages": 2,
        "interval_s": interval,
        "failure_threshold": THRESHOLD,
        "rounds": rounds,
        "outage_to_ticket_s": [round(x, 3) for x in latencies],
        "median_s": round(statistics.median(latencies), 3),
        "max_s": round(max(latencies), 3),
        "bound_s": bound,
        "within_bound": max(latencies) <= bound,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--interval", default="1s", help="probe interval, e.g. 1s or 300ms")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    text = args.interval
    interval = float(text[:-2]) / 1000 if text.endswith("ms") else float(text.rstrip("s"))
    figures = run(args.rounds, interval)
    if args.json:
        print(json.dumps(figures))
        return
    for key, value in figures.items():
        print(f"{key:>20}: {value}")


if __name__ == "__main__":
    main()
