"""Read secrets from where config.toml points: an environment variable or a file.

The value is returned to the one caller that needs it and is never part of a message: errors
name the variable or the file, not what is in it.
"""

from __future__ import annotations

import os
from pathlib import Path

from monitor.config.model import Config
from monitor.errors import SecretError


def read_secret(source: tuple[str, str]) -> str:
    kind, where = source
    if kind == "env":
        value = os.environ.get(where)
        if not value:
            raise SecretError(f"environment variable {where} is not set or is empty")
        return value.strip()
    try:
        value = Path(where).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise SecretError(f"cannot read secret file {where}: {exc.strerror}") from None
    if not value:
        raise SecretError(f"secret file {where} is empty")
    return value


def read_api_token(config: Config) -> str | None:
    """The bearer token /api/* asks for, if ``agent.api_token_env``/``_file`` sets one."""
    agent = config.agent
    if agent.api_token_env:
        return read_secret(("env", agent.api_token_env))
    if agent.api_token_file:
        return read_secret(("file", agent.api_token_file))
    return None


def read_database_url(config: Config) -> str | None:
    """The PostgreSQL URL of ``[cluster]`` (None without one). It holds a password: hand it to
    the driver and nothing else."""
    cluster = config.cluster
    if cluster is None:
        return None
    if cluster.database_url_env:
        return read_secret(("env", cluster.database_url_env))
    return read_secret(("file", cluster.database_url_file or ""))
