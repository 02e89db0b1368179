"""The store as the agent sees it: an interface it awaits, whatever keeps the data.

``SqliteStore`` (``monitor.store.aio``) is the default; a PostgreSQL store for a cluster
implements the same methods. Incidents, the outbox, the support policy, the agent and the web
views know only this interface.

What an implementation must keep (the agent relies on it, see ``monitor.store.sqlite``):

- **Calls take effect in the order they were made.** A write awaited after another, or merely
  started after it (the batched state flush started after a transition's transaction), never
  overtakes it.
- **One call, one transaction.** ``open_incident`` and ``update_incident`` write the target's
  state row and its transition with the incident and its actions, or nothing of them.
- ``open_incident``'s ``build(incident_id)`` runs inside the transaction (wherever the
  implementation runs it, e.g. another thread): it must only build values.
- A state row is written only if its ``seq`` is newer than the stored one.
- ``open_notice`` and ``close_notice`` write the notice with its actions, or neither; a notice
  is opened at most once per (incident, customer) and closed at most once.
- An outbox action's ``notice`` (the customer whose notice ticket it is for) is kept with it:
  ``due_actions`` orders per incident, channel and notice, and ``finish_action``'s changes go
  to that notice's row.
- A storm incident (``kind = "storm"``) has no ticket of its own: a ticket action queued for it
  without a ``notice`` is queued, in the same transaction, once for each of its open notices
  that has a ticket of its own (``monitor.store.storms.addressed``). ``open_storm``,
  ``join_storm``, ``leave_storm`` and ``tell_storm`` are one transaction each, with the state
  row and transition they are given; ``tell_storm`` opens a notice at most once.
- ``update_incident`` with ``expect`` is a compare-and-set: nothing of the incident changes
  and nothing is queued unless its columns still hold the expected values (False). Whoever
  might act on an incident another agent or a person acts on too (the coordinator's policy,
  the operator desk, a recovery) says what it expects to find.
- ``claim_actions`` counts the attempts of the actions it hands out; in a cluster it gives
  each a ``claim_token``, and ``finish_action``/``retry_action``/``fail_action``/``set_sent``
  with that ``claim`` change nothing (False) once the claim is no longer the caller's.
- In a cluster, writes are fenced by the leases they depend on (``monitor.store.fence``):
  a refused one raises ``Fenced``, a ``StoreError``.
- Errors of the database are ``monitor.errors.StoreError``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

from monitor.actions import Action
from monitor.state import TargetState, Transition
from monitor.store.records import (
    CustomerNotice,
    Incident,
    OutboxAction,
    StoredTransition,
    StormMember,
)
from monitor.store.reports import SentReport
from monitor.store.schema import StateRow

# build(incident_id) -> (dedup key, first actions); pure, runs inside the transaction.
BuildActions = Callable[[int], tuple[str, list[Action]]]
# The transition being acted on, with the state row it produced: stored with what it causes.
Cause = tuple[StateRow, Transition]


class Store(Protocol):
    """The agent's memory: target state, incidents, the outbox of actions, transitions."""

    @property
    def location(self) -> str:
        """Where the data lives, for messages (a path, a database name)."""
        ...

    # ---- lifecycle ------------------------------------------------------------------------

    async def open(self) -> None:
        """Connect (and create or migrate the schema); StoreError when that fails."""
        ...

    async def close(self) -> None: ...

    async def writable(self) -> bool:
        """True when a write goes through: what /readyz reports."""
        ...

    async def reconnect(self) -> None:
        """The database answers again after an outage: connect afresh now (nothing to do for
        a file)."""
        ...

    def abandon(self) -> None:
        """The agent is stopping and the database does not answer: fail the calls still
        waiting for it now, and every later one at once (nothing to do for a file)."""
        ...

    # ---- target state and transitions -----------------------------------------------------

    async def last_seq(self) -> int: ...

    async def last_resolved(self) -> dict[str, float]: ...

    async def load_states(
        self, targets: Iterable[str] | None = None
    ) -> dict[str, tuple[str, TargetState]]: ...

    async def save(
        self, states: Iterable[StateRow], transitions: Iterable[tuple[str, Transition]] = ()
    ) -> None: ...

    async def record(self, state: StateRow, transition: Transition | None = None) -> None: ...

    async def set_mute(
        self, target: str, until: float | None, reason: str, by: str, at: float
    ) -> None: ...

    async def mutes(self) -> dict[str, tuple[float, str, str]]: ...

    async def mark_seen(self, targets: Iterable[str], at: float) -> None: ...

    async def forget(self, targets: Iterable[str], at: float) -> None: ...

    async def targets_seen(self) -> dict[str, tuple[float, float]]: ...

    async def transitions(
        self, target: str | None = None, since: float = 0.0
    ) -> list[StoredTransition]: ...

    # ---- incidents ------------------------------------------------------------------------

    async def open_incident(
        self,
        incident: dict[str, Any],
        build: BuildActions,
        state: StateRow | None = None,
        transition: Transition | None = None,
    ) -> Incident | None: ...

    async def update_incident(
        self,
        incident_id: int,
        changes: dict[str, Any],
        actions: Sequence[Action] = (),
        now: float = 0.0,
        state: StateRow | None = None,
        transition: Transition | None = None,
        expect: Mapping[str, Any] | None = None,
    ) -> bool: ...

    async def incidents(
        self, open_only: bool = False, limit: int | None = None
    ) -> list[Incident]: ...

    async def incident(self, incident_id: int) -> Incident | None: ...

    # ---- customer notices of shared outages (monitor.policy.shared_outage) ----------------

    async def open_notice(
        self,
        incident_id: int,
        customer: str,
        dedup_key: str,
        dependents: Sequence[str],
        via_incident: int | None,
        actions: Sequence[Action],
        now: float,
    ) -> bool:
        """Insert the notice of (incident, customer) and queue its actions (on
        ``via_incident``'s queue when set), in one transaction; False, queuing nothing, when
        that notice exists already."""
        ...

    async def close_notice(
        self, notice_id: int, actions: Sequence[Action], queue_on: int, now: float
    ) -> bool:
        """Close an open notice and queue its actions on ``queue_on``, in one transaction;
        False when it was closed already."""
        ...

    async def notices(
        self, incident_id: int | None = None, open_only: bool = False
    ) -> list[CustomerNotice]: ...

    async def notice(self, incident_id: int, customer: str) -> CustomerNotice | None: ...

    async def watched_incidents(self) -> list[Incident]:
        """Open incidents, and resolved ones whose ticket is still followed (waiting on the
        customer, resolved but not closed, reopened)."""
        ...

    async def pause_clocks(self, incident_id: int, at: float) -> bool:
        """The incident's SLA clocks stop at ``at`` (the ticket waits on the customer); False
        when they were stopped already."""
        ...

    async def resume_clocks(self, incident_id: int, at: float) -> bool:
        """They run again from ``at``; False when they were running. Resolving an incident
        (``update_incident`` with status resolved) ends its pause too."""
        ...

    # ---- storms (monitor.policy.storms) -----------------------------------------------------

    async def open_storm(
        self,
        incident: dict[str, Any],
        build: BuildActions,
        members: Sequence[StormMember],
        state: StateRow | None = None,
        transition: Transition | None = None,
    ) -> Incident | None:
        """Like ``open_incident``, with the storm's first members."""
        ...

    async def join_storm(
        self,
        incident_id: int,
        members: Sequence[StormMember],
        state: StateRow | None = None,
        transition: Transition | None = None,
    ) -> None: ...

    async def leave_storm(
        self,
        incident_id: int,
        targets: Sequence[str],
        at: float,
        changes: dict[str, Any],
        actions: Sequence[Action],
        now: float,
        state: StateRow | None = None,
        transition: Transition | None = None,
    ) -> None:
        """Members leave; ``changes`` and ``actions`` go to the storm (its resolution)."""
        ...

    async def tell_storm(
        self,
        incident_id: int,
        customer: str,
        told: Mapping[str, str],
        actions: Sequence[Action],
        dependents: Sequence[str],
        now: float,
        notice_key: str | None = None,
    ) -> bool:
        """Queue what tells ``customer`` of their members and mark them ``told``; with
        ``notice_key``, open their notice (False, queuing nothing, when it exists)."""
        ...

    async def storm_members(self, incident_id: int | None = None) -> list[StormMember]: ...

    # ---- the outbox -----------------------------------------------------------------------

    async def actions_of(self, incident_id: int) -> list[OutboxAction]: ...

    async def due_actions(
        self, now: float, limit: int = 50, skip_channels: Iterable[str] = ()
    ) -> list[OutboxAction]: ...

    async def claim_actions(
        self,
        now: float,
        limit: int,
        skip_channels: Iterable[str] = (),
        claim_ttl: float | None = None,
        channel: str | None = None,
    ) -> list[OutboxAction]:
        """The due queue heads, oldest first, claimed for delivery with their attempt
        counted (see the rules above)."""
        ...

    async def next_action_time(self, skip_channels: Iterable[str] = ()) -> float | None: ...

    async def begin_attempt(self, action_id: int, now: float) -> int: ...

    async def finish_action(
        self,
        action_id: int,
        now: float,
        incident_changes: dict[str, Any] | None = None,
        note: str | None = None,
        claim: str | None = None,
    ) -> bool: ...

    async def retry_action(
        self, action_id: int, at: float, error: str, claim: str | None = None
    ) -> bool: ...

    async def fail_action(self, action_id: int, error: str, claim: str | None = None) -> bool: ...

    async def set_sent(
        self, action_id: int, sent_at: float | None, claim: str | None = None
    ) -> bool: ...

    async def release_channel(self, channel: str, now: float) -> int: ...

    async def requeue_failed(self, now: float) -> int: ...

    async def outbox_counts(self, now: float | None = None) -> dict[str, int]: ...

    async def failed_actions(self) -> list[OutboxAction]: ...

    async def pending_with_error(self, prefix: str) -> list[OutboxAction]: ...

    # ---- scheduled reports (see monitor.store.reports) -------------------------------------

    async def report_known_since(self, report: str, now: float) -> float: ...

    async def claim_report(
        self, report: str, period: tuple[float, float], scheduled_at: float, now: float
    ) -> bool: ...

    async def finish_report(
        self, report: str, period: tuple[float, float], sent_at: float, recipients: list[str]
    ) -> None: ...

    async def release_report(self, report: str, period: tuple[float, float]) -> None: ...

    async def settle_report_claims(self) -> list[SentReport]: ...

    async def reports_sent(self, report: str | None = None) -> list[SentReport]: ...
