"""The one error tree of watchdesk, the retry taxonomy at its root (``Retryable`` /
``Permanent``), and how a delivery to a helpdesk or pager can fail, which decides what the
outbox does next. It lives here, the lowest package that raises errors of its own, so that
``monitor.errors`` can build on it without ``ticketing`` ever importing ``monitor``.

- ``RetryableError``: try again later (5xx, 429, 503, cannot connect); ``retry_after`` carries
  the service's own ``Retry-After`` when it sent one.
- ``OutcomeUnknown``: the request went out but no answer came back (timeout, dropped
  connection). For a create, the outbox first asks the backend for a ticket carrying the
  incident's dedup key before it sends another.
- ``PermanentError``: the service refused and will refuse again (bad credentials, validation):
  logged once with the service's own message, not retried.

Messages carry the service's words, never our credentials.
"""

from __future__ import annotations


class WatchdeskError(Exception):
    """The root of every error watchdesk raises on purpose (``monitor.errors`` builds on it).
    ``message`` is for people and never holds a secret; ``retry_after`` is the wait a service
    asked for, if any."""

    def __init__(self, message: str = "", retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


class Retryable(WatchdeskError):
    """Try again later: the cause may pass by itself (a service down, a busy database)."""


class Permanent(WatchdeskError):
    """Will fail again until a person changes something (credentials, the config)."""


class DeliveryError(WatchdeskError):
    """A call to a helpdesk or a pager did not succeed."""


class RetryableError(DeliveryError, Retryable):
    pass


class OutcomeUnknown(RetryableError):
    pass


class PermanentError(DeliveryError, Permanent):
    pass


def without_secret(error: DeliveryError, secret: str) -> DeliveryError:
    """The same error with ``secret`` blanked out, should a service ever echo it back."""
    if not secret or secret not in error.message:
        return error
    return type(error)(error.message.replace(secret, "***"), retry_after=error.retry_after)
