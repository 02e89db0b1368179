"""What every probe kind shares: the context a probe runs in and the shape of a registry entry."""

from __future__ import annotations

import asyncio
import errno
import importlib
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar, cast

from pydantic import BaseModel, ConfigDict

from checks.result import ProbeResult

if TYPE_CHECKING:
    # Imported where a session is made: config validation reads this module's settings base
    # and must not pay for aiohttp (``watchdesk check-config``).
    import aiohttp


class ProbeSettings(BaseModel):
    """Base of each kind's settings: strict, so a typo in config.toml is an error, not a default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def where(self) -> str:
        """The URL or host a person would check by hand; shown in tickets and /api/status."""
        raise NotImplementedError


@lru_cache(maxsize=64)
def client_ssl_context(verify: bool, ca_file: str | None) -> ssl.SSLContext:
    """One SSLContext per (verify, CA file): building one costs milliseconds, so share them."""
    if not verify:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    return ssl.create_default_context(cafile=ca_file)


def format_duration(seconds: float) -> str:
    """A duration as a person writes it, the one way watchdesk prints one: 0.25 -> "250ms",
    1.5 -> "1.5s", 90 -> "1m30s", 5400 -> "1h30m" (the config's own notation)."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    if seconds < 60 and seconds != int(seconds):
        return f"{round(seconds, 3):g}s"
    remaining = round(seconds)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, remaining = divmod(remaining, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


def timeout_reason(seconds: float) -> str:
    return f"timeout after {format_duration(seconds)}"


_ERRNO_REASONS = {
    errno.ECONNREFUSED: "connection refused",
    errno.ECONNRESET: "connection reset",
    errno.ENETUNREACH: "network unreachable",
    errno.EHOSTUNREACH: "host unreachable",
    errno.ETIMEDOUT: "connection timed out",
    errno.EADDRNOTAVAIL: "address not available",
}


HANDSHAKE_CUT = "TLS: the server closed the connection during the handshake"


def os_error_reason(exc: OSError, host: str) -> str:
    """A short reason for a failed connect, name lookup included ("name not found: host")."""
    if isinstance(exc, socket.gaierror):
        if exc.errno == socket.EAI_AGAIN:
            return f"name lookup failed (temporary DNS failure): {host}"
        return f"name not found: {host}"
    if isinstance(exc, ConnectionResetError) and exc.errno is None:
        # not the kernel's ECONNRESET: asyncio's (and checks.tls_layer's) word for a server
        # that hung up before the TLS handshake was done
        return HANDSHAKE_CUT
    known = _ERRNO_REASONS.get(exc.errno) if exc.errno is not None else None
    if known:
        return known
    text = exc.strerror or str(exc) or type(exc).__name__
    return f"cannot connect: {text[:1].lower()}{text[1:]}"


def tls_error_reason(exc: ssl.SSLError) -> str:
    """E.g. "TLS: certificate verify failed: self-signed certificate", not OpenSSL's noise."""
    if isinstance(exc, ssl.SSLCertVerificationError) and exc.verify_message:
        return f"TLS: certificate verify failed: {exc.verify_message}"
    reason = getattr(exc, "reason", None)
    if isinstance(reason, str) and reason:
        return f"TLS: {reason.lower().replace('_', ' ')}"
    return f"TLS: {exc}"


DNS_CACHE = 30.0
RECEIVE_BUFFER = 4 * 1024 * 1024
_SO_RCVBUFFORCE = 33  # Linux: past net.core.rmem_max, for root or CAP_NET_ADMIN


def roomy_receive_buffer(sock: socket.socket, size: int = RECEIVE_BUFFER) -> None:
    """Let a socket shared by every probe of a kind hold the replies of a burst.

    The kernel's default (net.core.rmem_default, ~200 KiB) holds a few hundred small
    datagrams; while the event loop is busy for a moment, thousands of replies to probes in
    flight can arrive at one shared socket, and each one dropped is a probe failed for
    nothing. Beyond net.core.rmem_max only root may go (SO_RCVBUFFORCE); otherwise the
    kernel caps the size at rmem_max.
    """
    for option in (_SO_RCVBUFFORCE, socket.SO_RCVBUF):
        try:
            sock.setsockopt(socket.SOL_SOCKET, option, size)
        except OSError:
            continue
        return


class Shared(Protocol):
    """Something probes share (a socket, a channel), closed when the agent stops."""

    async def close(self) -> None: ...


@dataclass
class HttpClients:
    """What probes keep between them: the aiohttp sessions (made lazily, closed once), the
    addresses of names and the TLS sessions of targets that resume them.

    A fresh connection per probe is the default because a pooled keep-alive connection can
    still answer while the listener behind it is dead; ``keep_alive = true`` opts into reuse.
    """

    user_agent: str = "watchdesk"
    _sessions: dict[bool, aiohttp.ClientSession] = field(default_factory=dict)
    _resolver: aiohttp.abc.AbstractResolver | None = None
    _addresses: dict[tuple[str, int], tuple[float, tuple[str, ...]]] = field(default_factory=dict)
    # What other kinds share between probes (e.g. one ICMP socket per family), closed with these.
    shared: dict[str, Shared] = field(default_factory=dict)
    # The TLS sessions of targets with tls_session_reuse, by (host, port, verify, CA file).
    tls_sessions: dict[tuple[str, int, bool, str | None], ssl.SSLSession] = field(
        default_factory=dict
    )

    async def addresses(self, host: str, port: int) -> tuple[str, ...]:
        """The addresses of ``host`` (cached for DNS_CACHE seconds), in the order aiohttp would
        try them.

        Raises socket.gaierror-like OSError when the name does not resolve."""
        loop = asyncio.get_running_loop()
        cached = self._addresses.get((host, port))
        if cached is not None and cached[0] > loop.time():
            return cached[1]
        if self._resolver is None:
            self._resolver = _resolver()
        found = await self._resolver.resolve(host, port, socket.AF_UNSPEC)
        if not found:
            raise socket.gaierror(socket.EAI_NONAME, f"no address for {host}")
        addresses = tuple(dict.fromkeys(str(info["host"]) for info in found))
        self._addresses[(host, port)] = (loop.time() + DNS_CACHE, addresses)
        return addresses

    async def address(self, host: str, port: int) -> str:
        """The first of ``addresses``."""
        return (await self.addresses(host, port))[0]

    def session(self, keep_alive: bool = False) -> aiohttp.ClientSession:
        existing = self._sessions.get(keep_alive)
        if existing is not None and not existing.closed:
            return existing
        import aiohttp

        connector = aiohttp.TCPConnector(
            force_close=not keep_alive,
            limit=0,
            ttl_dns_cache=30,
            resolver=_resolver(),
        )
        created = aiohttp.ClientSession(
            connector=connector,
            headers={"User-Agent": self.user_agent},
            auto_decompress=True,
            trust_env=False,
            # A probe is stateless: no cookie from one probe (or target) rides on the next.
            cookie_jar=aiohttp.DummyCookieJar(),
        )
        if not keep_alive:
            # aiohttp sends an idempotent request again when the server closes without an
            # answer; on a fresh connection that only doubles the request and hides the fault.
            # (On a pooled one it is how a connection closed while idle gets replaced.)
            created._retry_connection = False
        self._sessions[keep_alive] = created
        return created

    async def close(self) -> None:
        for created in self._sessions.values():
            await created.close()
        self._sessions.clear()
        for kept in self.shared.values():
            await kept.close()
        self.shared.clear()
        if self._resolver is not None:
            await self._resolver.close()
            self._resolver = None


def _resolver() -> aiohttp.abc.AbstractResolver:
    """aiodns when it is there: the default thread-pool resolver fakes DNS timeouts under load."""
    import aiohttp

    try:
        return aiohttp.AsyncResolver()
    except RuntimeError:
        return aiohttp.ThreadedResolver()


@dataclass
class ProbeContext:
    """What the scheduler hands to each probe besides its own settings."""

    timeout: float
    http: HttpClients


S = TypeVar("S", bound=ProbeSettings)


Probe = Callable[[S, ProbeContext], Awaitable[ProbeResult]]


@dataclass(frozen=True)
class ProbeKind(Generic[S]):
    """One registry line: the settings model config validation uses, and the module whose
    ``probe`` runs it. The module is imported at the kind's first probe, not with the
    registry: validating a config (``check-config``) needs the models only, and the probes
    bring aiohttp, dnspython and the TLS machinery."""

    settings: type[S]
    module: str

    @cached_property
    def probe(self) -> Probe[S]:
        return cast(Probe[S], importlib.import_module(self.module).probe)

    async def run(self, settings: ProbeSettings, context: ProbeContext) -> ProbeResult:
        if not isinstance(settings, self.settings):
            raise TypeError(f"{type(settings).__name__} is not {self.settings.__name__}")
        return await self.probe(settings, context)
