"""Which slot a target belongs to: ``hash(key) % slots``, the same on every agent and every
start (SCALEOUT.md, "Slots and leases").

The hash is BLAKE2b of the key, not the CRC32 that gives the scheduler each target's phase:
with one hash for both, the targets of one slot would also share a phase, and an agent would
probe its whole share in bursts.

The key is not always the target's own name: targets joined by ``depends_on`` (directly or
through others) form one group, keyed by the first name of the group, and land in one slot.
The agent that probes a parent then probes its children too, so that "a child that fails
while its parent is down opens nothing of its own" and a shared component's outage are
decided from states held in one place.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from monitor.config import TargetConfig


def slot_of(key: str, slots: int) -> int:
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % slots


def group_keys(targets: Iterable[TargetConfig]) -> dict[str, str]:
    """target -> the key of its ``depends_on`` group (the group's first name)."""
    parent: dict[str, str] = {}

    def root(name: str) -> str:
        while parent.setdefault(name, name) != name:
            parent[name] = parent[parent[name]]
            name = parent[name]
        return name

    listed = list(targets)
    for target in listed:
        for other in target.depends_on:
            a, b = root(target.name), root(other)
            if a != b:
                parent[max(a, b)] = min(a, b)
    return {target.name: root(target.name) for target in listed}


def slot_map(targets: Iterable[TargetConfig], slots: int) -> dict[str, int]:
    """target -> slot, for every target of a config."""
    return {name: slot_of(key, slots) for name, key in group_keys(targets).items()}
