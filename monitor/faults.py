"""Named crash points on the incident path, for tests that kill the agent at the worst moment.

Off unless the environment says otherwise: ``WATCHDESK_CRASH_AT=point`` makes the process
SIGKILL itself the first time it reaches ``point`` (``point:N``: the N-th time). Nothing is
flushed or closed on the way down, exactly as with ``kill -9``. A test names the point, the
agent dies there, and a second agent started on the same state directory must finish the job
with no duplicate and nothing lost. The check is one dictionary lookup when the variable is
unset, so the points stay in production code at no cost.
"""

from __future__ import annotations

import os
import signal
import sys

ENV = "WATCHDESK_CRASH_AT"

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


def _parse(value: str | None) -> tuple[str, int] | None:
    if not value:
        return None
    point, _, count = value.partition(":")
    if point not in POINTS:
        print(f"watchdesk: {ENV}={value}: no such crash point; known: {', '.join(POINTS)}")
        return None
    return point, int(count) if count.isdigit() and int(count) > 0 else 1


_armed = _parse(os.environ.get(ENV))
_seen: dict[str, int] = {}


def crash_point(point: str) -> None:
    """Die here, at once, if a test asked for it."""
    if _armed is None or _armed[0] != point:
        return
    _seen[point] = _seen.get(point, 0) + 1
    if _seen[point] >= _armed[1]:
        sys.stderr.write(f"watchdesk: crash point {point} reached: SIGKILL\n")
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGKILL)
