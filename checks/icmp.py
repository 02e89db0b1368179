"""ICMP: the host answers echo requests (ping).

Every probe sends through the agent's one ICMP socket per address family
(``checks.icmp_socket``): a datagram socket where the kernel allows one, else a raw socket.
A probe sends its packets one after another, ``INTERVAL`` apart, each waiting for its reply up
to its share of the timeout; a name resolves as for http targets (cached), IPv4 first.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
import time

from pydantic import Field, PrivateAttr

from checks.base import ProbeContext, ProbeSettings, os_error_reason, timeout_reason
from checks.icmp_socket import Mode, Pinger, open_socket
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

    # The host's address in canonical text (as replies name their source), when it is one.
    _address: str | None = PrivateAttr(default=None)

    def model_post_init(self, context: object, /) -> None:
        try:
            self._address = ipaddress.ip_address(self.host).compressed
        except ValueError:
            self._address = None

    def where(self) -> str:
        return self.host


@functools.cache
def icmp_mode(allow_datagram: bool = True, allow_raw: bool = True) -> Mode | None:
    """Which ICMP socket this process may open, the cheaper first; None: neither.

    Decided once per process: a datagram socket when ``net.ipv4.ping_group_range`` includes
    one of our groups, otherwise a raw one when root or CAP_NET_RAW allow it.
    """
    modes: list[Mode] = []
    if allow_datagram:
        modes.append("datagram")
    if allow_raw:
        modes.append("raw")
    for mode in modes:
        try:
            open_socket(socket.AF_INET, mode).close()
        except OSError:
            continue
        return mode
    return None


async def probe(settings: IcmpSettings, context: ProbeContext) -> ProbeResult:
    return await ping(settings, context, icmp_mode())


async def ping(settings: IcmpSettings, context: ProbeContext, mode: Mode | None) -> ProbeResult:
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
            return await _pings(settings, context, mode, count, interval, per_packet, start)
    except TimeoutError:
        return ProbeResult.failure(time.perf_counter() - start, timeout_reason(context.timeout))


async def _pings(
    settings: IcmpSettings,
    context: ProbeContext,
    mode: Mode,
    count: int,
    interval: float,
    per_packet: float,
    start: float,
) -> ProbeResult:
    address = settings._address
    if address is None:
        try:
            address = await _resolve(settings.host, context)
        except OSError as exc:
            return ProbeResult.failure(time.perf_counter() - start, _lookup_reason(exc, settings))
    try:
        pinger = _pinger(context, socket.AF_INET6 if ":" in address else socket.AF_INET, mode)
    except PermissionError:
        return ProbeResult.failure(time.perf_counter() - start, NOT_PERMITTED)
    except OSError as exc:
        return ProbeResult.failure(time.perf_counter() - start, f"ICMP: {exc.strerror or exc}")
    sent = 0
    rtts: list[float] = []
    for number in range(count):
        if number:
            await asyncio.sleep(interval)
        try:
            rtt = await pinger.echo(address, per_packet)
        except OSError:
            continue  # not sent (as icmplib: a send error is neither sent nor lost)
        sent += 1
        if rtt is not None:
            rtts.append(rtt * 1000)
    return _verdict(settings, address, sent, rtts, time.perf_counter() - start)


def _verdict(
    settings: IcmpSettings, address: str, sent: int, rtts: list[float], duration: float
) -> ProbeResult:
    received = len(rtts)
    lost = sent - received
    summary = f"{received}/{sent} replies"
    if sent == 0:
        return ProbeResult.failure(duration, f"ICMP: no echo request could be sent to {address}")
    if received == 0:
        return ProbeResult.failure(duration, f"no reply to {sent} pings")
    if settings.max_loss is not None and lost / sent > settings.max_loss:
        return ProbeResult.failure(
            duration, f"{summary}, {lost / sent:.0%} lost (max {settings.max_loss:.0%})"
        )
    rtt = sum(rtts) / received
    return ProbeResult.success(duration, f"{summary}, rtt {rtt:.{1 if rtt >= 1 else 2}f}ms")


async def _resolve(host: str, context: ProbeContext) -> str:
    """The address to ping: the first IPv4 address of the name, else its first (as icmplib)."""
    addresses = await context.http.addresses(host, 0)
    chosen = next((address for address in addresses if ":" not in address), addresses[0])
    return ipaddress.ip_address(chosen.split("%", 1)[0]).compressed if ":" in chosen else chosen


def _pinger(context: ProbeContext, family: socket.AddressFamily, mode: Mode) -> Pinger:
    key = f"icmp-{int(family)}-{mode}"
    pinger = context.http.shared.get(key)
    if not isinstance(pinger, Pinger):
        pinger = Pinger(family, mode)
        context.http.shared[key] = pinger
    return pinger


def _lookup_reason(exc: OSError, settings: IcmpSettings) -> str:
    if isinstance(exc, socket.gaierror):
        return os_error_reason(exc, settings.host)
    return f"name not found: {settings.host}"
