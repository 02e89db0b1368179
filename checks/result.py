"""What a probe says: ok or not, how long it took, and why, in words a person can act on."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ProbeResult:
    ok: bool
    duration_seconds: float
    reason: str = ""
    # Earliest certificate expiry seen (epoch seconds), for probes that speak TLS.
    tls_expiry: float | None = None

    @classmethod
    def success(
        cls, duration: float, reason: str = "ok", tls_expiry: float | None = None
    ) -> ProbeResult:
        return cls(True, duration, reason, tls_expiry)

    @classmethod
    def failure(cls, duration: float, reason: str, tls_expiry: float | None = None) -> ProbeResult:
        return cls(False, duration, reason, tls_expiry)
