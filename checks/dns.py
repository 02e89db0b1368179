"""DNS: a name resolves, optionally to the records expected.

Queries go out through one shared socket per nameserver set (``checks.dns_channel``) and are
read by ``checks.dns_wire``; what they conclude is what dnspython's resolver concludes (no
search list, no cache: every probe asks the server).
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import time
from typing import Literal

import dns.exception
import dns.name
import dns.rdatatype
from pydantic import Field, PrivateAttr, field_validator

from checks.base import ProbeContext, ProbeSettings, timeout_reason
from checks.dns_channel import Channel, NoNameservers, NxDomain
from checks.result import ProbeResult

RecordType = Literal["A", "AAAA", "CNAME", "MX", "TXT", "NS"]
_SHOWN = 5  # answers quoted in a reason


class DnsSettings(ProbeSettings):
    host: str = Field(min_length=1, description="The name to resolve (absolute; no search list).")
    record: RecordType = Field(default="A", description="A | AAAA | CNAME | MX | TXT | NS.")
    nameserver: str | None = Field(
        default=None, description="IP address of the server to ask; default: the system's."
    )
    nameserver_port: int = Field(default=53, ge=1, le=65535, description="Its port.")
    expect: list[str] = Field(
        default_factory=list,
        description="Each must be in the answer (case and trailing dot ignored; MX: the "
        "exchange host; TXT: the strings of a record joined).",
    )

    _qname_wire: bytes = PrivateAttr()
    _rdtype: int = PrivateAttr()
    _expect: tuple[str, ...] = PrivateAttr(default=())

    @field_validator("record", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("host")
    @classmethod
    def _dns_name(cls, value: str) -> str:
        try:
            dns.name.from_text(value)
        except dns.exception.DNSException as exc:
            raise ValueError(f"not a DNS name: {exc}") from exc
        return value

    @field_validator("nameserver")
    @classmethod
    def _ip_address(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ipaddress.ip_address(value)
            except ValueError as exc:
                raise ValueError(f"must be an IP address: {exc}") from exc
        return value

    def model_post_init(self, context: object, /) -> None:
        self._qname_wire = dns.name.from_text(self.host).to_wire() or b"\0"
        self._rdtype = int(dns.rdatatype.RdataType.make(self.record))
        self._expect = tuple(_normalize(item, self.record) for item in self.expect)

    def where(self) -> str:
        server = f" @{self.nameserver}" if self.nameserver else ""
        port = f":{self.nameserver_port}" if self.nameserver and self.nameserver_port != 53 else ""
        return f"{self.host} ({self.record}){server}{port}"


async def probe(settings: DnsSettings, context: ProbeContext) -> ProbeResult:
    start = time.perf_counter()
    try:
        channel = _channel(settings, context)
        async with asyncio.timeout(context.timeout):
            reply = await channel.resolve(settings._qname_wire, settings._rdtype)
    except TimeoutError:
        return ProbeResult.failure(time.perf_counter() - start, timeout_reason(context.timeout))
    except NxDomain:
        return ProbeResult.failure(time.perf_counter() - start, f"NXDOMAIN: {settings.host}")
    except NoNameservers as exc:
        return ProbeResult.failure(time.perf_counter() - start, _no_nameservers(exc))
    except dns.exception.DNSException as exc:  # no usable system configuration
        return ProbeResult.failure(time.perf_counter() - start, f"DNS: {_short(str(exc))}")
    duration = time.perf_counter() - start
    if not reply.records:
        return ProbeResult.failure(duration, f"no {settings.record} record for {settings.host}")
    found = [text for _, text in sorted(reply.records)]  # MX by preference, the rest by text
    normalized = {_normalize(item, settings.record) for item in found}
    for wanted, original in zip(settings._expect, settings.expect, strict=True):
        if wanted not in normalized:
            return ProbeResult.failure(
                duration, f"expected {original!r} not in answer {_list(found)}"
            )
    return ProbeResult.success(duration, f"{settings.record} {_list(found)}")


def _channel(settings: DnsSettings, context: ProbeContext) -> Channel:
    """The shared channel of the target's nameservers: its own, or the system's."""
    if settings.nameserver is None:
        servers = system_nameservers()
    else:
        servers = ((settings.nameserver, settings.nameserver_port),)
    key = f"dns {servers}"
    channel = context.http.shared.get(key)
    if not isinstance(channel, Channel):
        channel = Channel(servers)
        context.http.shared[key] = channel
    return channel


@functools.cache
def system_nameservers() -> tuple[tuple[str, int], ...]:
    """The servers of /etc/resolv.conf, read once, as dnspython's resolver reads them."""
    import dns.resolver  # here, not at the top: config validation imports DnsSettings

    resolver = dns.resolver.Resolver()
    return tuple((str(server), resolver.port) for server in resolver.nameservers)


def _normalize(text: str, record: str) -> str:
    text = text.strip().lower().rstrip(".")
    if record in ("A", "AAAA"):
        try:
            return ipaddress.ip_address(text).compressed
        except ValueError:
            return text
    return text


def _list(items: list[str]) -> str:
    shown = ", ".join(items[:_SHOWN])
    more = f", ... ({len(items)} in all)" if len(items) > _SHOWN else ""
    return f"[{shown}{more}]"


def _no_nameservers(exc: NoNameservers) -> str:
    if not exc.errors:
        return "no nameserver answered"
    server, error = exc.errors[-1]
    return f"nameserver {server} answered {_short(error)}"


def _short(text: str) -> str:
    return text if len(text) <= 120 else text[:117] + "..."
