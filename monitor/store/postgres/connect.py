"""Connections to the cluster's database, and the one rule about its URL: it is a secret.

The URL (read by ``monitor.config.secrets.read_database_url``) goes to the driver and nowhere
else. What messages show is ``describe``'s "database NAME on HOST"; an error of the driver
passes through ``redact`` first, and an unparsable URL is refused without quoting it (libpq's
parse errors echo the string they choke on).

Every connection is made with ``prepare_threshold=None``: behind pgbouncer in transaction mode
a server-side prepared statement may live on another server connection than the next query.

A call on a link that went silent (a dead switch, a blackholed route: no reset ever comes)
waits for an answer forever, and cancelling the waiting task does not help: psycopg then asks
the server to cancel the query over the same lost link, 5 s, and waits 5 s more for the query
to end. ``sever`` shuts the connection's socket down instead, so the call fails at once, as
after a reset; ``within`` bounds a call that way.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Awaitable
from typing import Any, TypeVar

import psycopg
from psycopg.conninfo import conninfo_to_dict

from monitor.errors import StoreError

CONNECT_TIMEOUT = 10
# A link whose packets vanish (a partition, a dead host) fails its connection within about
# 10 s instead of the kernel's 15 minutes of retransmissions: TCP keepalives on an idle
# connection, a user timeout on data sent and not acknowledged (libpq parameters).
SILENT_LINK = {
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
    "tcp_user_timeout": 10_000,
}
T = TypeVar("T")


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
        **SILENT_LINK,
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


def sever(conn: psycopg.AsyncConnection[Any]) -> None:
    """Shut ``conn``'s socket down both ways (never blocks): what waits on it fails now with an
    ``OperationalError`` and the connection is broken (a pool throws it away)."""
    if conn.closed:
        return
    try:
        fd = conn.pgconn.socket
    except psycopg.Error:
        return
    with contextlib.suppress(OSError), socket.socket(fileno=os.dup(fd)) as sock:
        sock.shutdown(socket.SHUT_RDWR)


async def within(conn: psycopg.AsyncConnection[Any], work: Awaitable[T], limit: float) -> T:
    """``work`` (a call on ``conn``) within ``limit`` seconds: past that, or when the caller is
    cancelled, the connection is severed and the call ends at once (TimeoutError, or the
    cancellation)."""
    task = asyncio.ensure_future(work)
    try:
        done, _ = await asyncio.wait({task}, timeout=limit)
    except asyncio.CancelledError:
        sever(conn)
        await asyncio.gather(task, return_exceptions=True)
        raise
    if not done:
        sever(conn)
        await asyncio.gather(task, return_exceptions=True)
        raise TimeoutError
    return task.result()
