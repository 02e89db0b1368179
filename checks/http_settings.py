"""What an http target asks for (``HttpSettings``), and how an answer is judged against it.

Both clients of the http probe (the lean one in ``checks.http_lean``, aiohttp in
``checks.http_aiohttp``) read the same settings and judge with the same two functions here, so
a status or keyword verdict cannot differ between them.
"""

from __future__ import annotations

import functools
import os
import ssl
from dataclasses import dataclass, field
from typing import Annotated

from pydantic import Field, ValidationInfo, field_validator, model_validator
from yarl import URL

from checks.base import ProbeSettings, client_ssl_context

MAX_BODY = 1024 * 1024  # the keyword checks look at the first MiB, never more
MAX_REDIRECTS = 5
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

Status = Annotated[int, Field(ge=100, le=599)]


@dataclass(slots=True)
class Plan:
    """An http target's settings as the probe uses them, worked out once per target.

    A probe reads it once (``HttpSettings.plan``, cached in the instance's dict): a dozen reads
    of pydantic private attributes, about 3 us each, were a tenth of a plain http probe.
    """

    url: URL
    expected: frozenset[int] | None  # None: any 2xx or 3xx
    expected_text: str  # "200 or 301"
    contains: bytes | None
    not_contains: bytes | None
    # The headers sent on top of what each client adds itself (aiohttp: Host, User-Agent,
    # Accept, Content-Length, Content-Type; the lean path: the same, by hand).
    headers: dict[str, str]
    lean_capable: bool  # the lean path can send this request (no compression asked for)
    # The first request of the lean path, built once per User-Agent: (user agent, bytes). A
    # cache, not a setting: a reload compares targets, and a probed one must equal its twin.
    request: tuple[str, bytes] | None = field(default=None, compare=False)

    @property
    def read_body(self) -> bool:
        return self.contains is not None or self.not_contains is not None


class HttpSettings(ProbeSettings):
    url: str = Field(description="http:// or https:// URL to request.")
    method: str = Field(default="GET", description=f"One of {', '.join(sorted(METHODS))}.")
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
    tls_session_reuse: bool = Field(
        default=False,
        description="Resume the TLS session of the previous probe (an abbreviated handshake, "
        "no certificate sent or verified again); default: a full handshake and verification "
        "on every probe.",
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        try:
            url = _url(value)
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
        if method not in METHODS:
            raise ValueError(f"must be one of {', '.join(sorted(METHODS))}")
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
        if value is not None and not os.path.isfile(value):
            raise ValueError(f"no such file: {value}")
        return value

    @field_validator("tls_session_reuse")
    @classmethod
    def _resumable(cls, value: bool, info: ValidationInfo) -> bool:
        url = info.data.get("url")  # absent when the URL itself was refused
        if value and url is not None and URL(url).scheme != "https":
            raise ValueError("needs an https:// URL")
        if value and info.data.get("keep_alive"):
            raise ValueError("with keep_alive: pick one (a kept connection needs no resumption)")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> HttpSettings:
        if self.method == "HEAD" and (self.contains or self.not_contains):
            raise ValueError("contains/not_contains need a body: use GET, not HEAD")
        given = {name.lower() for name in self.headers}
        if given & {"content-length", "transfer-encoding"}:
            raise ValueError("headers: Content-Length and Transfer-Encoding follow from body")
        url = _url(self.url)
        if (url.raw_user or url.raw_password) and "authorization" in given:
            raise ValueError("credentials in the URL and an Authorization header: pick one")
        try:
            client_ssl_context(self.verify_tls, self.ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(f"cannot load ca_file {self.ca_file}: {exc}") from exc
        return self

    @functools.cached_property
    def plan(self) -> Plan:
        """What the settings come to, worked out at the target's first probe (validating 50,000
        targets for check-config or a start needs none of it), then read once per probe from the
        instance's dict; pydantic leaves a cached property out of equality and hashing."""
        expected: frozenset[int] | None = None
        expected_text = ""
        if self.expect_status is not None:
            statuses = sorted(set(self.expect_status))
            expected = frozenset(statuses)
            words = [str(status) for status in statuses]
            expected_text = (
                words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"
            )
        given = {name.lower(): value for name, value in self.headers.items()}
        headers = dict(self.headers)
        if "accept-encoding" not in given:
            headers["Accept-Encoding"] = "identity"
        return Plan(
            url=_url(self.url),
            expected=expected,
            expected_text=expected_text,
            contains=self.contains.encode() if self.contains else None,
            not_contains=self.not_contains.encode() if self.not_contains else None,
            headers=headers,
            lean_capable=given.get("accept-encoding", "identity").strip().lower()
            in ("identity", ""),
        )

    def lean(self) -> bool:
        """Whether ``probe`` takes the lean path (checks.http_lean) for this target by default."""
        return self.plan.lean_capable and not self.keep_alive

    def where(self) -> str:
        return self.url


@functools.lru_cache(maxsize=16)
def _url(text: str) -> URL:
    """The URL of a target's ``url``, parsed once for its validators and its plan (three parses
    of each of 45,000 URLs were a tenth of a 50,000-target config's validation); URLs are
    immutable, so sharing one is safe."""
    return URL(text)


def status_problem(plan: Plan, status: int) -> str | None:
    expected = plan.expected
    if expected is None:
        return None if 200 <= status < 400 else f"status {status}"
    return None if status in expected else f"status {status}, expected {plan.expected_text}"


def keyword_problem(plan: Plan, body: bytes, truncated: bool) -> str | None:
    where = f" in the first {MAX_BODY // (1024 * 1024)} MiB" if truncated else ""
    if plan.contains is not None and plan.contains not in body:
        return f"keyword {plan.contains.decode()!r} missing{where}"
    if plan.not_contains is not None and plan.not_contains in body:
        return f"keyword {plan.not_contains.decode()!r} found"
    return None
