"""The chaos test on several agents sharing PostgreSQL: which agent each kill hits, the
``[cluster]`` the agents run with, and when the cluster as a whole surely watched every target.

The checker (tests/chaos/checker.py) is the single agent's, unchanged: it judges tickets and
pages against ``alive``, the stretches during which an agent was watching. With several agents
"watching every target" is more than "some agent was alive": after an agent dies, its targets
have no prober until its leases expire and another agent takes them (``lease_ttl`` plus up to
one ``lease_renew``), and when an agent (re)joins, the slots it takes are unwatched between the
old owner's release and its own next renew. ``watched`` removes exactly those windows (plus a
margin) from the union of the agents' lives, so an outage inside one of them needs no ticket,
and every other outage still does: the contract's takeover bound is what is checked, not
whatever the agents happened to do. Duplicates are judged as before, over the whole run.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

LEASE_TTL = 1.5
LEASE_RENEW = 0.5
CLAIM_TTL = 3.0  # at least twice the chaos config's ticketing.request_timeout (1 s)
MARGIN = 0.5  # scheduling slack on a loaded 2-core box


@dataclass(frozen=True)
class ClusterTimings:
    lease_ttl: float = LEASE_TTL
    lease_renew: float = LEASE_RENEW
    claim_ttl: float = CLAIM_TTL
    margin: float = MARGIN

    @property
    def blind_after_kill(self) -> float:
        """From a kill until another agent surely probes the victim's targets."""
        return self.lease_ttl + self.lease_renew + self.margin

    @property
    def blind_after_join(self) -> float:
        """From an agent's ready until the slots it takes are surely probed again."""
        return 2 * self.lease_renew + self.margin

    def toml(self, url_env: str) -> str:
        return f"""
[cluster]
database_url_env = "{url_env}"
vantage = "chaos"
slots = 64
lease_ttl = "{round(self.lease_ttl * 1000)}ms"
lease_renew = "{round(self.lease_renew * 1000)}ms"
claim_ttl = "{round(self.claim_ttl * 1000)}ms"
"""


def kill_victims(seed: int, kills: int, agents: int) -> list[int]:
    """Which agent each kill hits: as many kills for each agent (one more for some when they do
    not divide), in a seeded order. Drawn from an RNG of their own, so the scenario's targets,
    kill times and helpdesk faults stay those of the single-agent run with the same seed."""
    victims = [index % agents for index in range(kills)]
    random.Random(f"{seed}-victims").shuffle(victims)
    return victims


def _subtract(
    stretches: list[tuple[float, float]], holes: Sequence[tuple[float, float]]
) -> list[tuple[float, float]]:
    for hole_start, hole_end in holes:
        kept: list[tuple[float, float]] = []
        for start, end in stretches:
            if hole_end <= start or end <= hole_start:
                kept.append((start, end))
                continue
            if start < hole_start:
                kept.append((start, hole_start))
            if hole_end < end:
                kept.append((hole_end, end))
        stretches = kept
    return stretches


def _union(intervals: Sequence[Sequence[float]]) -> list[tuple[float, float]]:
    merged: list[tuple[float, float]] = []
    for start, end in sorted((float(a), float(b)) for a, b in intervals):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def watched(
    alive_by_agent: Sequence[Sequence[Sequence[float]]],
    kills: Sequence[float],
    timings: ClusterTimings,
) -> list[list[float]]:
    """The stretches during which every target surely had a live owner: the union of the
    agents' lives, less ``blind_after_kill`` after each kill and ``blind_after_join`` after
    each time an agent became ready. In the checker's ``alive`` form."""
    union = _union([stretch for lives in alive_by_agent for stretch in lives])
    holes = [(kill, kill + timings.blind_after_kill) for kill in kills]
    holes += [
        (float(lives[0]), float(lives[0]) + timings.blind_after_join)
        for agent in alive_by_agent
        for lives in agent
    ]
    return [[start, end] for start, end in _subtract(union, holes) if end > start]
