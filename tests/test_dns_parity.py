"""One DNS semantics: the dns probe (its shared channel and its own reading of responses) gives
the verdict and reason dnspython's resolver gives, case by case, against a real DNS server on
127.0.0.1; and the channel is shared, asks the server on every probe and tries servers in turn
as dnspython does."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import dns.asyncresolver
import dns.exception
import dns.message
import dns.rdtypes.mxbase
import dns.rdtypes.nsbase
import dns.rdtypes.txtbase
import dns.resolver
import dns.rrset
import pytest
from dns.rdata import Rdata

from checks.base import HttpClients, ProbeContext, roomy_receive_buffer, timeout_reason
from checks.dns import DnsSettings, _list, _normalize, probe
from checks.dns_channel import Channel, NoNameservers
from checks.dns_wire import A
from tests.fakes_probes import FakeDns, serve_dns

BIG_TXT = ['"' + "x" * 200 + '"', '"' + "y" * 200 + '"', '"' + "z" * 200 + '" "needle"']
RECORDS = {
    ("www.acme.test", "A"): ["192.0.2.10", "192.0.2.11", "192.0.2.10"],
    ("v6.acme.test", "AAAA"): ["2001:db8::1", "2001:0db8:0:0:0:0:0:2"],
    ("alias.acme.test", "CNAME"): ["www.acme.test."],
    ("deep.acme.test", "CNAME"): ["alias.acme.test."],
    ("dangling.acme.test", "CNAME"): ["nowhere.acme.test."],
    ("acme.test", "MX"): ["20 backup-mx.acme.test.", "10 mail.acme.test.", "10 a-mx.acme.test."],
    ("acme.test", "TXT"): ['"v=spf1 " "mx -all"', '"caf\\195\\169"'],
    ("acme.test", "NS"): ["ns1.acme.test.", "ns2.acme.test."],
    ("big.acme.test", "TXT"): BIG_TXT,
    ("many.acme.test", "A"): [f"192.0.2.{n}" for n in range(1, 9)],
    ("odd.acme.test", "NS"): ["we\\.ird\\032name.acme.test."],
}
SPECIAL = {
    "silent": ["slow.acme.test"],
    "servfail": ["broken.acme.test"],
    "refused": ["private.acme.test"],
    "truncated": ["big.acme.test"],
    "mismatched": ["spoofed.acme.test"],
}
RECORDS[("spoofed.acme.test", "A")] = ["192.0.2.99"]
RECORDS[("private.acme.test", "A")] = ["192.0.2.98"]

CASES: list[dict[str, Any]] = [
    {"host": "www.acme.test"},
    {"host": "WWW.Acme.Test.", "expect": ["192.0.2.11"]},
    {"host": "www.acme.test", "expect": ["192.0.2.99"]},
    {"host": "v6.acme.test", "record": "AAAA", "expect": ["2001:db8::2"]},
    {"host": "alias.acme.test", "record": "CNAME", "expect": ["www.acme.test"]},
    {"host": "alias.acme.test", "expect": ["192.0.2.10"]},
    {"host": "deep.acme.test"},
    {"host": "dangling.acme.test"},
    {"host": "acme.test", "record": "MX", "expect": ["mail.acme.test"]},
    {"host": "acme.test", "record": "TXT", "expect": ["v=spf1 mx -all"]},
    {"host": "acme.test", "record": "NS"},
    {"host": "odd.acme.test", "record": "NS"},
    {"host": "big.acme.test", "record": "TXT", "expect": ["z" * 200 + "needle"]},
    {"host": "many.acme.test"},
    {"host": "missing.acme.test"},
    {"host": "www.acme.test", "record": "MX"},
    {"host": "broken.acme.test"},
    {"host": "private.acme.test"},
    {"host": "spoofed.acme.test"},
    {"host": "slow.acme.test"},
]


async def reference(settings: DnsSettings, seconds: float) -> tuple[bool, str]:
    """The dns probe as it was over dnspython's resolver: the oracle of these tests."""
    resolver = dns.asyncresolver.Resolver(configure=False)
    resolver.nameservers = [settings.nameserver or ""]
    resolver.port = settings.nameserver_port
    try:
        async with asyncio.timeout(seconds):
            answer = await resolver.resolve(
                settings.host, settings.record, lifetime=seconds, raise_on_no_answer=False
            )
    except (TimeoutError, dns.exception.Timeout):
        return False, timeout_reason(seconds)
    except dns.resolver.NXDOMAIN:
        return False, f"NXDOMAIN: {settings.host}"
    except dns.resolver.NoNameservers as exc:
        server, _tcp, _port, error, *_ = exc.kwargs["errors"][-1]
        server = str(server).removeprefix("Do53:").split("@")[0]
        return False, f"nameserver {server} answered {error}"
    if answer.rrset is None:
        return False, f"no {settings.record} record for {settings.host}"
    found = [_text(rdata) for rdata in sorted(answer.rrset, key=_order)]
    normalized = {_normalize(item, settings.record) for item in found}
    for wanted, original in zip(settings._expect, settings.expect, strict=True):
        if wanted not in normalized:
            return False, f"expected {original!r} not in answer {_list(found)}"
    return True, f"{settings.record} {_list(found)}"


def _text(rdata: Rdata) -> str:
    if isinstance(rdata, dns.rdtypes.mxbase.MXBase):
        return str(rdata.exchange.to_text(omit_final_dot=True))
    if isinstance(rdata, dns.rdtypes.txtbase.TXTBase):
        return b"".join(rdata.strings).decode("utf-8", errors="replace")
    if isinstance(rdata, dns.rdtypes.nsbase.NSBase):
        return str(rdata.target.to_text(omit_final_dot=True))
    return str(rdata.to_text())


def _order(rdata: Rdata) -> tuple[int, str]:
    if isinstance(rdata, dns.rdtypes.mxbase.MXBase):
        return rdata.preference, _text(rdata)
    return 0, _text(rdata)


@pytest.fixture
async def port() -> AsyncIterator[int]:
    async with serve_dns(RECORDS, **SPECIAL) as bound:
        yield bound


@pytest.fixture
async def clients() -> AsyncIterator[HttpClients]:
    made = HttpClients()
    yield made
    await made.close()


@pytest.mark.parametrize("case", CASES, ids=[f"{c['host']}-{c.get('record', 'A')}" for c in CASES])
async def test_the_probe_concludes_what_dnspython_concludes(
    case: dict[str, Any], port: int, clients: HttpClients
) -> None:
    settings = DnsSettings(nameserver="127.0.0.1", nameserver_port=port, **case)
    timeout = 0.3 if case["host"].startswith("slow") else 2.0
    ours = await probe(settings, ProbeContext(timeout, clients))
    assert (ours.ok, ours.reason) == await reference(settings, timeout)


async def test_one_channel_per_nameserver_set_and_every_probe_asks(
    clients: HttpClients,
) -> None:
    fake = FakeDns(RECORDS)
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(lambda: fake, local_addr=("127.0.0.1", 0))
    port = transport.get_extra_info("sockname")[1]
    try:
        context = ProbeContext(1.0, clients)
        targets = [
            DnsSettings(host=host, nameserver="127.0.0.1", nameserver_port=port)
            for host in ("www.acme.test", "many.acme.test")
        ]
        results = await asyncio.gather(*(probe(t, context) for t in targets * 50))
    finally:
        transport.close()
    assert all(result.ok for result in results)
    assert fake.queries == 100  # no cache between probes: a monitor asks every time
    assert [key for key in clients.shared if key.startswith("dns")] == [
        f"dns (('127.0.0.1', {port}),)"
    ]


@contextmanager
def threaded_dns() -> Iterator[int]:
    """A DNS server in a thread of its own, so it answers while the event loop is stalled:
    an A record for every name."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    roomy_receive_buffer(sock)  # the queries of a burst must not be lost on this side either
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.1)
    stop = threading.Event()

    def serve() -> None:
        answers: dict[bytes, bytes] = {}
        while not stop.is_set():
            try:
                data, addr = sock.recvfrom(512)
            except TimeoutError:
                continue
            if data[2:] not in answers:
                response = dns.message.make_response(dns.message.from_wire(data))
                name = response.question[0].name
                response.answer.append(dns.rrset.from_text(name, 60, "IN", "A", "192.0.2.1"))
                answers[data[2:]] = response.to_wire()[2:]
            sock.sendto(data[:2] + answers[data[2:]], addr)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield sock.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        sock.close()


async def test_replies_wait_in_the_shared_socket_while_the_loop_is_busy(
    clients: HttpClients,
) -> None:
    """1,000 answers arrive while the event loop is stalled: the shared socket keeps them all
    (the kernel's default buffer holds a few hundred), none waits for a second try."""
    with threaded_dns() as port:
        context = ProbeContext(1.8, clients)  # shorter than a second try (2 s)
        settings = DnsSettings(host="www.acme.test", nameserver="127.0.0.1", nameserver_port=port)
        probes = [asyncio.create_task(probe(settings, context)) for _ in range(1000)]
        asyncio.get_running_loop().call_soon(time.sleep, 1.0)  # once every query is sent
        results = await asyncio.gather(*probes)
    assert [r.reason for r in results if not r.ok] == []


async def test_servers_are_tried_in_turn(clients: HttpClients) -> None:
    """A server that fails is left for the next; one that is silent is asked again later."""
    async with (
        serve_dns(RECORDS, servfail=["www.acme.test"]) as failing,
        serve_dns(RECORDS, silent=["www.acme.test"]) as silent,
        serve_dns(RECORDS) as good,
    ):
        wire = DnsSettings(host="www.acme.test")._qname_wire
        started = time.perf_counter()
        channel = Channel((("127.0.0.1", failing), ("127.0.0.1", silent), ("127.0.0.1", good)), 0.2)
        reply = await channel.resolve(wire, A)
        took = time.perf_counter() - started
        only_bad = Channel((("127.0.0.1", failing),), 0.2)
        with pytest.raises(NoNameservers) as failed:
            await only_bad.resolve(wire, A)
        await channel.close()
        await only_bad.close()
    assert sorted(reply.records) == [(0, "192.0.2.10"), (0, "192.0.2.11")]
    assert 0.2 <= took < 1.0  # one attempt's wait on the silent server
    assert failed.value.errors == [("127.0.0.1", "SERVFAIL")]
