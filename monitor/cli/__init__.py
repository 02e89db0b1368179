"""The ``watchdesk`` commands (``main``), the uptime report and test-notify."""

from monitor.cli.main import main

__all__ = ["main"]
