"""The icmp probe: real pings to 127.0.0.1 with whatever this process is allowed to do."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import subprocess
import sys
import time
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
    mode = icmp_mode(allow_raw=False)
    result = await ping(IcmpSettings(host="127.0.0.1", packets=1), context, mode)
    if unprivileged_ping_allowed():
        assert mode == "datagram"
        assert result.ok, result.reason
    else:
        assert mode is None
        assert (result.ok, result.reason) == (False, NOT_PERMITTED)
        assert "CAP_NET_RAW" in result.reason
        assert "net.ipv4.ping_group_range" in result.reason


@needs_icmp
def test_the_datagram_socket_is_preferred_and_raw_is_the_fallback() -> None:
    expected = "datagram" if unprivileged_ping_allowed() else "raw"
    assert icmp_mode() == expected
    if os.geteuid() == 0:
        assert icmp_mode(allow_datagram=False) == "raw"


@needs_icmp
@pytest.mark.parametrize("mode", ["datagram", "raw"])
async def test_200_concurrent_probes_share_one_socket(context: ProbeContext, mode: str) -> None:
    if mode == "datagram" and not unprivileged_ping_allowed():
        pytest.skip("net.ipv4.ping_group_range excludes us (test_datagram_ping_in_a_namespace)")
    if mode == "raw" and icmp_mode(allow_datagram=False) is None:
        pytest.skip("no raw sockets for this process")
    settings = IcmpSettings(host="127.0.0.1", packets=2)
    roomy = ProbeContext(timeout=2.0, http=context.http)
    before = len(os.listdir("/proc/self/fd"))
    results = await asyncio.gather(*(ping(settings, roomy, mode) for _ in range(200)))  # type: ignore[arg-type]
    assert [r.reason for r in results if not r.ok] == []
    assert all(r.reason.startswith("2/2 replies, rtt ") for r in results)
    assert list(context.http.shared) == [f"icmp-{int(socket.AF_INET)}-{mode}"]
    assert len(os.listdir("/proc/self/fd")) == before + 1


@needs_icmp
async def test_replies_wait_in_the_shared_socket_while_the_loop_is_busy(
    context: ProbeContext,
) -> None:
    """1,000 replies arrive while the event loop is stalled: the shared socket keeps them all
    (the kernel's default buffer holds a few hundred) and no probe fails for nothing."""
    mode = icmp_mode()
    settings = IcmpSettings(host="127.0.0.1", packets=1)
    roomy = ProbeContext(timeout=3.0, http=context.http)
    pings = [asyncio.create_task(ping(settings, roomy, mode)) for _ in range(1000)]
    asyncio.get_running_loop().call_soon(time.sleep, 0.5)  # runs once every ping is sent
    results = await asyncio.gather(*pings)
    assert [r.reason for r in results if not r.ok] == []


@needs_icmp
async def test_two_agents_on_raw_sockets_see_only_their_own_replies() -> None:
    """Every raw ICMP socket receives every echo reply; each agent's identifier sorts them."""
    if icmp_mode(allow_datagram=False) is None:
        pytest.skip("no raw sockets for this process")
    agents = [HttpClients(), HttpClients()]
    settings = IcmpSettings(host="127.0.0.1", packets=2)
    try:
        results = await asyncio.gather(
            *(ping(settings, ProbeContext(2.0, agents[i % 2]), "raw") for i in range(200))
        )
    finally:
        for clients in agents:
            await clients.close()
    assert [r.reason for r in results if not r.ok] == []


@needs_icmp
async def test_ping_ipv6_loopback(context: ProbeContext) -> None:
    result = await probe(IcmpSettings(host="::1", packets=1), context)
    assert result.ok, result.reason
    assert re.fullmatch(r"1/1 replies, rtt \d+\.\d+ms", result.reason), result.reason


@needs_icmp
async def test_a_name_is_pinged_at_its_ipv4_address(context: ProbeContext) -> None:
    result = await probe(IcmpSettings(host="localhost", packets=1), context)
    assert result.ok, result.reason
    assert any(key.startswith(f"icmp-{int(socket.AF_INET)}-") for key in context.http.shared)


NAMESPACE_SCRIPT = """
import asyncio
from checks.base import HttpClients, ProbeContext
from checks.icmp import IcmpSettings, icmp_mode, probe

async def main():
    clients = HttpClients()
    context = ProbeContext(2.0, clients)
    settings = IcmpSettings(host="127.0.0.1", packets=2)
    results = await asyncio.gather(*(probe(settings, context) for _ in range(200)))
    print(icmp_mode(), sorted(clients.shared), sum(r.ok for r in results))
    await clients.close()

asyncio.run(main())
"""


def test_datagram_ping_in_a_namespace() -> None:
    """The datagram path for real: a fresh network namespace (so this box's own sysctl is left
    alone) that allows unprivileged ping to every group; 200 probes through one socket."""
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("ip"):
        pytest.skip("needs root, unshare(1) and ip(8) for a network namespace")
    shell = (
        "ip link set lo up && echo '0 2147483647' > /proc/sys/net/ipv4/ping_group_range && "
        f'exec {sys.executable} -c "$0"'
    )
    done = subprocess.run(
        ["unshare", "--net", "sh", "-c", shell, NAMESPACE_SCRIPT],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["datagram", f"['icmp-{int(socket.AF_INET)}-datagram']", "200"]


def test_settings_defaults_where_and_validation() -> None:
    settings = IcmpSettings(host="192.0.2.1")
    assert (settings.packets, settings.max_loss) == (3, None)
    assert settings.where() == "192.0.2.1"
    with pytest.raises(ValidationError, match="greater than or equal to 1"):
        IcmpSettings(host="192.0.2.1", packets=0)
    with pytest.raises(ValidationError, match="less than 1"):
        IcmpSettings(host="192.0.2.1", max_loss=1.0)
