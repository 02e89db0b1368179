"""The dns probe against a fake DNS server (real UDP, dnspython wire format) on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic import ValidationError

from checks.base import HttpClients, ProbeContext
from checks.dns import DnsSettings, probe
from tests.fakes_probes import serve_dns

RECORDS = {
    ("www.acme.test", "A"): ["192.0.2.10", "192.0.2.11"],
    ("v6.acme.test", "AAAA"): ["2001:db8::1"],
    ("alias.acme.test", "CNAME"): ["www.acme.test."],
    ("acme.test", "MX"): ["10 mail.acme.test.", "20 backup-mx.acme.test."],
    ("acme.test", "TXT"): ['"v=spf1 " "mx -all"', '"google-site-verification=abc"'],
    ("acme.test", "NS"): ["ns1.acme.test."],
}


@pytest.fixture
async def port() -> AsyncIterator[int]:
    async with serve_dns(RECORDS, silent=["slow.acme.test"], servfail=["broken.acme.test"]) as p:
        yield p


@pytest.fixture
async def context() -> AsyncIterator[ProbeContext]:
    clients = HttpClients()
    yield ProbeContext(timeout=1.0, http=clients)
    await clients.close()


def at(port: int, **values: Any) -> DnsSettings:
    return DnsSettings(nameserver="127.0.0.1", nameserver_port=port, **values)


async def test_a_record(port: int, context: ProbeContext) -> None:
    result = await probe(at(port, host="www.acme.test"), context)
    assert (result.ok, result.reason) == (True, "A [192.0.2.10, 192.0.2.11]")


async def test_expected_address_present(port: int, context: ProbeContext) -> None:
    result = await probe(at(port, host="www.acme.test", expect=["192.0.2.11"]), context)
    assert result.ok, result.reason


async def test_expected_address_missing(port: int, context: ProbeContext) -> None:
    result = await probe(at(port, host="www.acme.test", expect=["192.0.2.99"]), context)
    assert not result.ok
    assert result.reason == "expected '192.0.2.99' not in answer [192.0.2.10, 192.0.2.11]"


async def test_mx_compares_the_exchange_ignoring_case_and_dot(
    port: int, context: ProbeContext
) -> None:
    settings = at(
        port, host="acme.test", record="mx", expect=["MAIL.acme.test.", "backup-mx.acme.test"]
    )
    result = await probe(settings, context)
    assert result.ok, result.reason
    assert result.reason == "MX [mail.acme.test, backup-mx.acme.test]"


async def test_txt_joins_the_strings_of_a_record(port: int, context: ProbeContext) -> None:
    result = await probe(
        at(port, host="acme.test", record="TXT", expect=["v=spf1 mx -all"]), context
    )
    assert result.ok, result.reason
    wrong = await probe(at(port, host="acme.test", record="TXT", expect=["v=spf1 ~all"]), context)
    assert not wrong.ok
    assert wrong.reason.startswith("expected 'v=spf1 ~all' not in answer [")


async def test_aaaa_addresses_compare_as_addresses(port: int, context: ProbeContext) -> None:
    settings = at(port, host="v6.acme.test", record="AAAA", expect=["2001:0DB8:0:0::1"])
    assert (await probe(settings, context)).ok


async def test_cname_and_ns(port: int, context: ProbeContext) -> None:
    cname = at(port, host="alias.acme.test", record="CNAME", expect=["www.acme.test"])
    assert (await probe(cname, context)).ok
    ns = at(port, host="acme.test", record="NS", expect=["ns1.acme.test"])
    assert (await probe(ns, context)).ok


async def test_nxdomain(port: int, context: ProbeContext) -> None:
    result = await probe(at(port, host="missing.acme.test"), context)
    assert (result.ok, result.reason) == (False, "NXDOMAIN: missing.acme.test")


async def test_no_record_of_that_type(port: int, context: ProbeContext) -> None:
    result = await probe(at(port, host="www.acme.test", record="MX"), context)
    assert (result.ok, result.reason) == (False, "no MX record for www.acme.test")


async def test_servfail(port: int, context: ProbeContext) -> None:
    result = await probe(at(port, host="broken.acme.test"), context)
    assert (result.ok, result.reason) == (False, "nameserver 127.0.0.1 answered SERVFAIL")


async def test_no_reply_times_out(port: int, context: ProbeContext) -> None:
    short = ProbeContext(timeout=0.3, http=context.http)
    result = await probe(at(port, host="slow.acme.test"), short)
    assert (result.ok, result.reason) == (False, "timeout after 300ms")
    assert result.duration_seconds < 0.6


def test_settings_defaults_where_and_validation() -> None:
    settings = DnsSettings(host="acme.example")
    assert (settings.record, settings.nameserver, settings.expect) == ("A", None, [])
    assert settings.where() == "acme.example (A)"
    mx = DnsSettings(host="acme.example", record="MX", nameserver="192.0.2.53")
    assert mx.where() == "acme.example (MX) @192.0.2.53"
    with pytest.raises(ValidationError, match="'A', 'AAAA', 'CNAME', 'MX', 'TXT' or 'NS'"):
        DnsSettings(host="acme.example", record="SRV")
    with pytest.raises(ValidationError, match="must be an IP address"):
        DnsSettings(host="acme.example", nameserver="ns1.acme.example")
    with pytest.raises(ValidationError, match="not a DNS name"):
        DnsSettings(host="a" * 64 + ".example")
