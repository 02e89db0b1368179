"""ICMP: the host answers echo requests (ping)."""

from __future__ import annotations

import asyncio
import functools
import time

import icmplib
from pydantic import Field

from checks.base import ProbeContext, ProbeSettings, timeout_reason
from checks.result import ProbeResult

NOT_PERMITTED = (
    "ICMP not permitted: grant CAP_NET_RAW (AmbientCapabilities=CAP_NET_RAW in systemd) or "
    "allow unprivileged ping with sysctl net.ipv4.ping_group_range (in a container: "
    "--sysctl net.ipv4.ping_group_range='0 2147483647')"
)
INTERVAL = 0.2  # seconds between echo requests, shortened when the timeout is tight


class IcmpSettings(ProbeSettings):
    host: str = Field(min_length=1, description="Host name or IP address to ping.")
    packets: int = Field(default=3, ge=1, le=100, description="Echo requests sent per probe.")
    max_loss: float | None = Field(
        default=None,
        ge=0.0,
        lt=1.0,
        description="Fraction of the packets that may go unanswered, e.g. 0.34 = 1 of 3. "
        "Default: the check fails only when every packet is lost.",
    )

    def where(self) -> str:
        return self.host


@functools.cache
def icmp_mode(allow_privileged: bool = True) -> bool | None:
    """How this process may ping: True raw (privileged), False datagram, None not at all.

    Decided once per process: raw sockets when root or CAP_NET_RAW allow them, otherwise the
    kernel's unprivileged datagram ICMP sockets (net.ipv4.ping_group_range).
    """
    for privileged in (True, False) if allow_privileged else (False,):
        try:
            icmplib.ICMPv4Socket(privileged=privileged).close()
        except icmplib.SocketPermissionError:
            continue
        return privileged
    return None


async def probe(settings: IcmpSettings, context: ProbeContext) -> ProbeResult:
    return await ping(settings, context, icmp_mode())


async def ping(settings: IcmpSettings, context: ProbeContext, mode: bool | None) -> ProbeResult:
    """The probe with the socket mode given (``icmp_mode()``'s answer)."""
    start = time.perf_counter()
    if mode is None:
        return ProbeResult.failure(time.perf_counter() - start, NOT_PERMITTED)
    count = settings.packets
    # Worst case every reply is late: count waits plus the gaps between them fit the timeout.
    budget = context.timeout * 0.9
    interval = min(INTERVAL, budget / (2 * count))
    per_packet = (budget - interval * (count - 1)) / count
    try:
        async with asyncio.timeout(context.timeout):
            host = await icmplib.async_ping(
                settings.host,
                count=count,
                interval=interval,
                timeout=per_packet,
                privileged=mode,
            )
    except TimeoutError:
        return ProbeResult.failure(time.perf_counter() - start, timeout_reason(context.timeout))
    except icmplib.NameLookupError:
        return ProbeResult.failure(time.perf_counter() - start, f"name not found: {settings.host}")
    except icmplib.SocketPermissionError:
        return ProbeResult.failure(time.perf_counter() - start, NOT_PERMITTED)
    except icmplib.ICMPLibError as exc:
        return ProbeResult.failure(time.perf_counter() - start, f"ICMP: {exc}")
    except OSError as exc:
        return ProbeResult.failure(time.perf_counter() - start, f"ICMP: {exc.strerror or exc}")
    duration = time.perf_counter() - start
    received = int(host.packets_received)
    sent = int(host.packets_sent)
    lost = sent - received
    summary = f"{received}/{sent} replies"
    if sent == 0:
        reason = f"ICMP: no echo request could be sent to {host.address}"
        return ProbeResult.failure(duration, reason)
    if received == 0:
        return ProbeResult.failure(duration, f"no reply to {sent} pings")
    if settings.max_loss is not None and lost / sent > settings.max_loss:
        return ProbeResult.failure(
            duration, f"{summary}, {lost / sent:.0%} lost (max {settings.max_loss:.0%})"
        )
    rtt = float(host.avg_rtt)
    return ProbeResult.success(duration, f"{summary}, rtt {rtt:.{1 if rtt >= 1 else 2}f}ms")
