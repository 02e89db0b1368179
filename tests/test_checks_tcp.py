"""The tcp probe against real asyncio listeners on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from pydantic import ValidationError

from checks.base import HttpClients, ProbeContext
from checks.tcp import TcpSettings, probe
from tests.fakes_probes import refused_port, serve_tcp, silent, unaccepted_port


@pytest.fixture
async def context() -> AsyncIterator[ProbeContext]:
    clients = HttpClients()
    yield ProbeContext(timeout=1.0, http=clients)
    await clients.close()


@pytest.fixture
def short(context: ProbeContext) -> ProbeContext:
    return ProbeContext(timeout=0.3, http=context.http)


async def pong(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    if await reader.readline() == b"PING\r\n":
        writer.write(b"+PONG\r\n")
        await writer.drain()
    await reader.read()


async def banner(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"SSH-2.0-OpenSSH_9.6\r\n")
    await writer.drain()
    await reader.read()


async def busy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"ERR max clients reached\r\n")
    await writer.drain()


async def test_open_port(context: ProbeContext) -> None:
    async with serve_tcp(silent) as port:
        result = await probe(TcpSettings(host="127.0.0.1", port=port), context)
    assert (result.ok, result.reason) == (True, "connected")
    assert 0 < result.duration_seconds < 0.5


async def test_connection_refused(context: ProbeContext) -> None:
    result = await probe(TcpSettings(host="127.0.0.1", port=refused_port()), context)
    assert (result.ok, result.reason) == (False, "connection refused")


async def test_connect_timeout(short: ProbeContext) -> None:
    with unaccepted_port() as port:
        result = await probe(TcpSettings(host="127.0.0.1", port=port), short)
    assert (result.ok, result.reason) == (False, "timeout after 300ms")
    assert result.duration_seconds < 0.6


async def test_send_and_expect(context: ProbeContext) -> None:
    async with serve_tcp(pong) as port:
        settings = TcpSettings(host="127.0.0.1", port=port, send="PING\r\n", expect="PONG")
        result = await probe(settings, context)
    assert (result.ok, result.reason) == (True, "received 'PONG'")


async def test_expect_a_banner(context: ProbeContext) -> None:
    async with serve_tcp(banner) as port:
        result = await probe(TcpSettings(host="127.0.0.1", port=port, expect="SSH-2.0"), context)
    assert result.ok, result.reason


async def test_expected_text_never_comes(short: ProbeContext) -> None:
    async with serve_tcp(silent) as port:
        result = await probe(TcpSettings(host="127.0.0.1", port=port, expect="OK"), short)
    assert (result.ok, result.reason) == (False, "expected 'OK' not received within 300ms")
    assert result.duration_seconds < 0.6


async def test_other_text_then_close(context: ProbeContext) -> None:
    async with serve_tcp(busy) as port:
        result = await probe(TcpSettings(host="127.0.0.1", port=port, expect="+OK"), context)
    assert not result.ok
    assert result.reason == (
        "expected '+OK' not received before the connection closed; "
        "got 'ERR max clients reached\\r\\n'"
    )


async def test_the_probe_connects_from_its_source_address(context: ProbeContext) -> None:
    """The vantage a multi-homed agent probes from: the server sees that peer address."""

    async def by_peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(f"OK {writer.get_extra_info('peername')[0]}\r\n".encode())
        await writer.drain()

    async with serve_tcp(by_peer) as port:
        settings = TcpSettings(
            host="127.0.0.1", port=port, expect="OK 127.0.0.3", source_ip_address="127.0.0.3"
        )
        assert (await probe(settings, context)).ok
        other = TcpSettings(host="127.0.0.1", port=port, expect="OK 127.0.0.3")
        assert not (await probe(other, context)).ok  # from 127.0.0.1


async def test_unknown_host(context: ProbeContext) -> None:
    result = await probe(TcpSettings(host="no-such-host.invalid", port=80), context)
    assert (result.ok, result.reason) == (False, "name not found: no-such-host.invalid")


def test_settings_where_and_validation() -> None:
    assert TcpSettings(host="db.internal", port=5432).where() == "db.internal:5432"
    assert TcpSettings(host="::1", port=5432).where() == "[::1]:5432"
    with pytest.raises(ValidationError, match="greater than or equal to 1"):
        TcpSettings(host="db.internal", port=0)
    with pytest.raises(ValidationError, match="Field required"):
        TcpSettings.model_validate({"host": "db.internal"})
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        TcpSettings.model_validate({"host": "db.internal", "port": 1, "expected": "x"})
