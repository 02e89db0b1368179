"""TCP: the port accepts a connection; optionally send a line and expect a string back."""

from __future__ import annotations

import asyncio
import time

from pydantic import Field, PrivateAttr

from checks.base import (
    ProbeContext,
    ProbeSettings,
    format_duration,
    os_error_reason,
    timeout_reason,
)
from checks.result import ProbeResult

READ_LIMIT = 64 * 1024


class TcpSettings(ProbeSettings):
    host: str = Field(min_length=1, description="Host name or IP address to connect to.")
    port: int = Field(ge=1, le=65535, description="TCP port.")
    send: str | None = Field(
        default=None,
        min_length=1,
        description='Text sent once connected (UTF-8; TOML escapes like "\\r\\n" work).',
    )
    expect: str | None = Field(
        default=None,
        min_length=1,
        description="Text that must arrive within the timeout (the first 64 KiB are searched).",
    )
    source_ip_address: str | None = Field(
        default=None,
        min_length=1,
        description="Local address to connect from (as blackbox_exporter's source_ip_address): "
        "the vantage a multi-homed agent probes from.",
    )

    _send: bytes = PrivateAttr(default=b"")
    _expect: bytes = PrivateAttr(default=b"")

    def model_post_init(self, context: object, /) -> None:
        self._send = (self.send or "").encode()
        self._expect = (self.expect or "").encode()

    def where(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


async def probe(settings: TcpSettings, context: ProbeContext) -> ProbeResult:
    start = time.perf_counter()
    writer: asyncio.StreamWriter | None = None
    received = b""
    phase = "connect"
    try:
        async with asyncio.timeout(context.timeout):
            local = (settings.source_ip_address, 0) if settings.source_ip_address else None
            reader, writer = await asyncio.open_connection(
                settings.host, settings.port, local_addr=local
            )
            if settings._send:
                phase = "send"
                writer.write(settings._send)
                await writer.drain()
            if settings._expect:
                phase = "expect"
                while settings._expect not in received and len(received) < READ_LIMIT:
                    chunk = await reader.read(READ_LIMIT - len(received))
                    if not chunk:
                        break
                    received += chunk
    except TimeoutError:
        duration = time.perf_counter() - start
        if phase == "expect":
            return ProbeResult.failure(duration, _not_received(settings, received, context))
        return ProbeResult.failure(duration, timeout_reason(context.timeout))
    except OSError as exc:
        return ProbeResult.failure(time.perf_counter() - start, os_error_reason(exc, settings.host))
    finally:
        if writer is not None:
            writer.close()
    duration = time.perf_counter() - start
    if settings._expect and settings._expect not in received:
        return ProbeResult.failure(duration, _not_received(settings, received, None))
    if settings.expect:
        return ProbeResult.success(duration, f"received {settings.expect!r}")
    return ProbeResult.success(duration, "connected")


def _not_received(settings: TcpSettings, received: bytes, context: ProbeContext | None) -> str:
    reason = f"expected {settings.expect!r} not received"
    if context is not None:
        reason += f" within {format_duration(context.timeout)}"
    elif len(received) >= READ_LIMIT:
        reason += " in the first 64 KiB"
    else:
        reason += " before the connection closed"
    if received:
        snippet = received[:40].decode(errors="replace")
        reason += f"; got {snippet!r}" + ("..." if len(received) > 40 else "")
    return reason
