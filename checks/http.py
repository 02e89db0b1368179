"""HTTP(S): the URL answers with an expected status and, optionally, a keyword in its body.

Two clients, one behaviour. Targets without ``keep_alive`` go over the lean hand-written
exchange of ``checks.http_lean`` (plain http and https: a fresh connection per request, a full
TLS handshake with certificate verification per probe, several times cheaper than aiohttp);
keep-alive targets, which need a connection pool, go through aiohttp (``checks.http_aiohttp``),
and so does a target whose own headers ask for a compressed body (the lean path does not decode
one). Both send the same headers: the agent's User-Agent (``HttpClients.user_agent``),
``Accept: */*``, ``Accept-Encoding: identity`` (a health check needs no compression),
``Connection: close`` unless keep-alive, Content-Length and Content-Type as aiohttp sets them,
header values in UTF-8; both present the same TLS client (one ``ssl.SSLContext`` per
verify/CA setting, SNI from the URL's host). ``probe(..., via="lean" | "aiohttp")`` forces one
path; tests/test_http_parity.py runs a table of cases through both, over http and https.
"""

from __future__ import annotations

from typing import Literal

from checks.base import ProbeContext
from checks.http_aiohttp import aiohttp_probe
from checks.http_lean import lean_probe
from checks.http_settings import HttpSettings
from checks.result import ProbeResult

Via = Literal["auto", "lean", "aiohttp"]

__all__ = ["HttpSettings", "Via", "probe"]


async def probe(settings: HttpSettings, context: ProbeContext, *, via: Via = "auto") -> ProbeResult:
    """Request the target once (following redirects unless told not to) and judge the answer.

    ``via`` picks the client: "auto" (the lean path when ``settings.lean()``, else aiohttp);
    "lean" or "aiohttp" force one, so tests can compare them ("lean" needs a URL that asks for
    no compression; with keep_alive it still uses a fresh connection).
    """
    if via == "lean" and not settings.plan.lean_capable:
        raise ValueError(f"the lean path cannot probe {settings.url} (compression)")
    if via == "lean" or (via == "auto" and settings.lean()):
        return await lean_probe(settings, context)
    return await aiohttp_probe(settings, context)
