"""Backoff, per action and per channel (the helpdesk, each pager): a channel that fails (5xx,
429, no answer) is left alone until its backoff ends (``Retry-After`` exactly when the service
sent one, else 1 s doubling up to 15 s), then one action goes as a half-open probe; when it is
answered the channel's whole backlog is due again at once (``monitor.delivery.outbox``)."""

from __future__ import annotations

import random
from dataclasses import dataclass

BACKOFF_BASE = 1.0
# An action's own backoff (its channel answers, the action keeps failing): at most this long.
BACKOFF_CAP = 60.0
# A channel that does not answer is probed again at least this often.
CHANNEL_BACKOFF_CAP = 15.0


def backoff(attempts: int, retry_after: float | None, cap: float = BACKOFF_CAP) -> float:
    """Seconds until the next try: the service's Retry-After exactly, else capped exponential
    with jitter (so that many actions do not retry in lockstep)."""
    if retry_after is not None:
        return retry_after
    ceiling = min(cap, BACKOFF_BASE * 2 ** max(0, attempts - 1))
    return random.uniform(ceiling * 0.75, ceiling)


@dataclass
class ChannelHealth:
    """One channel's backoff, shared by all its actions."""

    failures: int = 0  # consecutive failed rounds
    until: float = 0.0  # nothing goes before this
    probing: bool = False  # the half-open probe is in flight


class Channels:
    def __init__(self) -> None:
        self.health: dict[str, ChannelHealth] = {}

    def clear(self) -> None:
        self.health.clear()

    def backing_off(self, now: float) -> list[str]:
        """Channels nothing may go to now (backing off, or their probe in flight)."""
        return [name for name, h in self.health.items() if h.until > now or h.probing]

    def half_open(self, now: float) -> list[str]:
        """Channels whose backoff is over: one action may go to each, as a probe."""
        return [
            name
            for name, h in self.health.items()
            if h.failures and h.until <= now and not h.probing
        ]

    def probing(self, channel: str) -> None:
        health = self.health.get(channel)
        if health is not None:
            health.probing = True

    def probe_done(self, channel: str) -> None:
        health = self.health.get(channel)
        if health is not None:
            health.probing = False

    def wake_times(self, now: float) -> list[float]:
        return [h.until for h in self.health.values() if h.until > now and not h.probing]

    def failed(self, channel: str, retry_after: float | None, now: float) -> float:
        """Back the whole channel off; return until when. Failures of actions that were in
        flight together count as one round."""
        health = self.health.setdefault(channel, ChannelHealth())
        health.probing = False
        if now >= health.until:
            health.failures += 1
            health.until = now + backoff(health.failures, None, CHANNEL_BACKOFF_CAP)
        if retry_after is not None:
            health.until = max(health.until, now + retry_after)
        return health.until

    def answered(self, channel: str) -> bool:
        """The service answered; True if the channel was backing off (its backlog is due)."""
        health = self.health.get(channel)
        if health is None or not health.failures:
            return False
        del self.health[channel]
        return True
