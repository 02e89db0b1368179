"""HTTP(S): the URL answers with an expected status and, optionally, a keyword in its body."""

from __future__ import annotations

import asyncio
import functools
import socket
import ssl
import time
from pathlib import Path
from typing import Annotated

import aiohttp
from pydantic import Field, PrivateAttr, field_validator, model_validator
from yarl import URL

from checks import http1
from checks.base import (
    ProbeContext,
    ProbeSettings,
    client_ssl_context,
    os_error_reason,
    timeout_reason,
    tls_error_reason,
)
from checks.result import ProbeResult

MAX_BODY = 1024 * 1024  # the keyword checks look at the first MiB, never more
MAX_REDIRECTS = 5
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_KEEP_ALIVE_DRAIN = 64 * 1024  # a small unread body is drained so the connection can be reused
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

Status = Annotated[int, Field(ge=100, le=599)]


class HttpSettings(ProbeSettings):
    url: str = Field(description="http:// or https:// URL to request.")
    method: str = Field(default="GET", description=f"One of {', '.join(sorted(_METHODS))}.")
    headers: dict[str, str] = Field(default_factory=dict, description="Extra request headers.")
    body: str | None = Field(default=None, description="Request body to send (e.g. for POST).")
    expect_status: list[Status] | None = Field(
        default=None, min_length=1, description="Accepted statuses; default: any 2xx or 3xx."
    )
    contains: str | None = Field(
        default=None, min_length=1, description="Must appear in the first MiB of the body."
    )
    not_contains: str | None = Field(
        default=None, min_length=1, description="Must not appear in the first MiB of the body."
    )
    verify_tls: bool = Field(default=True, description="Verify the certificate chain and name.")
    ca_file: str | None = Field(
        default=None, description="PEM file of the CA(s) to trust instead of the system's."
    )
    keep_alive: bool = Field(
        default=False,
        description="Reuse pooled connections; default: a fresh connection per probe, so a dead "
        "listener is noticed even while an old connection still answers.",
    )
    follow_redirects: bool = Field(
        default=True, description=f"Follow up to {MAX_REDIRECTS} redirects; false: a 3xx is final."
    )

    _url: URL = PrivateAttr()
    _expected: frozenset[int] | None = PrivateAttr(default=None)
    _expected_text: str = PrivateAttr(default="")
    _contains: bytes | None = PrivateAttr(default=None)
    _not_contains: bytes | None = PrivateAttr(default=None)
    # The request for the lean path (plain http, a fresh connection): built once.
    _lean_request: bytes | None = PrivateAttr(default=None)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        try:
            url = URL(value)
        except ValueError as exc:
            raise ValueError(f"not a URL: {exc}") from exc
        if url.scheme not in ("http", "https"):
            raise ValueError("must start with http:// or https://")
        if not url.host:
            raise ValueError("has no host")
        return value

    @field_validator("method")
    @classmethod
    def _known_method(cls, value: str) -> str:
        method = value.upper()
        if method not in _METHODS:
            raise ValueError(f"must be one of {', '.join(sorted(_METHODS))}")
        return method

    @field_validator("headers")
    @classmethod
    def _one_line_headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            if not name or any(char in name for char in ":\r\n ") or any(c in text for c in "\r\n"):
                raise ValueError(f"bad header {name!r}: names need no ':', values one line")
        return value

    @field_validator("ca_file")
    @classmethod
    def _ca_file_readable(cls, value: str | None) -> str | None:
        if value is not None and not Path(value).is_file():
            raise ValueError(f"no such file: {value}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> HttpSettings:
        if self.method == "HEAD" and (self.contains or self.not_contains):
            raise ValueError("contains/not_contains need a body: use GET, not HEAD")
        try:
            client_ssl_context(self.verify_tls, self.ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(f"cannot load ca_file {self.ca_file}: {exc}") from exc
        return self

    def model_post_init(self, context: object, /) -> None:
        self._url = URL(self.url)
        if self.expect_status is not None:
            statuses = sorted(set(self.expect_status))
            self._expected = frozenset(statuses)
            words = [str(status) for status in statuses]
            self._expected_text = (
                words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"
            )
        self._contains = self.contains.encode() if self.contains else None
        self._not_contains = self.not_contains.encode() if self.not_contains else None
        if self._url.scheme == "http" and not self.keep_alive:
            self._lean_request = _request_bytes(self)

    def where(self) -> str:
        return self.url


def _request_bytes(settings: HttpSettings) -> bytes:
    url = settings._url
    host = url.raw_host or ""
    if ":" in host:
        host = f"[{host}]"
    if not url.is_default_port():
        host = f"{host}:{url.port}"
    target = url.raw_path_qs or "/"
    body = settings.body.encode() if settings.body is not None else b""
    given = {name.lower() for name in settings.headers}
    lines = [f"{settings.method} {target} HTTP/1.1"]
    if "host" not in given:
        lines.append(f"Host: {host}")
    if "user-agent" not in given:
        lines.append("User-Agent: watchdesk")
    if "accept" not in given:
        lines.append("Accept: */*")
    lines += [f"{name}: {value}" for name, value in settings.headers.items()]
    if body or settings.method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def _lean_probe(
    settings: HttpSettings, context: ProbeContext, request: bytes
) -> ProbeResult | None:
    """The probe over checks.http1; None when a redirect must be followed (aiohttp does that)."""
    start = time.perf_counter()
    url = settings._url
    host = url.raw_host or ""
    read_body = settings._contains is not None or settings._not_contains is not None
    try:
        async with asyncio.timeout(context.timeout):
            try:
                address = await context.http.address(host, url.port or 80)
            except OSError as exc:
                return ProbeResult.failure(time.perf_counter() - start, _lookup_reason(exc, host))
            response = await http1.exchange(address, url.port or 80, request, read_body, MAX_BODY)
    except TimeoutError:
        return ProbeResult.failure(time.perf_counter() - start, timeout_reason(context.timeout))
    except http1.ServerClosed:
        reason = "server closed the connection without a response"
        return ProbeResult.failure(time.perf_counter() - start, reason)
    except http1.BadResponse as exc:
        return ProbeResult.failure(time.perf_counter() - start, f"bad response: {exc}")
    except OSError as exc:
        return ProbeResult.failure(time.perf_counter() - start, os_error_reason(exc, host))
    duration = time.perf_counter() - start
    status = response.status
    if settings.follow_redirects and status in _REDIRECTS and "location" in response.headers:
        return None
    problem = _status_problem(settings, status)
    if problem is None and read_body:
        problem = _keyword_problem(settings, response.body, response.truncated)
    if problem is not None:
        return ProbeResult.failure(duration, problem)
    return ProbeResult.success(duration, f"status {status}")


def _lookup_reason(exc: OSError, host: str) -> str:
    if isinstance(exc, socket.gaierror):
        return os_error_reason(exc, host)
    return f"name not found: {host}"


async def probe(settings: HttpSettings, context: ProbeContext) -> ProbeResult:
    if settings._lean_request is not None:
        lean = await _lean_probe(settings, context, settings._lean_request)
        if lean is not None:
            return lean
    start = time.perf_counter()
    session = context.http.session(settings.keep_alive)
    read_body = settings._contains is not None or settings._not_contains is not None
    body = b""
    truncated = False
    try:
        async with (
            session.request(
                settings.method,
                settings._url,
                headers=settings.headers or None,
                data=settings.body,
                allow_redirects=settings.follow_redirects,
                # aiohttp counts the redirect that reaches its limit as one too many
                max_redirects=MAX_REDIRECTS + 1,
                ssl=client_ssl_context(settings.verify_tls, settings.ca_file),
                timeout=_client_timeout(context.timeout),
            ) as response,
        ):
            status = response.status
            problem = _status_problem(settings, status)
            if problem is None and read_body:
                body, truncated = await _read_head(response, settings)
                if truncated:
                    response.close()  # the rest is never read: drop the connection
            elif settings.keep_alive:
                await response.content.read(_KEEP_ALIVE_DRAIN)
    except TimeoutError:
        return ProbeResult.failure(time.perf_counter() - start, timeout_reason(context.timeout))
    except aiohttp.ClientError as exc:
        return ProbeResult.failure(time.perf_counter() - start, _client_error_reason(exc))
    except OSError as exc:
        host = settings._url.host or settings.url
        return ProbeResult.failure(time.perf_counter() - start, os_error_reason(exc, host))
    duration = time.perf_counter() - start
    if problem is not None:
        return ProbeResult.failure(duration, problem)
    if read_body:
        problem = _keyword_problem(settings, body, truncated)
        if problem is not None:
            return ProbeResult.failure(duration, problem)
    return ProbeResult.success(duration, f"status {status}")


@functools.lru_cache(maxsize=32)
def _client_timeout(seconds: float) -> aiohttp.ClientTimeout:
    """aiohttp's own deadline (one timer, no extra task) for the whole exchange."""
    return aiohttp.ClientTimeout(total=seconds, ceil_threshold=seconds + 1)


def _status_problem(settings: HttpSettings, status: int) -> str | None:
    expected = settings._expected
    if expected is None:
        return None if 200 <= status < 400 else f"status {status}"
    return None if status in expected else f"status {status}, expected {settings._expected_text}"


async def _read_head(
    response: aiohttp.ClientResponse, settings: HttpSettings
) -> tuple[bytes, bool]:
    """Up to MAX_BODY bytes of the body, and whether there was more.

    Stops early once ``contains`` is seen when there is no ``not_contains`` to look for.
    """
    content = response.content
    buffer = bytearray()
    wanted = settings._contains if settings._not_contains is None else None
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


def _keyword_problem(settings: HttpSettings, body: bytes, truncated: bool) -> str | None:
    where = f" in the first {MAX_BODY // (1024 * 1024)} MiB" if truncated else ""
    if settings._contains is not None and settings._contains not in body:
        return f"keyword {settings.contains!r} missing{where}"
    if settings._not_contains is not None and settings._not_contains in body:
        return f"keyword {settings.not_contains!r} found"
    return None


def _client_error_reason(exc: aiohttp.ClientError) -> str:
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
