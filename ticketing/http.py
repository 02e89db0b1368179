"""One JSON-over-HTTP call with the error mapping every integration shares.

Status codes and transport failures become ``ticketing.errors`` so that the outbox can tell
"try later" from "will never work" from "sent, answer lost". The service's own error text is
kept (it says which field was wrong); our credentials never enter a message.
"""

from __future__ import annotations

import base64
import email.utils
import json
import time
from collections.abc import Callable, Collection, Mapping
from typing import TYPE_CHECKING, Any

from ticketing.errors import OutcomeUnknown, PermanentError, RetryableError

if TYPE_CHECKING:
    # Imported where a call is made: the config (which reads the integrations' settings
    # models) is validated without aiohttp (``watchdesk check-config``).
    import aiohttp

DEFAULT_TIMEOUT = 15.0
MAX_ERROR_TEXT = 300
RETRYABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
# Answers after which a POST (not idempotent) may still have been carried out: the server or a
# gateway failed while or after handling it. 429 and 503 mean "not now" before any work.
MAYBE_DONE_STATUSES = frozenset({408, 500, 502, 504})

# Looks at a refused answer (status, headers, body) and returns the seconds a rate-limited
# service asks us to wait, or None when the refusal is not a rate limit. For services whose
# rate limits do not all come as 429 + Retry-After (GitHub: 403 with x-ratelimit-* headers).
RateLimitCheck = Callable[[int, Mapping[str, str], bytes], float | None]


def basic_auth(user: str, password: str) -> dict[str, str]:
    """The ``Authorization`` header of HTTP basic auth (aiohttp's ``BasicAuth`` is deprecated)."""
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return {"Authorization": f"Basic {token}"}


def truncate(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, an ellipsis marking the cut."""
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - (now if now is not None else time.time()))


def service_message(body: bytes, content_type: str) -> str:
    """The most useful short text from an error body (JSON fields, or the text itself)."""
    text = body.decode("utf-8", "replace").strip()
    if "json" in content_type:
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
        if parsed is not None:
            text = json.dumps(parsed, separators=(",", ":"), ensure_ascii=False)
    if len(text) > MAX_ERROR_TEXT:
        text = text[:MAX_ERROR_TEXT] + "..."
    return text


class JsonHttp:
    """A small aiohttp wrapper for one service: base URL, headers (auth among them), timeout."""

    def __init__(
        self,
        service: str,
        base_url: str,
        *,
        headers: dict[str, str] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        rate_limit: RateLimitCheck | None = None,
        replay_dropped: bool = True,
    ) -> None:
        self.service = service
        self.base_url = base_url.rstrip("/")
        self._headers = {"Accept": "application/json", **(headers or {})}
        import aiohttp

        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._rate_limit = rate_limit
        # aiohttp sends a PUT (any idempotent method) a second time, silently, when the server
        # closes the connection before answering. Right for a status; wrong for a PUT that adds
        # a comment (Zendesk's notes): the first one may have been recorded.
        self._replay_dropped = replay_dropped
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        import aiohttp

        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                headers=self._headers, timeout=self._timeout, trust_env=False
            )
            if not self._replay_dropped:
                # No public switch (aio-libs/aiohttp#10790); tests/test_notes_once.py fails if
                # this attribute stops doing it.
                self._session._retry_connection = False
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        data: bytes | None = None,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        accept: Collection[int] = (),
    ) -> tuple[int, Any]:
        """Send one request; return (status, parsed JSON or None) for 2xx and for the statuses
        in ``accept`` (e.g. 404 when "none" is an answer), raise otherwise."""
        import aiohttp

        url = path if path.startswith(("http://", "https://")) else f"{self.base_url}{path}"
        try:
            async with self._client().request(
                method, url, json=json_body, data=data, params=params, headers=headers
            ) as response:
                body = await response.read()
                status = response.status
                response_headers = response.headers
                content_type = response_headers.get("Content-Type", "")
                retry_after = parse_retry_after(response_headers.get("Retry-After"))
        except aiohttp.ClientConnectorError as exc:
            raise RetryableError(
                f"{self.service}: cannot connect: {exc.os_error.strerror or exc}"
            ) from None
        except aiohttp.ConnectionTimeoutError:
            raise RetryableError(f"{self.service}: cannot connect: timeout") from None
        except TimeoutError:
            raise OutcomeUnknown(
                f"{self.service}: no answer within {self._timeout.total:g}s"
            ) from None
        except (
            aiohttp.ServerDisconnectedError,
            aiohttp.ClientPayloadError,
            aiohttp.ClientOSError,
        ) as exc:
            raise OutcomeUnknown(f"{self.service}: connection lost: {type(exc).__name__}") from None
        except aiohttp.ClientResponseError as exc:
            raise OutcomeUnknown(f"{self.service}: bad response: {exc.message}") from None
        if 200 <= status < 300 or status in accept:
            if not body:
                return status, None
            try:
                return status, json.loads(body)
            except ValueError:
                return status, None
        message = f"{self.service}: HTTP {status}: {service_message(body, content_type)}"
        if self._rate_limit is not None:
            wait = self._rate_limit(status, response_headers, body)
            if wait is not None:
                raise RetryableError(message, retry_after=wait)
        if method.upper() == "POST" and status in MAYBE_DONE_STATUSES:
            raise OutcomeUnknown(message, retry_after=retry_after)
        if status in RETRYABLE_STATUSES:
            raise RetryableError(message, retry_after=retry_after)
        raise PermanentError(message)
