"""What the agent does for one transition and one sweep costs the same at 1,000 and at 20,000
targets (issue 13): no walk over every configured target per transition or per sweep tick.

No timing: a tracer counts the lines of the agent's own code (``monitor/``) that run, on the
real path from a probe result to the store, in the manual-clock harness. A loop over every
target shows up as thousands of lines per thousand targets; the counts are deterministic
(event-loop internals and the store's thread are not counted).
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable
from pathlib import Path
from types import FrameType
from typing import Any

import monitor
from checks import ProbeResult
from tests.agent_harness import Harness

MONITOR = str(Path(monitor.__file__).parent)

BASE = """
[defaults]
interval = "10s"
timeout = "5s"
failure_threshold = 2
recovery_threshold = 2

[[targets]]
name = "core"
kind = "tcp"
host = "10.9.0.1"
port = 443
customer = "acme"

[[targets]]
name = "app"
kind = "tcp"
host = "10.9.0.2"
port = 443
customer = "acme"
depends_on = ["core"]

[customers.acme]
email = "it@acme.example"
"""


def config(count: int) -> str:
    """``core``, ``app`` behind it, and ``count - 2`` unrelated targets."""
    others = "".join(
        f'\n[[targets]]\nname = "t{i}"\nkind = "tcp"\nhost = "10.{i // 62500}.{i // 250 % 250}.'
        f'{i % 250 + 1}"\nport = 443\n'
        for i in range(count - 2)
    )
    return BASE + others


async def lines_run(work: Awaitable[Any]) -> int:
    """How many lines of ``monitor/`` run while ``work`` is awaited (this thread)."""
    count = 0

    def local(frame: FrameType, event: str, arg: Any) -> Any:
        nonlocal count
        if event == "line":
            count += 1
        return local

    def tracer(frame: FrameType, event: str, arg: Any) -> Any:
        return local if frame.f_code.co_filename.startswith(MONITOR) else None

    sys.settrace(tracer)
    try:
        await work
    finally:
        sys.settrace(None)
    return count


async def probe(h: Harness, name: str, ok: bool) -> None:
    reason = "status 200" if ok else "connection refused"
    await h.agent.apply_result(h.agent.targets[name], ProbeResult(ok, 0.01, reason))
    h.clock.advance(1.0)


def status(h: Harness, name: str) -> str:
    return h.agent.states[name].status


async def costs(tmp_path: Path, count: int) -> dict[str, int]:
    """Lines run for: core's transition to down (its incident opens), a sweep with that
    incident open, core's transition back up (its dependants looked at)."""
    h = await Harness.create(tmp_path / str(count), config(count))
    try:
        for name in h.agent.targets:
            await probe(h, name, True)
        await probe(h, "core", False)
        down = await lines_run(probe(h, "core", False))
        assert status(h, "core") == "down"
        assert [i.target for i in await h.incidents()] == ["core"]
        sweep = await lines_run(h.sweep())
        await probe(h, "core", True)
        up = await lines_run(probe(h, "core", True))
        assert status(h, "core") == "up"
        return {"down": down, "sweep": sweep, "up": up}
    finally:
        await h.close()


async def test_a_transition_and_a_sweep_cost_the_same_at_1000_and_20000_targets(
    tmp_path: Path,
) -> None:
    small = await costs(tmp_path, 1_000)
    large = await costs(tmp_path, 20_000)
    print(f"lines run at 1,000: {small}; at 20,000: {large}")
    for step, lines in small.items():
        # 20x the targets: a walk over them would be 20x the lines; allow a few for names.
        assert large[step] <= lines * 1.05 + 20, (step, small, large)
