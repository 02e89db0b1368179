"""One probe of one target, run with a hard deadline, what a probe checks (its identity), and
the log line of a transition."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time

from checks import PROBES, HttpClients, ProbeContext, ProbeResult
from monitor.config import TargetConfig
from monitor.durations import format_duration
from monitor.state import Transition

log = logging.getLogger("watchdesk")


def identity_of(target: TargetConfig) -> str:
    """A digest of what the probe checks; a reload that changes it starts the target afresh."""
    text = f"{target.kind}\0{target.settings.model_dump_json()}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


async def run_probe(target: TargetConfig, clients: HttpClients) -> ProbeResult:
    """Run one probe with a hard deadline; whatever happens inside, the answer is a result."""
    context = ProbeContext(timeout=target.timeout, http=clients)
    started = time.perf_counter()
    try:
        async with asyncio.timeout(target.timeout + 1.0):
            return await PROBES[target.kind].run(target.settings, context)
    except TimeoutError:
        return ProbeResult.failure(
            time.perf_counter() - started, f"timeout after {format_duration(target.timeout)}"
        )
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        log.exception(
            "the %s probe of %s raised instead of returning a result", target.kind, target.name
        )
        return ProbeResult.failure(
            time.perf_counter() - started, f"probe error: {type(exc).__name__}"
        )


def log_transition(target: str, transition: Transition) -> None:
    """A target went down (a warning, with the reason) or came back up (info)."""
    fields = {
        "event": "transition",
        "target": target,
        "from": transition.previous,
        "to": transition.current,
        "consecutive_failures": transition.consecutive_failures,
    }
    if transition.current == "down":
        log.warning(
            "%s is down: %s (%d consecutive failures)",
            target,
            transition.reason,
            transition.consecutive_failures,
            extra={"fields": {**fields, "reason": transition.reason}},
        )
    else:
        log.info("%s is up: %s", target, transition.reason, extra={"fields": fields})
