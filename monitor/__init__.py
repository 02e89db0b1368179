"""watchdesk: probes servers and sites and runs the support policy when one goes down."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("watchdesk")
except PackageNotFoundError:
    __version__ = "0.0.0+unknown"
