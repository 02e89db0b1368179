"""The requests of the lean http path, byte for byte what aiohttp sends, and where a redirect
leads (resolved, and refused, as aiohttp does)."""

from __future__ import annotations

from collections.abc import Mapping

import aiohttp
from yarl import URL

from checks.http_settings import HttpSettings, Plan

REDIRECTS = frozenset({301, 302, 303, 307, 308})
# As aiohttp: these send no Content-Length without a body; the others send "0".
_BODILESS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
# As aiohttp: these get "Content-Type: application/octet-stream" when the target sets none.
_UPLOADS = frozenset({"POST", "PUT", "PATCH"})
_TEXT = "text/plain; charset=utf-8"  # what aiohttp declares for a str body
# Dropped on a redirect to another origin (scheme, host and port), as aiohttp does.
CREDENTIALS = frozenset({"authorization", "cookie", "proxy-authorization"})


def request_bytes(
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


def first_request(settings: HttpSettings, plan: Plan, user_agent: str) -> bytes:
    """The request to the target's own URL (``plan`` is ``settings.plan``), made once."""
    cached = plan.request
    if cached is not None and cached[0] == user_agent:
        return cached[1]
    url, auth = strip_auth(plan.url)
    request = request_bytes(url, settings.method, settings.body, plan.headers, auth, user_agent)
    plan.request = (user_agent, request)
    return request


def strip_auth(url: URL) -> tuple[URL, str | None]:
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


def redirect_url(url: URL, location: str) -> URL:
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


def location_of(status: int, headers: dict[str, str]) -> str | None:
    if status not in REDIRECTS:
        return None
    return headers.get("location") or headers.get("uri") or None
