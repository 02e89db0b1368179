"""A real Agent driven by hand: probe results fed in, a manual clock, the outbox drained on demand.

No network and no timers: what runs is the agent's own code from result to ticket. Everything
that reaches the agent's store is awaited, as in the running agent (``Harness.create``).
"""

from __future__ import annotations

from pathlib import Path

from checks import ProbeResult
from monitor.agent import Agent
from monitor.clock import ManualClock
from monitor.config import parse_config
from monitor.state import Transition
from monitor.store import Incident
from ticketing.backends.local import LocalBackend

# 2026-11-24 10:00 UTC, a Tuesday.
START = 1_795_514_400.0


class Harness:
    def __init__(self, state_dir: Path, config_text: str, start: float = START) -> None:
        """The agent, not yet prepared: use ``await Harness.create(...)``."""
        state = f'state_dir = "{state_dir}"\n'
        if "[agent]\n" in config_text:
            text = config_text.replace("[agent]\n", "[agent]\n" + state, 1)
        else:
            text = "[agent]\n" + state + config_text
        self.config = parse_config(text)
        self.clock = ManualClock(start)
        self.agent = Agent(self.config, clock=self.clock)

    @classmethod
    async def create(cls, state_dir: Path, config_text: str, start: float = START) -> Harness:
        """A harness whose agent has opened its store and loaded its state."""
        harness = cls(state_dir, config_text, start)
        await harness.agent.prepare()
        return harness

    async def result(
        self, target: str, ok: bool, reason: str = "connection refused"
    ) -> Transition | None:
        """One probe result for ``target``, then the clock moves on by its interval."""
        config = self.agent.targets[target]
        transition = await self.agent.apply_result(
            config, ProbeResult(ok, 0.01, "status 200" if ok else reason)
        )
        self.clock.advance(config.interval)
        return transition

    async def fail(self, target: str, times: int = 1, reason: str = "connection refused") -> None:
        for _ in range(times):
            await self.result(target, False, reason)

    async def succeed(self, target: str, times: int = 1) -> None:
        for _ in range(times):
            await self.result(target, True)

    async def deliver(self) -> int:
        return await self.agent.outbox.drain()

    async def sweep(self) -> None:
        await self.agent.incidents.sweep()

    @property
    def local(self) -> LocalBackend:
        backend = self.agent.integrations.current.backend
        assert isinstance(backend, LocalBackend)
        return backend

    async def incidents(self) -> list[Incident]:
        return list(reversed(await self.agent.store.incidents()))

    def tickets(self) -> list[dict[str, object]]:
        """What the local helpdesk holds (the test reads it as a person would, synchronously)."""
        return self.local.tickets()

    def notes(self, ticket_id: object) -> list[str]:
        return [str(note["body"]) for note in self.local.notes(str(ticket_id))]

    async def close(self) -> None:
        await self.agent.integrations.aclose()
        if self.agent.member is not None:
            await self.agent.member.close()
        await self.agent.store.close()
