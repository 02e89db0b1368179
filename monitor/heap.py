"""Garbage collection fit for a long-lived process that holds many objects.

An agent watching 50,000 targets holds a few million container objects (the parsed config,
the live state, metric series), nearly all of them for its whole life. CPython's collector
does not know that: every full collection walks all of them again, under the GIL, and nothing
else runs meanwhile (measured at 10,000 targets before this: one full collection paused the
event loop 214 ms, the worst probe start of the run; at 50,000 the issue saw pauses up to
1.06 s, 8.2 s of a 33 s window).

So, once the config and the state are loaded (``settle``): one young collection to drop the
garbage of loading, then ``gc.freeze()``, which moves every surviving object into a permanent
generation the collector never walks again. Reference counting still frees a frozen object
when nothing refers to it any more; only a reference cycle among frozen objects would stay
(the config and the state hold none).

The thresholds (``tune``): the youngest generation is collected after 50,000 net allocations
instead of 700, so a burst of probe results is not interrupted every few hundred objects, and
each young collection stays in the low milliseconds (it walks only young objects); the older
generations follow at 20 and 100 of those. A reload freezes the new config without a full
collection: a collection would walk everything allocated since start and stall probes.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger("watchdesk")

THRESHOLDS = (50_000, 20, 100)


def tune() -> None:
    """Set the collector's thresholds (process-wide: one agent per process)."""
    gc.set_threshold(*THRESHOLDS)


@contextmanager
def loading() -> Iterator[None]:
    """Allocate many lasting objects (parse a config) under the agent's thresholds: with
    CPython's 700, validating 50,000 targets ran dozens of full collections over the targets
    already built (0.9 s of a 2 s parse). The thresholds in force before come back after."""
    before = gc.get_threshold()
    gc.set_threshold(*(max(old, new) for old, new in zip(before, THRESHOLDS, strict=False)))
    try:
        yield
    finally:
        gc.set_threshold(*before)


def settle(collect: bool = True) -> None:
    """Freeze what is alive now: after the start (``collect``: drop the loading garbage
    first) and after a reload (no collection, see the module's docstring)."""
    started = time.perf_counter()
    if collect:
        # The young generations only: a full collection walked all of a 50,000-target start's
        # objects (0.28 s before /healthz answered) to find about 30 unreachable ones; what
        # loading left in the old generation stays frozen, a few kilobytes at most.
        gc.collect(1)
    gc.freeze()
    if log.isEnabledFor(logging.DEBUG):  # counting the frozen objects walks all of them
        log.debug(
            "heap frozen: %d objects, in %.3f s",
            gc.get_freeze_count(),
            time.perf_counter() - started,
        )
