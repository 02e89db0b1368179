"""Probes: one module per kind, each a settings model and ``async def probe(...) -> ProbeResult``.

``PROBES`` is the one list of kinds; config validation reads it too, so a new kind is one new
module and one line here.
"""

from __future__ import annotations

from typing import Any

from checks.base import HttpClients, ProbeContext, ProbeKind, ProbeSettings
from checks.dns import DnsSettings
from checks.http_settings import HttpSettings
from checks.icmp import IcmpSettings
from checks.result import ProbeResult
from checks.tcp import TcpSettings
from checks.tls import TlsSettings

PROBES: dict[str, ProbeKind[Any]] = {
    "http": ProbeKind(HttpSettings, "checks.http"),
    "tcp": ProbeKind(TcpSettings, "checks.tcp"),
    "icmp": ProbeKind(IcmpSettings, "checks.icmp"),
    "dns": ProbeKind(DnsSettings, "checks.dns"),
    "tls": ProbeKind(TlsSettings, "checks.tls"),
}

__all__ = ["PROBES", "HttpClients", "ProbeContext", "ProbeKind", "ProbeResult", "ProbeSettings"]
