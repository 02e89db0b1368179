"""The http probe over the lean exchange of ``checks.http1``: plain http and https alike.

Redirects are followed here, as aiohttp follows them (301/302 turn a POST into a GET, 303
anything but HEAD, 307 and 308 keep the method and body; credentials are dropped when the
origin changes), one fresh connection per hop, across schemes.

Over https every hop makes a full handshake and verifies the certificate (chain and host name,
with the system's CAs or the target's ``ca_file``; one ``ssl.SSLContext`` per such setting,
shared by every probe), sends the host name as SNI, and reads the certificate's expiry from
that same handshake: the result carries the earliest expiry of the certificates it saw, which
the agent records as ``watchdesk_tls_cert_expiry_timestamp_seconds``. Only a target with
``tls_session_reuse`` resumes the session of its previous probe (its own URL's hop only).
"""

from __future__ import annotations

import asyncio
import functools
import socket
import ssl
import time

import aiohttp

from checks import http1
from checks.base import (
    ProbeContext,
    client_ssl_context,
    os_error_reason,
    timeout_reason,
    tls_error_reason,
)
from checks.http_aiohttp import client_error_reason
from checks.http_request import (
    CREDENTIALS,
    first_request,
    location_of,
    redirect_url,
    request_bytes,
    strip_auth,
)
from checks.http_settings import (
    MAX_BODY,
    MAX_REDIRECTS,
    HttpSettings,
    Plan,
    keyword_problem,
    status_problem,
)
from checks.result import ProbeResult
from checks.tls import certificate_not_after


async def lean_probe(settings: HttpSettings, context: ProbeContext) -> ProbeResult:
    start = time.perf_counter()
    certificates: list[bytes] = []  # of every TLS handshake, failed exchanges included
    try:
        async with asyncio.timeout(context.timeout):
            ok, reason = await _follow(settings, context, certificates)
    except TimeoutError:
        ok, reason = False, timeout_reason(context.timeout)
    except http1.ServerClosed:
        ok, reason = False, "server closed the connection without a response"
    except http1.CutShort:
        ok, reason = False, "response body cut short"
    except http1.BadResponse as exc:
        ok, reason = False, f"bad response: {exc}"
    except ssl.SSLError as exc:
        ok, reason = False, tls_error_reason(exc)
    except OSError as exc:
        ok, reason = False, os_error_reason(exc, settings.plan.url.raw_host or "")
    return ProbeResult(ok, time.perf_counter() - start, reason, _earliest(certificates))


async def _follow(
    settings: HttpSettings, context: ProbeContext, certificates: list[bytes]
) -> tuple[bool, str]:
    """The exchanges of one probe, redirects followed; the verdict and its reason."""
    plan = settings.plan
    url, auth = strip_auth(plan.url)
    method = settings.method
    body = settings.body
    headers = plan.headers
    user_agent = context.http.user_agent
    request = first_request(settings, plan, user_agent)
    read_body = plan.read_body
    follow = settings.follow_redirects
    skip_body = (lambda status, found: location_of(status, found) is not None) if follow else None
    # as aiohttp's path reads: once ``contains`` is seen, with no ``not_contains``, stop
    stop_at = plan.contains if plan.not_contains is None else None
    resume = _session_key(settings, plan) if settings.tls_session_reuse else None
    redirects = 0
    while True:
        host = url.raw_host or ""
        port = url.port or (443 if url.scheme == "https" else 80)
        try:
            addresses = await context.http.addresses(host, port)
        except OSError as exc:
            return False, _lookup_reason(exc, host)
        tls = None
        if url.scheme == "https":
            session = None
            if resume is not None and redirects == 0:
                session = context.http.tls_sessions.pop(resume, None)
            keep = resume is not None and redirects == 0
            tls = http1.Tls(_context(settings), _server_name(host), session, certificates, keep)
        response = await http1.exchange(
            addresses, port, request, read_body, MAX_BODY, skip_body, stop_at, tls
        )
        if resume is not None and redirects == 0 and response.session is not None:
            context.http.tls_sessions[resume] = response.session
        status = response.status
        location = location_of(status, response.headers) if follow else None
        if location is None:
            break
        redirects += 1
        if redirects > MAX_REDIRECTS:
            return False, f"more than {MAX_REDIRECTS} redirects"
        try:
            target = redirect_url(url, location)
        except aiohttp.ClientError as exc:
            return False, client_error_reason(exc)
        if (status == 303 and method != "HEAD") or (status in (301, 302) and method == "POST"):
            method, body = "GET", None
        if target.origin() != url.origin():
            auth = None
            headers = {k: v for k, v in headers.items() if k.lower() not in CREDENTIALS}
        target, new_auth = strip_auth(target)
        auth = new_auth or auth
        url = target
        request = request_bytes(url, method, body, headers, auth, user_agent)
    problem = status_problem(plan, status)
    if problem is None and read_body:
        problem = keyword_problem(plan, response.body, response.truncated)
    if problem is not None:
        return False, problem
    return True, f"status {status}"


def _context(settings: HttpSettings) -> ssl.SSLContext:
    return client_ssl_context(settings.verify_tls, settings.ca_file)


def _server_name(host: str) -> str:
    """The SNI name aiohttp sends: the URL's host without its trailing dot(s)."""
    return host.rstrip(".")


def _session_key(settings: HttpSettings, plan: Plan) -> tuple[str, int, bool, str | None]:
    """Sessions are resumed only with the server and the trust they were made with."""
    url = plan.url
    return url.raw_host or "", url.port or 443, settings.verify_tls, settings.ca_file


def _earliest(certificates: list[bytes]) -> float | None:
    """The expiry the agent records: the earliest of the certificates the probe saw."""
    if not certificates:
        return None
    expiries = [expiry for der in certificates if (expiry := _not_after(der)) is not None]
    return min(expiries) if expiries else None


@functools.lru_cache(maxsize=4096)
def _not_after(der: bytes) -> float | None:
    """A server sends the same certificate probe after probe: read each one once."""
    try:
        return certificate_not_after(der)
    except ValueError:
        return None


def _lookup_reason(exc: OSError, host: str) -> str:
    if isinstance(exc, socket.gaierror):
        return os_error_reason(exc, host)
    return f"name not found: {host}"
