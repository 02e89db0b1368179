"""Many HTTP targets in one real server, each a path with its own switch: a storm on demand.

Standalone, for a test that runs the agent in another process::

    python -m tests.fakes.targets --port 8510      # prints "ready" once it listens
    curl localhost:8510/t/web                       # 200 "OK" while web is up, 503 while down
    curl -XPOST localhost:8510/_fake/switch -d '{"down": true, "paths": ["web", "db"]}'
    curl -XPOST localhost:8510/_fake/switch -d '{"down": false, "paths": ["web"]}'
    curl localhost:8510/_fake/state                 # which paths are down, hits per path

A switch flips every named path in one step, so hundreds of targets go down (or come back)
within a millisecond of each other, however the agent's probes are spread.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections import Counter
from collections.abc import Sequence
from typing import Any

from aiohttp import web


class Targets:
    def __init__(self) -> None:
        self.down: set[str] = set()
        self.hits: Counter[str] = Counter()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/t/{name}", self._target)
        app.router.add_post("/_fake/switch", self._switch)
        app.router.add_get("/_fake/state", self._state)
        return app

    async def _target(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        self.hits[name] += 1
        if name in self.down:
            return web.Response(status=503, text="Service Unavailable")
        return web.Response(text="OK")

    async def _switch(self, request: web.Request) -> web.Response:
        body: Any = await request.json()
        paths = {str(path) for path in body.get("paths", [])}
        if body.get("down", True):
            self.down |= paths
        else:
            self.down -= paths
        return web.json_response(self._snapshot())

    async def _state(self, request: web.Request) -> web.Response:
        return web.json_response(self._snapshot())

    def _snapshot(self) -> dict[str, Any]:
        return {
            "down": sorted(self.down),
            "hits": dict(self.hits),
        }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Many switchable HTTP targets for tests.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)

    async def run() -> None:
        runner = web.AppRunner(Targets().app(), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, args.host, args.port).start()
        done = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, done.set)
        print("ready", flush=True)
        await done.wait()
        await runner.cleanup()

    asyncio.run(run())


if __name__ == "__main__":
    main()
