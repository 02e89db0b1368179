"""DNS: a name resolves, optionally to the records expected."""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import time
from typing import Literal

import dns.asyncresolver
import dns.exception
import dns.name
import dns.rdatatype
import dns.rdtypes.mxbase
import dns.rdtypes.nsbase
import dns.rdtypes.txtbase
import dns.resolver
from dns.rdata import Rdata
from pydantic import Field, PrivateAttr, field_validator

from checks.base import ProbeContext, ProbeSettings, timeout_reason
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

    _qname: dns.name.Name = PrivateAttr()
    _rdtype: dns.rdatatype.RdataType = PrivateAttr()
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
        self._qname = dns.name.from_text(self.host)
        self._rdtype = dns.rdatatype.RdataType.make(self.record)
        self._expect = tuple(_normalize(item, self.record) for item in self.expect)

    def where(self) -> str:
        server = f" @{self.nameserver}" if self.nameserver else ""
        port = f":{self.nameserver_port}" if self.nameserver and self.nameserver_port != 53 else ""
        return f"{self.host} ({self.record}){server}{port}"


@functools.lru_cache(maxsize=1024)
def resolver_for(nameserver: str | None, port: int) -> dns.asyncresolver.Resolver:
    """One Resolver per server (the system one reads /etc/resolv.conf once); no answer cache."""
    if nameserver is None:
        return dns.asyncresolver.Resolver()
    resolver = dns.asyncresolver.Resolver(configure=False)
    resolver.nameservers = [nameserver]
    resolver.port = port
    return resolver


async def probe(settings: DnsSettings, context: ProbeContext) -> ProbeResult:
    start = time.perf_counter()
    try:
        resolver = resolver_for(settings.nameserver, settings.nameserver_port)
        async with asyncio.timeout(context.timeout):
            answer = await resolver.resolve(
                settings._qname,
                settings._rdtype,
                lifetime=context.timeout,
                raise_on_no_answer=False,
                search=False,
            )
    except (TimeoutError, dns.exception.Timeout):
        return ProbeResult.failure(time.perf_counter() - start, timeout_reason(context.timeout))
    except dns.resolver.NXDOMAIN:
        return ProbeResult.failure(time.perf_counter() - start, f"NXDOMAIN: {settings.host}")
    except dns.resolver.NoNameservers as exc:
        return ProbeResult.failure(time.perf_counter() - start, _no_nameservers(exc))
    except dns.exception.DNSException as exc:
        return ProbeResult.failure(time.perf_counter() - start, f"DNS: {_short(str(exc))}")
    duration = time.perf_counter() - start
    if answer.rrset is None:
        return ProbeResult.failure(duration, f"no {settings.record} record for {settings.host}")
    found = [_text(rdata) for rdata in sorted(answer.rrset, key=_order)]
    normalized = {_normalize(item, settings.record) for item in found}
    for wanted, original in zip(settings._expect, settings.expect, strict=True):
        if wanted not in normalized:
            return ProbeResult.failure(
                duration, f"expected {original!r} not in answer {_list(found)}"
            )
    return ProbeResult.success(duration, f"{settings.record} {_list(found)}")


def _text(rdata: Rdata) -> str:
    """The part of a record a person compares: address, target host, exchange or text."""
    if isinstance(rdata, dns.rdtypes.mxbase.MXBase):
        return str(rdata.exchange.to_text(omit_final_dot=True))
    if isinstance(rdata, dns.rdtypes.txtbase.TXTBase):
        return b"".join(rdata.strings).decode("utf-8", errors="replace")
    if isinstance(rdata, dns.rdtypes.nsbase.NSBase):  # CNAME, NS
        return str(rdata.target.to_text(omit_final_dot=True))
    return str(rdata.to_text())  # A, AAAA


def _order(rdata: Rdata) -> tuple[int, str]:
    """A stable order for reasons: MX by preference, the rest by text."""
    if isinstance(rdata, dns.rdtypes.mxbase.MXBase):
        return rdata.preference, _text(rdata)
    return 0, _text(rdata)


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


def _no_nameservers(exc: dns.resolver.NoNameservers) -> str:
    errors = exc.kwargs.get("errors") or []
    if not errors:
        return "no nameserver answered"
    server, _tcp, _port, error, *_ = errors[-1]
    server = str(server).removeprefix("Do53:").split("@")[0]
    return f"nameserver {server} answered {_short(str(error))}"


def _short(text: str) -> str:
    return text if len(text) <= 120 else text[:117] + "..."
