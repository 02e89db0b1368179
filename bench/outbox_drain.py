"""How fast a queue of ticket actions drains once a helpdesk that was down answers again.

    python bench/outbox_drain.py                    # 200 actions after a 10-minute outage
    python bench/outbox_drain.py --actions 1000 --outage 3600 --json

The real agent (``monitor.agent.Agent``, its store and its outbox worker) against the Freshdesk
stand-in (``tests.fakes.freshdesk``, a real aiohttp server on 127.0.0.1). Incidents are opened
for ``actions / 2`` targets and half of them recover, so the queue holds creates, recovery notes
and status changes in per-incident order. The helpdesk then answers 503 to everything for
``--outage`` seconds of the agent's clock, which is fast-forwarded (one drain pass per second
of agent time, as the worker would make) so that every action and the channel back off exactly
as they would over that stretch; nothing is shortened. Then the helpdesk answers again, the
clock runs at real speed, the outbox's own worker loop runs, and the bench measures the real
seconds until every action is delivered.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from checks import ProbeResult
from monitor.agent import Agent
from monitor.config import parse_config
from tests.fakes.freshdesk import FreshdeskFake

API_KEY = "bench-freshdesk-key"


class ShiftedClock:
    """Real time plus an offset the bench moves forward to live through an outage quickly."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return time.time() + self.offset


def config_text(state: Path, url: str, targets: int) -> str:
    lines = [
        f'[agent]\nstate_dir = "{state}"\n',
        '[defaults]\ninterval = "30s"\ntimeout = "5s"\nfailure_threshold = 1\n'
        "recovery_threshold = 1\n",
        '[ticketing]\nbackend = "freshdesk"\nrequest_timeout = "2s"\n',
        f'[ticketing.freshdesk]\nurl = "{url}"\napi_key_env = "BENCH_FD_KEY"\n'
        'requester_email = "monitoring@acme.example"\n',
        '[escalation]\nack_timeout = "24h"\nstatus_update_interval = "24h"\n',
        # One incident per target (a queue to drain), not one storm for all of them.
        "[storm]\nthreshold = 1000000\n",
    ]
    lines += [
        f'[[targets]]\nname = "t{i}"\nkind = "tcp"\nhost = "127.0.0.1"\nport = 9\n'
        for i in range(targets)
    ]
    return "\n".join(lines)


async def run(actions: int, outage: float) -> dict[str, float]:
    import os

    os.environ["BENCH_FD_KEY"] = API_KEY
    targets = actions // 2
    async with FreshdeskFake(api_key=API_KEY) as fake:
        with tempfile.TemporaryDirectory() as tmp:
            config = parse_config(config_text(Path(tmp) / "state", fake.url, targets))
            clock = ShiftedClock()
            agent = Agent(config, clock=clock)
            await agent.prepare()
            fake.fail_next("*", "503", count=10**9)
            for i in range(targets):
                target = agent.targets[f"t{i}"]
                await agent.apply_result(target, ProbeResult(False, 0.01, "connection refused"))
                if i % 2 == 0:  # recovers: a note and a status change queue behind the create
                    await agent.apply_result(target, ProbeResult(True, 0.01, "connected"))
            queued = (await agent.store.outbox_counts()).get("pending", 0)
            for _ in range(int(outage)):
                clock.offset += 1.0
                await agent.outbox.drain()
            refused_requests = len(fake.requests)
            backoffs = [
                a.next_attempt_at - clock.now()
                for i in await agent.store.incidents()
                for a in await agent.store.actions_of(i.id)
                if a.state == "pending"
            ]
            fake.reset_failures()
            answered_at = time.monotonic()
            agent.outbox.start()
            while (await agent.store.outbox_counts()).get("pending", 0):  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            drained = time.monotonic() - answered_at
            await agent.outbox.stop()
            await agent.integrations.aclose()
            await agent.store.close()
            return {
                "actions": queued,
                "outage_seconds": outage,
                "requests_during_outage": refused_requests,
                "longest_action_backoff_seconds": round(max(backoffs, default=0.0), 1),
                "drain_seconds": round(drained, 2),
                "tickets": len(fake.tickets),
            }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--actions", type=int, default=200)
    parser.add_argument("--outage", type=float, default=600.0, help="seconds (default 600)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    logging.getLogger("watchdesk").setLevel(logging.ERROR)  # 503s are the point here
    figures = asyncio.run(run(args.actions, args.outage))
    if args.json:
        print(json.dumps(figures))
        return
    for key, value in figures.items():
        print(f"{key:34} {value}")


if __name__ == "__main__":
    main()
