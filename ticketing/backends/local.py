"""The built-in helpdesk: tickets kept in the agent's own SQLite file, in tables of their own.

Statuses open / pending / resolved / closed. Like every helpdesk that can report a customer's
reply, a ticket left pending is closed by watchdesk after ``auto_close_after`` (a closing note,
then status closed), and reopened by a customer's reply (``customer_reply``: what the customer
does, for tools and tests; ``change_priority``: a person changing the priority). ``watchdesk
tickets`` and /api/incidents show them. The dedup key is unique in the table, so a repeated
create finds the first ticket.

The agent calls it from its event loop: every statement (the connection too, opened at the
first one) runs in a worker thread (``asyncio.to_thread``). The synchronous ``assign``,
``change_status``, ``change_priority``, ``customer_reply``, ``tickets`` and ``notes`` are for
tools and tests, or for a worker thread.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import ClassVar

from pydantic import Field

from ticketing.base import (
    PRIORITIES,
    NewStatus,
    Priority,
    TicketDraft,
    TicketInfo,
    TicketRef,
    TicketStatus,
    same_text,
)
from ticketing.errors import PermanentError, RetryableError
from ticketing.settings import IntegrationSettings

_SCHEMA = """
CREATE TABLE IF NOT EXISTS local_tickets (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    dedup_key TEXT NOT NULL UNIQUE,
    subject TEXT NOT NULL,
    description TEXT NOT NULL,
    priority TEXT NOT NULL,
    requester TEXT,
    target TEXT NOT NULL,
    customer TEXT,
    tags TEXT NOT NULL,
    status TEXT NOT NULL,
    assignee TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS local_ticket_notes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ticket_id INTEGER NOT NULL REFERENCES local_tickets(id),
    body TEXT NOT NULL,
    public INTEGER NOT NULL,
    created_at REAL NOT NULL,
    from_customer INTEGER NOT NULL DEFAULT 0
);
"""


class LocalSettings(IntegrationSettings):
    DURATIONS: ClassVar[tuple[str, ...]] = ("auto_close_after",)

    # Seconds ("7d" in config.toml). The key's first home, kept working: ``[ticketing]
    # auto_close_after`` now says it for every backend (``Config.auto_close_after``).
    auto_close_after: float | None = Field(default=None, gt=0)


class LocalBackend:
    name = "local"
    reports_replies = True

    def __init__(self, db_path: str | Path) -> None:
        self._path = str(db_path)
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def _connection(self) -> sqlite3.Connection:
        """The connection, opened at the first statement (in the thread that runs it)."""
        if self._db is None:
            # Its own file beside the agent's store; in a cluster nothing else makes the dir.
            Path(self._path).parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA busy_timeout=5000")
            db.executescript(_SCHEMA)
            columns = {row[1] for row in db.execute("PRAGMA table_info(local_ticket_notes)")}
            if "from_customer" not in columns:  # a file from before customer replies
                db.execute(
                    "ALTER TABLE local_ticket_notes"
                    " ADD COLUMN from_customer INTEGER NOT NULL DEFAULT 0"
                )
            self._db = db
        return self._db

    def _run(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        with self._lock:
            try:
                return self._connection().execute(sql, params).fetchall()
            except sqlite3.IntegrityError as exc:
                raise PermanentError(f"local: {exc}") from None
            except sqlite3.Error as exc:
                raise RetryableError(f"local: {exc}") from None

    async def create(self, draft: TicketDraft) -> TicketRef:
        now = time.time()
        await asyncio.to_thread(
            self._run,
            "INSERT INTO local_tickets (dedup_key, subject, description, priority, requester,"
            " target, customer, tags, status, created_at, updated_at)"
            " VALUES (?,?,?,?,?,?,?,?,'open',?,?) ON CONFLICT(dedup_key) DO NOTHING",
            (
                draft.dedup_key,
                draft.subject,
                draft.description,
                draft.priority,
                draft.requester_email,
                draft.target,
                draft.customer,
                json.dumps(list(draft.tags)),
                now,
                now,
            ),
        )
        found = await self.find(draft.dedup_key)
        assert found is not None
        return found

    async def find(self, dedup_key: str) -> TicketRef | None:
        rows = await asyncio.to_thread(
            self._run, "SELECT id FROM local_tickets WHERE dedup_key = ?", (dedup_key,)
        )
        return TicketRef(id=str(rows[0][0]), url=None) if rows else None

    async def add_note(self, ref: TicketRef, body: str, public: bool) -> None:
        await self._existing(ref)
        await asyncio.to_thread(
            self._run,
            "INSERT INTO local_ticket_notes (ticket_id, body, public, created_at) VALUES (?,?,?,?)",
            (int(ref.id), body, int(public), time.time()),
        )

    async def has_note(self, ref: TicketRef, body: str, public: bool) -> bool:
        rows = await asyncio.to_thread(
            self._run,
            "SELECT body FROM local_ticket_notes"
            " WHERE ticket_id = ? AND public = ? AND from_customer = 0",
            (int(ref.id), int(public)),
        )
        return any(same_text(str(row[0]), body) for row in rows)

    async def set_status(self, ref: TicketRef, status: NewStatus) -> None:
        await self._existing(ref)
        await asyncio.to_thread(self.change_status, ref.id, status)

    async def get(self, ref: TicketRef, replies_since: float | None = None) -> TicketInfo:
        status, assignee, priority = await self._existing(ref)
        replied = None
        if replies_since is not None:
            rows = await asyncio.to_thread(
                self._run,
                "SELECT MAX(created_at) FROM local_ticket_notes"
                " WHERE ticket_id = ? AND from_customer = 1 AND created_at > ?",
                (int(ref.id), replies_since),
            )
            value = rows[0][0] if rows else None
            replied = float(value) if isinstance(value, (int, float)) else None
        return TicketInfo(
            status=status,
            assignee=assignee,
            raw_status=status,
            waiting_on_customer=status == "pending",
            last_customer_reply_at=replied,
            priority=next((p for p in PRIORITIES if p == priority), None),
        )

    async def _existing(self, ref: TicketRef) -> tuple[TicketStatus, str | None, str]:
        rows = await asyncio.to_thread(
            self._run,
            "SELECT status, assignee, priority FROM local_tickets WHERE id = ?",
            (int(ref.id),),
        )
        if not rows:
            raise PermanentError(f"local: no ticket {ref.id}")
        status, assignee, priority = rows[0]
        return status, assignee, str(priority)  # type: ignore[return-value]

    def assign(self, ticket_id: str, assignee: str) -> None:
        """Someone takes the ticket (what a person does in a helpdesk; used by tests and tools)."""
        self._run(
            "UPDATE local_tickets SET assignee = ?, updated_at = ? WHERE id = ?",
            (assignee, time.time(), int(ticket_id)),
        )

    def change_priority(self, ticket_id: str, priority: Priority) -> None:
        """Set the priority (what a person does in a helpdesk; used by tests and tools)."""
        self._run(
            "UPDATE local_tickets SET priority = ?, updated_at = ? WHERE id = ?",
            (priority, time.time(), int(ticket_id)),
        )

    def change_status(self, ticket_id: str, status: TicketStatus) -> None:
        """Set the status (what a person does in a helpdesk, and what ``set_status`` does)."""
        self._run(
            "UPDATE local_tickets SET status = ?, updated_at = ? WHERE id = ?",
            (status, time.time(), int(ticket_id)),
        )

    def customer_reply(self, ticket_id: str, body: str, at: float | None = None) -> None:
        """The requester answers on the ticket (``at``: when, default now). The local helpdesk
        leaves the status alone: reopening is watchdesk's part."""
        self._run(
            "INSERT INTO local_ticket_notes (ticket_id, body, public, created_at, from_customer)"
            " VALUES (?,?,1,?,1)",
            (int(ticket_id), body, time.time() if at is None else at),
        )

    def tickets(self) -> list[dict[str, object]]:
        rows = self._run(
            "SELECT id, dedup_key, subject, description, priority, requester, target, customer,"
            " status, assignee, created_at, updated_at FROM local_tickets ORDER BY id"
        )
        keys = (
            "id",
            "dedup_key",
            "subject",
            "description",
            "priority",
            "requester",
            "target",
            "customer",
            "status",
            "assignee",
            "created_at",
            "updated_at",
        )
        return [dict(zip(keys, row, strict=True)) for row in rows]

    def notes(self, ticket_id: str) -> list[dict[str, object]]:
        rows = self._run(
            "SELECT body, public, created_at, from_customer FROM local_ticket_notes"
            " WHERE ticket_id = ? ORDER BY id",
            (int(ticket_id),),
        )
        return [
            {"body": r[0], "public": bool(r[1]), "created_at": r[2], "from_customer": bool(r[3])}
            for r in rows
        ]

    async def aclose(self) -> None:
        await asyncio.to_thread(self._close)

    def _close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
