"""The config: its model (``model``), how a file becomes one (``loader``), and how problems are
reported against the file's keys and lines (``diagnostics``, ``tomlpos``)."""

from monitor.config.escalation import DEFAULT_ACK_TIMEOUTS
from monitor.config.loader import TOP_LEVEL_KEYS, load_config, parse_config
from monitor.config.model import (
    BusinessHoursSection,
    Config,
    MaintenanceWindow,
    TargetConfig,
)
from ticketing.base import PRIORITIES, Priority

__all__ = [
    "DEFAULT_ACK_TIMEOUTS",
    "PRIORITIES",
    "TOP_LEVEL_KEYS",
    "BusinessHoursSection",
    "Config",
    "MaintenanceWindow",
    "Priority",
    "TargetConfig",
    "load_config",
    "parse_config",
]
