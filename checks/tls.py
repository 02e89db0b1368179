"""TLS: the handshake succeeds and the server's certificate is not about to expire."""

from __future__ import annotations

import asyncio
import calendar
import ssl
import time
from pathlib import Path

from pydantic import Field, field_validator, model_validator

from checks.base import (
    ProbeContext,
    ProbeSettings,
    client_ssl_context,
    os_error_reason,
    timeout_reason,
    tls_error_reason,
)
from checks.result import ProbeResult

DAY = 86400.0
# OpenSSL's X509_V_ERR_CERT_HAS_EXPIRED: worth a second, unverified look to say since when.
_CERT_HAS_EXPIRED = 10


class TlsSettings(ProbeSettings):
    host: str = Field(min_length=1, description="Host name or IP address to connect to.")
    port: int = Field(default=443, ge=1, le=65535, description="TLS port.")
    min_days_left: int = Field(
        default=14, ge=0, description="Fewer days before the certificate expires: the check fails."
    )
    server_name: str | None = Field(
        default=None,
        min_length=1,
        description="Name sent as SNI and verified against the certificate (default: host).",
    )
    verify_tls: bool = Field(
        default=True,
        description="Verify the chain and the name; false still reads and checks the expiry.",
    )
    ca_file: str | None = Field(
        default=None, description="PEM file of the CA(s) to trust instead of the system's."
    )

    @field_validator("ca_file")
    @classmethod
    def _ca_file_readable(cls, value: str | None) -> str | None:
        return _check_ca_file(value)

    @model_validator(mode="after")
    def _ca_file_loads(self) -> TlsSettings:
        _load_ssl_context(self.verify_tls, self.ca_file)
        return self

    def where(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


async def probe(settings: TlsSettings, context: ProbeContext) -> ProbeResult:
    start = time.perf_counter()
    try:
        async with asyncio.timeout(context.timeout):
            der = await fetch_certificate(settings, verify=settings.verify_tls)
    except ssl.SSLCertVerificationError as exc:
        return await _verify_failed(settings, exc, start, context.timeout)
    except TimeoutError:
        return ProbeResult.failure(time.perf_counter() - start, timeout_reason(context.timeout))
    except ssl.SSLError as exc:
        return ProbeResult.failure(time.perf_counter() - start, tls_error_reason(exc))
    except OSError as exc:
        reason = os_error_reason(exc, settings.host)
        return ProbeResult.failure(time.perf_counter() - start, reason)
    duration = time.perf_counter() - start
    if der is None:
        return ProbeResult.failure(duration, "TLS: the server sent no certificate")
    try:
        expiry = certificate_not_after(der)
    except ValueError as exc:
        return ProbeResult.failure(duration, f"TLS: cannot read the certificate: {exc}")
    return expiry_verdict(expiry, settings.min_days_left, duration, time.time())


async def fetch_certificate(settings: TlsSettings, *, verify: bool) -> bytes | None:
    """Handshake and return the leaf certificate (DER); the caller bounds the time."""
    context = client_ssl_context(verify, settings.ca_file)
    _, writer = await asyncio.open_connection(
        settings.host,
        settings.port,
        ssl=context,
        server_hostname=settings.server_name or settings.host,
    )
    try:
        ssl_object = writer.get_extra_info("ssl_object")
        if not isinstance(ssl_object, ssl.SSLObject):
            return None
        return ssl_object.getpeercert(binary_form=True)
    finally:
        writer.close()


async def _verify_failed(
    settings: TlsSettings, exc: ssl.SSLCertVerificationError, start: float, budget: float
) -> ProbeResult:
    """The chain did not verify; a second, unverified handshake still tells when it expires."""
    expiry: float | None = None
    remaining = budget - (time.perf_counter() - start)
    if remaining > 0:
        try:
            async with asyncio.timeout(remaining):
                der = await fetch_certificate(settings, verify=False)
            if der is not None:
                expiry = certificate_not_after(der)
        except (TimeoutError, OSError, ValueError):
            pass  # the verify failure is the one to report
    duration = time.perf_counter() - start
    now = time.time()
    if exc.verify_code == _CERT_HAS_EXPIRED and expiry is not None and expiry <= now:
        return expiry_verdict(expiry, 0, duration, now)
    return ProbeResult.failure(duration, tls_error_reason(exc), tls_expiry=expiry)


def expiry_verdict(expiry: float, min_days_left: int, duration: float, now: float) -> ProbeResult:
    """ok while at least ``min_days_left`` whole days remain before ``expiry`` (epoch seconds)."""
    day = time.strftime("%Y-%m-%d", time.gmtime(expiry))
    left = expiry - now
    if left <= 0:
        ago = int(-left // DAY)
        when = "today" if ago == 0 else f"{ago} day{'s' if ago != 1 else ''} ago"
        return ProbeResult.failure(duration, f"certificate expired {when} ({day})", expiry)
    days = int(left // DAY)
    text = f"{days} day{'s' if days != 1 else ''} ({day})"
    if days < min_days_left:
        return ProbeResult.failure(duration, f"certificate expires in {text}", expiry)
    return ProbeResult.success(duration, f"certificate valid for {text}", expiry)


def _check_ca_file(value: str | None) -> str | None:
    if value is not None and not Path(value).is_file():
        raise ValueError(f"no such file: {value}")
    return value


def _load_ssl_context(verify: bool, ca_file: str | None) -> None:
    """Load the CA at config time, so a bad PEM file is a config error and not a failing probe."""
    try:
        client_ssl_context(verify, ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"cannot load ca_file {ca_file}: {exc}") from exc


# --- a minimal DER reader: Certificate -> tbsCertificate -> validity -> notAfter -------------
# With verification off, getpeercert() returns {}, and `cryptography` is not a dependency.


def _read_tlv(data: bytes, offset: int) -> tuple[int, int, int]:
    """(tag, start of the value, end of the value) of the element at ``offset``."""
    if offset + 2 > len(data):
        raise ValueError("truncated DER")
    tag = data[offset]
    if tag & 0x1F == 0x1F:
        raise ValueError("multi-byte DER tags are not expected in a certificate")
    length = data[offset + 1]
    start = offset + 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4 or start + count > len(data):
            raise ValueError("bad DER length")
        length = int.from_bytes(data[start : start + count], "big")
        start += count
    end = start + length
    if end > len(data):
        raise ValueError("truncated DER")
    return tag, start, end


def _children(data: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    items = []
    offset = start
    while offset < end:
        item = _read_tlv(data, offset)
        items.append(item)
        offset = item[2]
    return items


_SEQUENCE = 0x30
_UTC_TIME = 0x17
_GENERALIZED_TIME = 0x18


def certificate_not_after(der: bytes) -> float:
    """notAfter of a DER X.509 certificate, in epoch seconds; ValueError if it is not one."""
    tag, start, end = _read_tlv(der, 0)
    if tag != _SEQUENCE:
        raise ValueError("not a certificate")
    tag, start, end = _read_tlv(der, start)
    if tag != _SEQUENCE:
        raise ValueError("no tbsCertificate")
    fields = _children(der, start, end)
    if fields and fields[0][0] == 0xA0:  # [0] EXPLICIT version
        fields = fields[1:]
    # serialNumber, signature, issuer, validity, ...
    if len(fields) < 4 or fields[3][0] != _SEQUENCE:
        raise ValueError("no validity")
    times = _children(der, fields[3][1], fields[3][2])
    if len(times) != 2:
        raise ValueError("bad validity")
    tag, start, end = times[1]
    return _parse_time(tag, der[start:end].decode("ascii", errors="replace"))


def _parse_time(tag: int, text: str) -> float:
    if not text.endswith("Z"):
        raise ValueError(f"unsupported time {text!r}")
    digits = text[:-1]
    if tag == _UTC_TIME and len(digits) == 12 and digits.isdigit():
        year = int(digits[:2])
        year += 1900 if year >= 50 else 2000  # RFC 5280 4.1.2.5.1
        rest = digits[2:]
    elif tag == _GENERALIZED_TIME and len(digits) == 14 and digits.isdigit():
        year = int(digits[:4])
        rest = digits[4:]
    else:
        raise ValueError(f"unsupported time {text!r}")
    month, day, hour, minute, second = (int(rest[i : i + 2]) for i in range(0, 10, 2))
    if not (1 <= month <= 12 and 1 <= day <= 31 and hour < 24 and minute < 60 and second < 61):
        raise ValueError(f"bad time {text!r}")
    return float(calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0)))
