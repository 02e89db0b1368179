"""The tls probe against real TLS listeners with trustme certificates."""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trustme
from cryptography import x509
from pydantic import ValidationError

from checks.base import HttpClients, ProbeContext
from checks.tls import TlsSettings, certificate_not_after, expiry_verdict, probe
from tests.fakes_probes import Certs, make_certs, refused_port, serve_tcp, silent, unaccepted_port


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture
async def context() -> AsyncIterator[ProbeContext]:
    clients = HttpClients()
    yield ProbeContext(timeout=1.0, http=clients)
    await clients.close()


async def hello(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"hello\n")
    await writer.drain()
    await reader.read()


def day(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%d")


async def test_valid_certificate(certs: Certs, context: ProbeContext) -> None:
    async with serve_tcp(hello, certs.valid) as port:
        settings = TlsSettings(host="127.0.0.1", port=port, ca_file=certs.ca_file)
        result = await probe(settings, context)
    assert result.ok, result.reason
    assert result.reason == f"certificate valid for 90 days ({day(certs.valid_until)})"
    assert result.tls_expiry == certs.valid_until.timestamp()


async def test_certificate_expiring_soon_fails(certs: Certs, context: ProbeContext) -> None:
    async with serve_tcp(hello, certs.expiring) as port:
        settings = TlsSettings(host="127.0.0.1", port=port, ca_file=certs.ca_file)
        result = await probe(settings, context)
        lenient = TlsSettings(host="127.0.0.1", port=port, ca_file=certs.ca_file, min_days_left=3)
        assert (await probe(lenient, context)).ok
    assert not result.ok
    assert result.reason == f"certificate expires in 3 days ({day(certs.expiring_until)})"
    assert result.tls_expiry == certs.expiring_until.timestamp()


@pytest.mark.parametrize("verify", [True, False])
async def test_expired_certificate(certs: Certs, context: ProbeContext, verify: bool) -> None:
    async with serve_tcp(hello, certs.expired) as port:
        settings = TlsSettings(
            host="127.0.0.1", port=port, ca_file=certs.ca_file, verify_tls=verify
        )
        result = await probe(settings, context)
    assert not result.ok
    assert result.reason == f"certificate expired 2 days ago ({day(certs.expired_at)})"
    assert result.tls_expiry == certs.expired_at.timestamp()


async def test_self_signed(certs: Certs, context: ProbeContext) -> None:
    async with serve_tcp(hello, certs.self_signed) as port:
        verified = TlsSettings(host="127.0.0.1", port=port, ca_file=certs.ca_file)
        result = await probe(verified, context)
        unverified = await probe(
            TlsSettings(host="127.0.0.1", port=port, verify_tls=False), context
        )
    assert not result.ok
    assert result.reason == "TLS: certificate verify failed: self-signed certificate"
    # the expiry is still read (trustme CAs run until 3000-01-01), for the metric
    expected = dt.datetime(3000, 1, 1, tzinfo=dt.UTC).timestamp()
    assert result.tls_expiry == expected
    assert unverified.ok
    assert unverified.tls_expiry == expected


async def test_server_name_is_sent_and_verified(certs: Certs, context: ProbeContext) -> None:
    async with serve_tcp(hello, certs.named) as port:
        by_ip = await probe(
            TlsSettings(host="127.0.0.1", port=port, ca_file=certs.ca_file), context
        )
        by_name = await probe(
            TlsSettings(
                host="127.0.0.1", port=port, ca_file=certs.ca_file, server_name="watchdesk.test"
            ),
            context,
        )
    assert not by_ip.ok
    assert by_ip.reason.startswith("TLS: certificate verify failed: IP address mismatch")
    assert by_name.ok, by_name.reason


async def test_connection_refused(context: ProbeContext) -> None:
    result = await probe(TlsSettings(host="127.0.0.1", port=refused_port()), context)
    assert (result.ok, result.reason, result.tls_expiry) == (False, "connection refused", None)


async def test_handshake_that_never_completes_times_out(context: ProbeContext) -> None:
    short = ProbeContext(0.3, context.http)
    async with serve_tcp(silent) as port:
        result = await probe(TlsSettings(host="127.0.0.1", port=port), short)
    assert (result.ok, result.reason) == (False, "timeout after 300ms")
    assert result.duration_seconds < 0.6


async def test_connect_that_never_completes_times_out(context: ProbeContext) -> None:
    short = ProbeContext(0.3, context.http)
    with unaccepted_port() as port:
        result = await probe(TlsSettings(host="127.0.0.1", port=port), short)
    assert (result.ok, result.reason) == (False, "timeout after 300ms")


async def test_not_a_tls_port(context: ProbeContext) -> None:
    async def http_server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1)
        writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")

    async with serve_tcp(http_server) as port:
        result = await probe(TlsSettings(host="127.0.0.1", port=port), context)
    assert (result.ok, result.reason) == (False, "TLS: wrong version number")


async def test_unknown_host(context: ProbeContext) -> None:
    result = await probe(TlsSettings(host="no-such-host.invalid"), context)
    assert (result.ok, result.reason) == (False, "name not found: no-such-host.invalid")


# --- the DER reader, against cryptography's ----------------------------------------------------


@pytest.mark.parametrize(
    "not_after",
    [
        dt.datetime(2049, 12, 31, 23, 59, 59, tzinfo=dt.UTC),  # UTCTime
        dt.datetime(2050, 1, 1, tzinfo=dt.UTC),  # GeneralizedTime from 2050 on
        dt.datetime(1999, 6, 1, 12, 0, 0, tzinfo=dt.UTC),  # UTCTime, 19xx
        dt.datetime(3000, 1, 1, tzinfo=dt.UTC),
    ],
)
def test_der_not_after_matches_cryptography(not_after: dt.datetime) -> None:
    ca = trustme.CA()
    leaf = ca.issue_cert(
        "example.test",
        not_before=dt.datetime(1990, 1, 1, tzinfo=dt.UTC),
        not_after=not_after,
    )
    der = ssl.PEM_cert_to_DER_cert(leaf.cert_chain_pems[0].bytes().decode())
    expected = x509.load_der_x509_certificate(der).not_valid_after_utc.timestamp()
    assert certificate_not_after(der) == expected == not_after.timestamp()


@pytest.mark.parametrize("garbage", [b"", b"\x30", b"\x30\x03\x02\x01\x00", b"\x04\x00", b"x" * 50])
def test_der_garbage_is_a_value_error(garbage: bytes) -> None:
    with pytest.raises(ValueError, match=r"DER|certificate|tbsCertificate|validity"):
        certificate_not_after(garbage)


def test_expiry_verdict_wording() -> None:
    now = time.time()
    assert expiry_verdict(now + 1.5 * 86400, 14, 0.0, now).reason.startswith(
        "certificate expires in 1 day ("
    )
    assert expiry_verdict(now - 3600, 14, 0.0, now).reason.startswith("certificate expired today (")
    assert expiry_verdict(now - 1.5 * 86400, 14, 0.0, now).reason.startswith(
        "certificate expired 1 day ago ("
    )
    assert expiry_verdict(now + 30 * 86400 + 60, 14, 0.0, now).ok


# --- settings ----------------------------------------------------------------------------------


def test_settings_defaults_and_where() -> None:
    settings = TlsSettings(host="www.acme.example")
    assert (settings.port, settings.min_days_left, settings.verify_tls) == (443, 14, True)
    assert settings.where() == "www.acme.example:443"
    assert TlsSettings(host="::1", port=8443).where() == "[::1]:8443"


def test_bad_settings_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="less than or equal to 65535"):
        TlsSettings(host="x.example", port=70000)
    with pytest.raises(ValidationError, match="no such file"):
        TlsSettings(host="x.example", ca_file=str(tmp_path / "missing.pem"))
    with pytest.raises(ValidationError, match="greater than or equal to 0"):
        TlsSettings(host="x.example", min_days_left=-1)
