"""HTTP(S): the URL answers with an expected status and, optionally, a keyword in its body.

Two clients, one behaviour. Plain ``http://`` targets without ``keep_alive`` go over the lean
hand-written exchange of ``checks.http1`` (a fresh connection per request, several times
cheaper than aiohttp); TLS and keep-alive targets go through aiohttp. The lean path follows
redirects itself, as aiohttp does (301/302 turn a POST into a GET, 303 anything but HEAD, 307 and
308 keep the method and body; credentials are dropped when the origin changes); a redirect to
``https://`` is handed to aiohttp for the rest of the chain, so no request is ever sent twice.
Both send the same headers: the agent's User-Agent (``HttpClients.user_agent``), ``Accept: */*``,
``Accept-Encoding: identity`` (a health check needs no compression, and the lean path does not
decode it), ``Connection: close`` unless keep-alive, Content-Length and Content-Type as aiohttp
sets them, header values in UTF-8. A target whose own headers ask for another encoding goes
through aiohttp. ``probe(..., via="lean" | "aiohttp")`` forces one path; tests/test_http_parity.py
runs a table of cases through both.
"""

from __future__ import annotations

import asyncio
import functools
import socket
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

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
# As aiohttp: these send no Content-Length without a body; the others send "0".
_BODILESS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
# As aiohttp: these get "Content-Type: application/octet-stream" when the target sets none.
_UPLOADS = frozenset({"POST", "PUT", "PATCH"})
_TEXT = "text/plain; charset=utf-8"  # what aiohttp declares for a str body
# Dropped on a redirect to another origin (scheme, host and port), as aiohttp does.
_CREDENTIALS = frozenset({"authorization", "cookie", "proxy-authorization"})

Via = Literal["auto", "lean", "aiohttp"]

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
    # The headers sent on top of what each client adds itself (aiohttp: Host, User-Agent,
    # Accept, Content-Length, Content-Type; the lean path: the same, by hand).
    _headers: dict[str, str] = PrivateAttr(default_factory=dict)
    # Whether the lean path can send this target's request (plain http, no compression asked).
    _lean_capable: bool = PrivateAttr(default=False)
    # The first request of the lean path, built once per User-Agent: (user agent, bytes).
    _lean_request: tuple[str, bytes] | None = PrivateAttr(default=None)

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
        given = {name.lower() for name in self.headers}
        if given & {"content-length", "transfer-encoding"}:
            raise ValueError("headers: Content-Length and Transfer-Encoding follow from body")
        url = URL(self.url)
        if (url.raw_user or url.raw_password) and "authorization" in given:
            raise ValueError("credentials in the URL and an Authorization header: pick one")
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
        given = {name.lower(): value for name, value in self.headers.items()}
        self._headers = dict(self.headers)
        if "accept-encoding" not in given:
            self._headers["Accept-Encoding"] = "identity"
        self._lean_capable = self._url.scheme == "http" and given.get(
            "accept-encoding", "identity"
        ).strip().lower() in ("identity", "")

    def lean(self) -> bool:
        """Whether ``probe`` takes the lean path (checks.http1) for this target by default."""
        return self._lean_capable and not self.keep_alive

    def where(self) -> str:
        return self.url


def _request_bytes(
    url: URL,
    method: str,
    body: str | None,
    headers: Mapping[str, str],
    auth: str | None,
    user_agent: str,
) -> bytes:
    """One request of the lean path, with the headers aiohttp would send for it."""
    given = {name.lower() for name in headers}
    lines = [f"{method} {url.raw_path_qs or '/'} HTTP/1.1"]
    if "host" not in given:
        lines.append(f"Host: {url.host_port_subcomponent}")
    if "accept" not in given:
        lines.append("Accept: */*")
    if "user-agent" not in given:
        lines.append(f"User-Agent: {user_agent}")
    if auth is not None:
        lines.append(f"Authorization: {auth}")
    lines += [f"{name}: {value}" for name, value in headers.items()]
    data = b"" if body is None else body.encode()
    if body is not None or method not in _BODILESS:
        lines.append(f"Content-Length: {len(data)}")
    if "content-type" not in given:
        if body is not None:
            lines.append(f"Content-Type: {_TEXT}")
        elif method in _UPLOADS:
            lines.append("Content-Type: application/octet-stream")
    if "connection" not in given:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape") + data


def _first_request(settings: HttpSettings, user_agent: str) -> bytes:
    cached = settings._lean_request
    if cached is not None and cached[0] == user_agent:
        return cached[1]
    url, auth = _strip_auth(settings._url)
    request = _request_bytes(
        url, settings.method, settings.body, settings._headers, auth, user_agent
    )
    settings._lean_request = (user_agent, request)
    return request


def _strip_auth(url: URL) -> tuple[URL, str | None]:
    """The URL without its credentials, and the Authorization aiohttp makes of them."""
    if url.raw_user is None and url.raw_password is None:
        return url, None
    auth = aiohttp.encode_basic_auth(url.user or "", url.password or "", "latin1")
    return url.with_user(None), auth


def _has_no_authority(location: str, scheme: str) -> bool:
    """Whether a location with a scheme lacks the "//" of an authority ("http:/path")."""
    location = location.strip("".join(map(chr, range(0x21)))).translate(
        str.maketrans("", "", "\t\n\r")
    )
    rest = location[len(scheme) + 1 : len(scheme) + 3]
    return rest[:1] not in ("/", "\\") or rest[1:] not in ("/", "\\")


def _redirect_url(url: URL, location: str) -> URL:
    """Where a redirect from ``url`` leads, resolved as aiohttp does; aiohttp's errors."""
    try:
        target = URL(location)
    except ValueError as exc:
        raise aiohttp.InvalidUrlRedirectClientError(
            location, "Server attempted redirecting to a location that does not look like a URL"
        ) from exc
    if target.scheme not in ("http", "https", ""):
        raise aiohttp.NonHttpUrlRedirectClientError(location)
    if not target.scheme or (
        target.scheme == url.scheme and _has_no_authority(location, target.scheme)
    ):
        target = url.join(target)
    try:
        target.origin()
    except ValueError as exc:
        raise aiohttp.InvalidUrlRedirectClientError(target, "Invalid redirect URL origin") from exc
    if not target.raw_host:
        raise aiohttp.InvalidUrlRedirectClientError(target)
    return target


def _location(status: int, headers: dict[str, str]) -> str | None:
    if status not in _REDIRECTS:
        return None
    return headers.get("location") or headers.get("uri") or None


async def _lean_probe(settings: HttpSettings, context: ProbeContext) -> ProbeResult:
    """The probe over checks.http1, redirects included; aiohttp takes over at an https hop."""
    start = time.perf_counter()
    url, auth = _strip_auth(settings._url)
    method = settings.method
    body = settings.body
    headers = settings._headers
    user_agent = context.http.user_agent
    request = _first_request(settings, user_agent)
    read_body = settings._contains is not None or settings._not_contains is not None
    follow = settings.follow_redirects
    skip_body = (lambda status, found: _location(status, found) is not None) if follow else None
    # as _read_head: once ``contains`` is seen, with no ``not_contains`` to look for, stop
    stop_at = settings._contains if settings._not_contains is None else None
    redirects = 0
    host = url.raw_host or ""
    try:
        async with asyncio.timeout(context.timeout):
            while True:
                host = url.raw_host or ""
                port = url.port or 80
                try:
                    addresses = await context.http.addresses(host, port)
                except OSError as exc:
                    reason = _lookup_reason(exc, host)
                    return ProbeResult.failure(time.perf_counter() - start, reason)
                response = await http1.exchange(
                    addresses, port, request, read_body, MAX_BODY, skip_body, stop_at
                )
                status = response.status
                location = _location(status, response.headers) if follow else None
                if location is None:
                    break
                redirects += 1
                if redirects > MAX_REDIRECTS:
                    reason = f"more than {MAX_REDIRECTS} redirects"
                    return ProbeResult.failure(time.perf_counter() - start, reason)
                try:
                    target = _redirect_url(url, location)
                except aiohttp.ClientError as exc:
                    reason = _client_error_reason(exc)
                    return ProbeResult.failure(time.perf_counter() - start, reason)
                if (status == 303 and method != "HEAD") or (
                    status in (301, 302) and method == "POST"
                ):
                    method, body = "GET", None
                if target.origin() != url.origin():
                    auth = None
                    headers = {k: v for k, v in headers.items() if k.lower() not in _CREDENTIALS}
                target, new_auth = _strip_auth(target)
                auth = new_auth or auth
                url = target
                if url.scheme != "http":
                    break  # TLS: aiohttp sends this request and follows the rest of the chain
                request = _request_bytes(url, method, body, headers, auth, user_agent)
    except TimeoutError:
        return ProbeResult.failure(time.perf_counter() - start, timeout_reason(context.timeout))
    except http1.ServerClosed:
        reason = "server closed the connection without a response"
        return ProbeResult.failure(time.perf_counter() - start, reason)
    except http1.CutShort:
        return ProbeResult.failure(time.perf_counter() - start, "response body cut short")
    except http1.BadResponse as exc:
        return ProbeResult.failure(time.perf_counter() - start, f"bad response: {exc}")
    except OSError as exc:
        return ProbeResult.failure(time.perf_counter() - start, os_error_reason(exc, host))
    if url.scheme != "http":
        if auth is not None:
            headers = {**headers, "Authorization": auth}
        hop = _Hop(url, method, body, headers, redirects)
        return await _aiohttp_probe(settings, context, start, hop)
    duration = time.perf_counter() - start
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


async def probe(settings: HttpSettings, context: ProbeContext, *, via: Via = "auto") -> ProbeResult:
    """Request the target once (following redirects unless told not to) and judge the answer.

    ``via`` picks the client: "auto" (the lean path when ``settings.lean()``, else aiohttp);
    "lean" or "aiohttp" force one, so tests can compare them ("lean" needs a plain http://
    URL that asks for no compression; with keep_alive it still uses a fresh connection).
    """
    if via == "lean" and not settings._lean_capable:
        raise ValueError(f"the lean path cannot probe {settings.url} (TLS or compression)")
    if via == "lean" or (via == "auto" and settings.lean()):
        return await _lean_probe(settings, context)
    hop = _Hop(settings._url, settings.method, settings.body, settings._headers, 0)
    return await _aiohttp_probe(settings, context, time.perf_counter(), hop)


@dataclass(frozen=True, slots=True)
class _Hop:
    """Where aiohttp starts: the target itself, or where the lean path's redirects led."""

    url: URL
    method: str
    body: str | None
    headers: Mapping[str, str]
    redirects: int  # already followed


async def _aiohttp_probe(
    settings: HttpSettings, context: ProbeContext, start: float, hop: _Hop
) -> ProbeResult:
    session = context.http.session(settings.keep_alive)
    read_body = settings._contains is not None or settings._not_contains is not None
    body = b""
    truncated = False
    if hop.redirects:
        left = max(context.timeout - (time.perf_counter() - start), 0.001)
        timeout = aiohttp.ClientTimeout(total=left, ceil_threshold=context.timeout + 1)
    else:
        timeout = _client_timeout(context.timeout)
    try:
        async with (
            session.request(
                hop.method,
                hop.url,
                headers=hop.headers,
                data=hop.body,
                allow_redirects=settings.follow_redirects,
                # aiohttp counts the redirect that reaches its limit as one too many
                max_redirects=MAX_REDIRECTS + 1 - hop.redirects,
                ssl=client_ssl_context(settings.verify_tls, settings.ca_file),
                timeout=timeout,
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
        host = hop.url.host or settings.url
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
