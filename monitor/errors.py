"""The one exception tree of watchdesk.

Third-party errors are translated at the boundary (``raise ... from exc``) so that callers only
ever handle these. A failing probe is never an exception: it is a ``ProbeResult`` with ok=False.
"""

from __future__ import annotations

from dataclasses import dataclass


class WatchdeskError(Exception):
    """Base of every error watchdesk raises on purpose."""


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


class ConfigError(WatchdeskError):
    """A config file that cannot be used; carries every problem found, not just the first."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class SecretError(WatchdeskError):
    """A secret named by ``*_env`` / ``*_file`` could not be read (its value is never shown)."""


class StoreError(WatchdeskError):
    """The SQLite store could not be opened or written."""
