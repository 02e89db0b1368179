"""Named crash points on the incident path, for tests that kill the agent at the worst moment.

Off unless the environment says otherwise: ``WATCHDESK_CRASH_AT=point`` makes the process
SIGKILL itself the first time it reaches ``point`` (``point:N``: the N-th time). Nothing is
flushed or closed on the way down, exactly as with ``kill -9``. A test names the point, the
agent dies there, and a second agent started on the same state directory must finish the job
with no duplicate and nothing lost. The check is one dictionary lookup when the variable is
unset, so the points stay in production code at no cost.

Two more knobs, for tests of several agents:

- ``WATCHDESK_PAUSE_AT=point[:N]`` makes the process SIGSTOP itself there instead (a zombie
  that the test wakes with SIGCONT, long after its leases ran out);
- ``WATCHDESK_FAULT_ONCE=PATH`` fires the crash or pause only in the first process that
  reaches the point (it creates PATH; the others find it there), so every agent of a cluster
  may carry the same fault and the one that meets the point first, whichever it is, is hit.
"""

from __future__ import annotations

import os
import signal
import sys

ENV = "WATCHDESK_CRASH_AT"
PAUSE_ENV = "WATCHDESK_PAUSE_AT"
ONCE_ENV = "WATCHDESK_FAULT_ONCE"

# Every point the incident path passes, in the order an outage passes them.
POINTS = (
    "after_probe_result",  # a result folded into the in-memory state, nothing written yet
    "after_state_write",  # inside the transition's transaction, before the incident row
    "after_incident_row",  # the transition, the incident and its actions are committed
    "before_create_sent",  # the create's attempt is counted, the request not yet sent
    "after_create_sent",  # the helpdesk answered the create; the answer is not yet stored
    "after_answer_stored",  # the ticket id is stored, the create marked done
    "before_page_sent",
    "after_page_sent",  # the pager answered the trigger; not yet marked done
    "after_recovery_committed",  # the resolve, its note and status change are committed
    "after_note_sent",  # the helpdesk answered a note; not yet marked done
    "after_status_sent",  # the helpdesk answered the pending/resolve status; not yet done
    "after_resolve_sent",  # the pager answered the resolve; not yet marked done
)


def _parse(name: str, value: str | None) -> tuple[str, int] | None:
    if not value:
        return None
    point, _, count = value.partition(":")
    if point not in POINTS:
        print(f"watchdesk: {name}={value}: no such crash point; known: {', '.join(POINTS)}")
        return None
    return point, int(count) if count.isdigit() and int(count) > 0 else 1


_armed = _parse(ENV, os.environ.get(ENV))
_pause = _parse(PAUSE_ENV, os.environ.get(PAUSE_ENV))
_once = os.environ.get(ONCE_ENV)
_seen: dict[str, int] = {}


def _first(point: str) -> bool:
    """Whether this process is the first to reach ``point`` (always, without a once-file)."""
    if not _once:
        return True
    try:
        os.close(os.open(_once, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


def crash_point(point: str) -> None:
    """Die (or stop) here, at once, if a test asked for it."""
    armed = _armed if _armed is not None and _armed[0] == point else None
    if armed is None and (_pause is None or _pause[0] != point):
        return
    _seen[point] = _seen.get(point, 0) + 1
    wanted = armed or _pause
    if wanted is None or _seen[point] < wanted[1] or _seen[point] > wanted[1]:
        return
    if not _first(point):
        return
    what = "SIGKILL" if armed is not None else "SIGSTOP"
    sys.stderr.write(f"watchdesk: crash point {point} reached: {what}\n")
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL if armed is not None else signal.SIGSTOP)
