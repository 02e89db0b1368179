"""``[cluster]``: several agents on one PostgreSQL database (see SCALEOUT.md).

Without the section the agent keeps its SQLite file under ``agent.state_dir``. With it, the
store is the PostgreSQL database whose URL the agent reads from an environment variable or a
file: the URL carries a password, so like every secret it never sits in config.toml, and it
never appears in a log line, an error or the API.

The lease timings are checked against each other here because a wrong pair fails only under
load or on failover, long after the config was accepted: an agent must renew its leases at
least three times within their lifetime, or one slow renew loses them.
"""

from __future__ import annotations

from typing import Any

from monitor.config.diagnostics import Collector
from monitor.config.model import ClusterSection
from monitor.durations import format_duration


def parse_cluster(raw: Any, request_timeout: float | None, problems: Collector) -> Any:
    """The validated ``[cluster]`` section, or None (absent, or with problems reported)."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        problems.add(("cluster",), "must be a table: [cluster]")
        return None
    section: ClusterSection | None = problems.validate(("cluster",), ClusterSection, raw)
    if section is None:
        return None
    found = len(problems.problems)
    if section.database_url_env and section.database_url_file:
        problems.add(
            ("cluster", "database_url_file"),
            "set database_url_env or database_url_file, not both",
        )
    elif not section.database_url_env and not section.database_url_file:
        problems.add(
            ("cluster", "database_url_env"),
            "required key is missing: name the environment variable that holds the PostgreSQL "
            'URL (database_url_env = "WATCHDESK_DATABASE_URL"), or a file that holds it '
            "(database_url_file)",
        )
    if section.lease_renew * 3 > section.lease_ttl:
        problems.add(
            ("cluster", "lease_renew"),
            f"{format_duration(section.lease_renew)} is more than a third of lease_ttl "
            f"{format_duration(section.lease_ttl)}; an agent must renew at least three times "
            "per lease: shorten lease_renew or lengthen lease_ttl",
        )
    if request_timeout is not None and section.claim_ttl < 2 * request_timeout:
        problems.add(
            ("cluster", "claim_ttl"),
            f"{format_duration(section.claim_ttl)} is shorter than twice "
            f"ticketing.request_timeout ({format_duration(request_timeout)}); a claim must "
            "outlast the slowest attempt twice, or a second agent sends it again",
        )
    return section if len(problems.problems) == found else None
