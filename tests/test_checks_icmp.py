"""The icmp probe: real pings to 127.0.0.1 with whatever this process is allowed to do."""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from checks.base import HttpClients, ProbeContext
from checks.icmp import NOT_PERMITTED, IcmpSettings, icmp_mode, ping, probe


@pytest.fixture
async def context() -> AsyncIterator[ProbeContext]:
    clients = HttpClients()
    yield ProbeContext(timeout=1.0, http=clients)
    await clients.close()


def unprivileged_ping_allowed() -> bool:
    """What the kernel says about datagram ICMP sockets for this process's groups."""
    try:
        low, high = map(int, Path("/proc/sys/net/ipv4/ping_group_range").read_text().split())
    except (OSError, ValueError):
        return False
    return any(low <= group <= high for group in {os.getgid(), *os.getgroups()})


needs_icmp = pytest.mark.skipif(
    icmp_mode() is None, reason="this process may not send ICMP (no CAP_NET_RAW, no ping group)"
)


@needs_icmp
async def test_ping_localhost(context: ProbeContext) -> None:
    result = await probe(IcmpSettings(host="127.0.0.1"), context)
    assert result.ok, result.reason
    assert re.fullmatch(r"3/3 replies, rtt \d+\.\d+ms", result.reason), result.reason
    assert result.duration_seconds < 1.0


@needs_icmp
async def test_strict_loss_limit_passes_when_nothing_is_lost(context: ProbeContext) -> None:
    settings = IcmpSettings(host="127.0.0.1", packets=2, max_loss=0.0)
    assert (await probe(settings, context)).ok


@needs_icmp
async def test_unknown_host(context: ProbeContext) -> None:
    result = await probe(IcmpSettings(host="no-such-host.invalid"), context)
    assert (result.ok, result.reason) == (False, "name not found: no-such-host.invalid")


@needs_icmp
async def test_unanswered_pings_stay_within_the_timeout(context: ProbeContext) -> None:
    # TEST-NET-2 (RFC 5737): nothing answers there; whether the packets leave or not,
    # the probe fails and does not overrun its timeout.
    short = ProbeContext(timeout=0.5, http=context.http)
    result = await probe(IcmpSettings(host="198.51.100.1", packets=3), short)
    assert not result.ok
    assert result.duration_seconds <= 0.5 + 0.05
    assert result.reason in {
        "no reply to 3 pings",
        "timeout after 500ms",
    } or result.reason.startswith("ICMP: "), result.reason


async def test_without_raw_sockets(context: ProbeContext) -> None:
    """With raw sockets ruled out, the kernel's datagram ICMP is used if ping_group_range allows
    it, and otherwise the reason says how to allow one or the other."""
    mode = icmp_mode(allow_privileged=False)
    result = await ping(IcmpSettings(host="127.0.0.1", packets=1), context, mode)
    if unprivileged_ping_allowed():
        assert mode is False
        assert result.ok, result.reason
    else:
        assert mode is None
        assert (result.ok, result.reason) == (False, NOT_PERMITTED)
        assert "CAP_NET_RAW" in result.reason
        assert "net.ipv4.ping_group_range" in result.reason


def test_settings_defaults_where_and_validation() -> None:
    settings = IcmpSettings(host="192.0.2.1")
    assert (settings.packets, settings.max_loss) == (3, None)
    assert settings.where() == "192.0.2.1"
    with pytest.raises(ValidationError, match="greater than or equal to 1"):
        IcmpSettings(host="192.0.2.1", packets=0)
    with pytest.raises(ValidationError, match="less than 1"):
        IcmpSettings(host="192.0.2.1", max_loss=1.0)
