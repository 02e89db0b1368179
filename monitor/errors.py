"""The one exception tree of watchdesk, seen from the agent.

Its root and the retry taxonomy (``WatchdeskError``; ``Retryable``: try again later;
``Permanent``: a person must change something) live in ``ticketing.errors`` with the delivery
errors; here are the agent's own: a config or a secret that cannot be used (permanent), a store
that cannot be written (retryable).

Third-party errors are translated at the boundary (``raise ... from exc``) so that callers
only ever handle these. A failing probe is never an exception: it is a ``ProbeResult`` with
ok=False.
"""

from __future__ import annotations

from dataclasses import dataclass

from ticketing.errors import Permanent, Retryable, WatchdeskError

__all__ = [
    "ConfigError",
    "ConfigProblem",
    "Permanent",
    "Retryable",
    "SecretError",
    "StoreError",
    "WatchdeskError",
]


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong with a config file, pinned to a dotted key path."""

    path: str
    message: str
    file: str | None = None
    line: int | None = None

    def __str__(self) -> str:
        where = ""
        if self.file and self.line:
            where = f" ({self.file}, line {self.line})"
        elif self.file:
            where = f" ({self.file})"
        return f"{self.path or '<root>'}: {self.message}{where}"


class ConfigError(Permanent):
    """A config file that cannot be used; carries every problem found, not just the first."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class SecretError(Permanent):
    """A secret named by ``*_env`` / ``*_file`` could not be read (its value is never shown)."""


class StoreError(Retryable):
    """The SQLite store could not be opened or written."""
