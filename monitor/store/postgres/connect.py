"""Connections to the cluster's database, and the one rule about its URL: it is a secret.

The URL (read by ``monitor.config.secrets.read_database_url``) goes to the driver and nowhere
else. What messages show is ``describe``'s "database NAME on HOST"; an error of the driver
passes through ``redact`` first, and an unparsable URL is refused without quoting it (libpq's
parse errors echo the string they choke on).

Every connection is made with ``prepare_threshold=None``: behind pgbouncer in transaction mode
a server-side prepared statement may live on another server connection than the next query.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

from monitor.errors import StoreError

CONNECT_TIMEOUT = 10


def checked(url: str) -> dict[str, Any]:
    """The URL's parts; StoreError, without the URL, when it is not one libpq reads."""
    try:
        return conninfo_to_dict(url)
    except psycopg.Error:
        raise StoreError(
            "the database URL of [cluster] is not a PostgreSQL URL or connection string "
            "(like postgresql://USER:PASSWORD@HOST:5432/DBNAME)"
        ) from None


def describe(url: str) -> str:
    """Where the data lives, for messages: the database and host, never user or password."""
    parts = checked(url)
    host = str(parts.get("host") or "localhost")
    port = parts.get("port")
    return f"PostgreSQL database {parts.get('dbname') or '(default)'} on {host}" + (
        f":{port}" if port and not host.startswith("/") else ""
    )


def redact(text: str, url: str) -> str:
    """``text`` with the URL and its password cut out."""
    password = str(checked(url).get("password") or "")
    text = text.replace(url, "<database url>")
    return text.replace(password, "***") if password else text


def options(application: str) -> dict[str, Any]:
    """Keyword arguments of every connection (sync or async, single or pooled)."""
    return {
        "prepare_threshold": None,
        "autocommit": True,
        "connect_timeout": CONNECT_TIMEOUT,
        "application_name": application,
    }


def connect(url: str, application: str = "watchdesk") -> psycopg.Connection[Any]:
    """A synchronous connection, for the commands (db migrate, db import, tickets, report)."""
    checked(url)
    try:
        return psycopg.connect(url, **options(application))
    except psycopg.Error as exc:
        raise StoreError(
            f"cannot connect to the {describe(url)}: {redact(str(exc).strip(), url)}"
        ) from None
