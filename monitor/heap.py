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


# A parse that leaves more young objects than one of the agent's young collections may walk
# (tens of thousands of targets) freezes them.
FREEZE_AFTER_LOADING = THRESHOLDS[0]


@contextmanager
def loading() -> Iterator[None]:
    """Allocate many lasting objects (parse a config) with the cyclic collector off.

    Nearly everything a parse allocates lives on (the config) or dies by reference counting, so
    a collection in the middle finds next to nothing, yet it walks every target built so far:
    with CPython's thresholds 0.9 s of a 2 s parse of 50,000 targets, under the agent's
    (``THRESHOLDS``) still 0.23 s. Nor may the collector be switched back on with all of it
    young: the next allocation would walk it at once, and the next middle-generation collection
    again (0.08 s each at 50,000 targets, on the event loop). So a large parse's
    survivors are frozen first, as the agent's ``settle`` does after every start and reload
    anyway; a small one's (the tests parse thousands) are left to the collector. A reload's
    parse runs in a worker thread: the event loop's young collections wait meanwhile."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if gc.get_count()[0] > FREEZE_AFTER_LOADING:
            gc.freeze()
        if enabled:
            gc.enable()


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
