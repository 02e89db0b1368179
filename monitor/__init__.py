"""watchdesk: probes servers and sites and runs the support policy when one goes down."""

from __future__ import annotations

from functools import cache


@cache
def _version() -> str:
    # importlib.metadata costs ~30 ms to import: paid by the commands that print the version
    # (``--version``, the agent's User-Agent), not by ``check-config``.
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("watchdesk")
    except PackageNotFoundError:
        return "0.0.0+unknown"


def __getattr__(name: str) -> str:
    """``monitor.__version__``, read from the package metadata on first use."""
    if name == "__version__":
        return _version()
    raise AttributeError(f"module 'monitor' has no attribute {name!r}")
