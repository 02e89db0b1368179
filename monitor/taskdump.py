"""What a stuck agent is waiting on: every asyncio task's stack, into the log, on SIGUSR1.

A thread dump (faulthandler) of an event loop shows only the loop waiting in its selector;
the coroutines that wait on something that never comes are in the tasks' frames.
"""

from __future__ import annotations

import asyncio
import io
import logging

log = logging.getLogger("watchdesk")


def dump_tasks() -> None:
    """Log the stack of every task of the running loop (called from its signal handler)."""
    tasks = asyncio.all_tasks()
    log.warning("SIGUSR1: %d asyncio tasks follow", len(tasks))
    for task in sorted(tasks, key=lambda t: t.get_name()):
        stack = io.StringIO()
        task.print_stack(file=stack)
        log.warning("task %s:\n%s", task.get_name(), stack.getvalue().rstrip())
