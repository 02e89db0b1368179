"""The chaos scenario as data, drawn from one seeded RNG: what the targets do, when the agent is
killed, when the helpdesk misbehaves. Nothing here touches a process or a socket."""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from typing import Any

from tests.chaos.cluster import kill_victims
from tests.chaos.flapper import Toggle

TARGETS = 20
HORIZON = 145.0  # seconds of scheduled chaos; every target is up from here on
FIRST_EVENT = 2.0  # targets stay up this long first (the agent gets its first verdicts)
END_UP = 3.0  # the last event of a target ends at least this long before HORIZON
MIN_GAP = 1.5  # up time between two events of one target (> the checker's 1.2 s tolerance)
MAX_GAP = 24.0
OUTAGE = (3.0, 6.0)  # long outages: surely seen by an agent that is alive
BLIP = (0.06, 0.10)  # blips: shorter than an interval (200 ms), so one probe at most sees them
OUTAGE_SHARE = 0.6
KILLS = (32, 36)
RESTART_DELAY = (0.2, 1.5)
HELPDESK_OUTAGE = (35.0, 50.0)  # the stretch of 503s and 429s
CREATE_FAULTS = ("drop", "drop", "drop", "timeout", "timeout", "timeout")


def chaos_seed() -> int:
    """``WATCHDESK_CHAOS_SEED`` to replay a run, else a fresh random seed."""
    raw = os.environ.get("WATCHDESK_CHAOS_SEED", "").strip()
    return int(raw) if raw else random.SystemRandom().randrange(1, 2**31)


@dataclass(frozen=True)
class Kill:
    offset: float  # seconds after the start of the schedule
    restart_after: float
    agent: int = 0  # which agent, when several share the database


@dataclass(frozen=True)
class Scenario:
    seed: int
    targets: list[str]
    toggles: list[Toggle]
    kills: list[Kill]
    create_faults_at: float
    create_faults: list[str]
    outage_at: float
    outage_for: float
    retry_after: float
    planned: dict[str, int] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "planned": self.planned,
            "kills_planned": len(self.kills),
            "kills_per_agent": [
                sum(k.agent == i for k in self.kills)
                for i in range(max((k.agent for k in self.kills), default=0) + 1)
            ],
            "create_faults_at": self.create_faults_at,
            "create_faults": self.create_faults,
            "helpdesk_outage_at": self.outage_at,
            "helpdesk_outage_for": self.outage_for,
            "retry_after": self.retry_after,
        }


def target_schedule(rng: random.Random, name: str) -> tuple[list[Toggle], int, int]:
    """Up periods with long outages and blips between them; ends up."""
    toggles: list[Toggle] = []
    outages = blips = 0
    at = FIRST_EVENT + rng.uniform(0.0, 6.0)
    while True:
        outage = rng.random() < OUTAGE_SHARE
        length = rng.uniform(*OUTAGE) if outage else rng.uniform(*BLIP)
        if at + length + END_UP > HORIZON:
            break
        toggles += [Toggle(at, name, False), Toggle(at + length, name, True)]
        outages += outage
        blips += not outage
        at += length + rng.uniform(MIN_GAP, MAX_GAP)
    return toggles, outages, blips


def make_scenario(seed: int, agents: int = 1) -> Scenario:
    """The run of ``seed``; with ``agents`` > 1 the same run, its kills spread over them."""
    rng = random.Random(seed)
    targets = [f"t{i:02d}" for i in range(TARGETS)]
    toggles: list[Toggle] = []
    outages = blips = 0
    for name in targets:
        more, o, b = target_schedule(rng, name)
        toggles += more
        outages += o
        blips += b
    kill_times = sorted(rng.uniform(1.0, HORIZON - 2.0) for _ in range(rng.randint(*KILLS)))
    kills = [Kill(t, rng.uniform(*RESTART_DELAY)) for t in kill_times]
    if agents > 1:
        victims = kill_victims(seed, len(kills), agents)
        pairs = zip(kills, victims, strict=True)
        kills = [Kill(k.offset, k.restart_after, victim) for k, victim in pairs]
    outage_for = rng.uniform(*HELPDESK_OUTAGE)
    # The helpdesk is healthy again at least 25 s before the end (plus the settling time).
    outage_at = rng.uniform(35.0, HORIZON - 25.0 - outage_for)
    create_faults = list(CREATE_FAULTS)
    rng.shuffle(create_faults)
    return Scenario(
        seed=seed,
        targets=targets,
        toggles=sorted(toggles, key=lambda t: t.offset),
        kills=kills,
        create_faults_at=rng.uniform(8.0, 25.0),
        create_faults=create_faults,
        outage_at=outage_at,
        outage_for=outage_for,
        retry_after=float(rng.randint(1, 3)),
        planned={"outages": outages, "blips": blips},
    )
