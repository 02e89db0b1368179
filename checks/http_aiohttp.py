"""The http probe over aiohttp: for targets the lean path does not take (``keep_alive``, which
needs a connection pool, and a request that asks for a compressed body, which the lean path
does not decode), and the reference the lean path is held to in tests/test_http_parity.py.

Its error texts are the vocabulary of reasons: ``client_error_reason`` turns aiohttp's errors
into the words the lean path uses too.
"""

from __future__ import annotations

import functools
import ssl
import time

import aiohttp

from checks.base import (
    ProbeContext,
    client_ssl_context,
    os_error_reason,
    timeout_reason,
    tls_error_reason,
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

_KEEP_ALIVE_DRAIN = 64 * 1024  # a small unread body is drained so the connection can be reused


async def aiohttp_probe(settings: HttpSettings, context: ProbeContext) -> ProbeResult:
    start = time.perf_counter()
    plan = settings.plan
    session = context.http.session(settings.keep_alive)
    read_body = plan.read_body
    body = b""
    truncated = False
    try:
        async with (
            session.request(
                settings.method,
                plan.url,
                headers=plan.headers,
                data=settings.body,
                allow_redirects=settings.follow_redirects,
                # aiohttp counts the redirect that reaches its limit as one too many
                max_redirects=MAX_REDIRECTS + 1,
                ssl=client_ssl_context(settings.verify_tls, settings.ca_file),
                timeout=_client_timeout(context.timeout),
            ) as response,
        ):
            status = response.status
            problem = status_problem(plan, status)
            if problem is None and read_body:
                body, truncated = await _read_head(response, plan)
                if truncated:
                    response.close()  # the rest is never read: drop the connection
            elif settings.keep_alive:
                await response.content.read(_KEEP_ALIVE_DRAIN)
    except TimeoutError:
        return ProbeResult.failure(time.perf_counter() - start, timeout_reason(context.timeout))
    except aiohttp.ClientError as exc:
        return ProbeResult.failure(time.perf_counter() - start, client_error_reason(exc))
    except OSError as exc:
        host = plan.url.host or settings.url
        return ProbeResult.failure(time.perf_counter() - start, os_error_reason(exc, host))
    duration = time.perf_counter() - start
    if problem is not None:
        return ProbeResult.failure(duration, problem)
    if read_body:
        problem = keyword_problem(plan, body, truncated)
        if problem is not None:
            return ProbeResult.failure(duration, problem)
    return ProbeResult.success(duration, f"status {status}")


@functools.lru_cache(maxsize=32)
def _client_timeout(seconds: float) -> aiohttp.ClientTimeout:
    """aiohttp's own deadline (one timer, no extra task) for the whole exchange."""
    return aiohttp.ClientTimeout(total=seconds, ceil_threshold=seconds + 1)


async def _read_head(response: aiohttp.ClientResponse, plan: Plan) -> tuple[bytes, bool]:
    """Up to MAX_BODY bytes of the body, and whether there was more.

    Stops early once ``contains`` is seen when there is no ``not_contains`` to look for.
    """
    content = response.content
    buffer = bytearray()
    wanted = plan.contains if plan.not_contains is None else None
    while len(buffer) < MAX_BODY:
        chunk = await content.read(MAX_BODY - len(buffer))
        if not chunk:
            return bytes(buffer), False
        searched_from = max(0, len(buffer) - len(wanted) + 1) if wanted else 0
        buffer += chunk
        if wanted is not None and buffer.find(wanted, searched_from) >= 0:
            return bytes(buffer), not content.at_eof()
    more = not content.at_eof() and response.content_length != len(buffer)
    return bytes(buffer), more


def client_error_reason(exc: aiohttp.ClientError) -> str:
    # Order matters: the certificate and DNS errors are kinds of ClientConnectorError.
    if isinstance(exc, aiohttp.TooManyRedirects):
        return f"more than {MAX_REDIRECTS} redirects"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        cause = exc.certificate_error
        if isinstance(cause, ssl.SSLError):
            return tls_error_reason(cause)
        return f"TLS: {cause}"
    if isinstance(exc, aiohttp.ClientConnectorSSLError):
        cause = exc.os_error
        return tls_error_reason(cause) if isinstance(cause, ssl.SSLError) else f"TLS: {cause}"
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return f"name not found: {exc.host}"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return os_error_reason(exc.os_error, exc.host)
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "server closed the connection without a response"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "response body cut short"
    if isinstance(exc, aiohttp.ClientResponseError):
        first_line = str(exc.message).strip().split("\n", 1)[0].rstrip(":")
        return f"bad response: {first_line}" if first_line else f"bad response: {exc.status}"
    if isinstance(exc, aiohttp.RedirectClientError | aiohttp.InvalidURL):
        return f"bad redirect: {exc}"
    if isinstance(exc, OSError):
        return os_error_reason(exc, "")
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 120 else text[:117] + "..."
