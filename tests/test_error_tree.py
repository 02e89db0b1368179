"""One error tree with the retry taxonomy at its root, and one way to print a duration."""

from __future__ import annotations

import pytest

from checks.base import timeout_reason
from monitor.durations import format_duration, parse_duration
from monitor.errors import ConfigError, SecretError, StoreError
from ticketing.errors import (
    OutcomeUnknown,
    Permanent,
    PermanentError,
    Retryable,
    RetryableError,
    WatchdeskError,
)


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (RetryableError("503"), Retryable),
        (OutcomeUnknown("no answer"), Retryable),
        (StoreError("disk full"), Retryable),
        (PermanentError("401"), Permanent),
        (ConfigError([]), Permanent),
        (SecretError("unset"), Permanent),
    ],
)
def test_every_error_says_whether_to_try_again(error: WatchdeskError, kind: type) -> None:
    assert isinstance(error, WatchdeskError)
    assert isinstance(error, kind)
    assert isinstance(error, Retryable) != isinstance(error, Permanent)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.15, "150ms"), (1.5, "1.5s"), (5, "5s"), (90, "1m30s"), (5400, "1h30m"), (86400, "1d")],
)
def test_one_way_to_print_a_duration_and_it_reads_back(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text) == pytest.approx(seconds)


def test_a_probe_timeout_reads_as_the_config_wrote_it() -> None:
    assert timeout_reason(90) == "timeout after 1m30s"
    assert timeout_reason(0.25) == "timeout after 250ms"
