"""Probes: one module per kind, each a settings model and ``async def probe(...) -> ProbeResult``.

``PROBES`` is the one list of kinds; config validation reads it too, so a new kind is one new
module and one line here.
"""

from __future__ import annotations

from typing import Any

from checks import dns, http, icmp, tcp, tls
from checks.base import HttpClients, ProbeContext, ProbeKind, ProbeSettings
from checks.result import ProbeResult

PROBES: dict[str, ProbeKind[Any]] = {
    "http": ProbeKind(http.HttpSettings, http.probe),
    "tcp": ProbeKind(tcp.TcpSettings, tcp.probe),
    "icmp": ProbeKind(icmp.IcmpSettings, icmp.probe),
    "dns": ProbeKind(dns.DnsSettings, dns.probe),
    "tls": ProbeKind(tls.TlsSettings, tls.probe),
}

__all__ = ["PROBES", "HttpClients", "ProbeContext", "ProbeKind", "ProbeResult", "ProbeSettings"]
