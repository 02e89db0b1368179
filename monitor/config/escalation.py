"""``[escalation]``: who is paged when an incident opens, the chain of levels that follows
while nobody works its ticket, and the policy's paces (status updates, polling the helpdesk,
flapping). The policy that acts on it is ``monitor.policy.escalation``."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from monitor.config.types import Duration, DurationPerPriority

DEFAULT_ACK_TIMEOUTS = {"urgent": 3600.0, "high": 4 * 3600.0, "medium": 86400.0, "low": 2 * 86400.0}


class EscalationLevel(BaseModel):
    """One level of the escalation chain, like a PagerDuty escalation policy's rule."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tier: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")  # "L2": shown in tickets and metrics
    role: str  # who this level reaches, as the requester is told ("senior engineer")
    # How long after the level before it (the first: after the incident opened) nobody has
    # worked the ticket; one duration, or one per priority.
    after: DurationPerPriority
    page: list[str] = []

    def after_for(self, priority: str) -> float:
        if isinstance(self.after, dict):
            return self.after.get(priority, DEFAULT_ACK_TIMEOUTS[priority])
        return self.after


class EscalationSection(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    page_on_open: list[str] = []
    # The tier of an incident nobody has escalated yet: the people page_on_open reaches.
    first_tier: str = Field(default="L1", pattern=r"^[A-Za-z0-9_.-]+$")
    ack_timeout: DurationPerPriority = Field(default_factory=lambda: dict(DEFAULT_ACK_TIMEOUTS))
    page_on_escalation: list[str] = []
    # Levels after the first page; unset: one level after ack_timeout paging page_on_escalation.
    chain: list[EscalationLevel] = []
    # How many more times the chain runs from its first level while nobody works the ticket.
    repeat: int = Field(default=0, ge=0, le=10)
    status_update_interval: Duration = 3600.0
    poll_interval: Duration = 60.0
    flap_threshold: int = Field(default=5, ge=2)
    flap_window: Duration = 3600.0
    flap_stable_after: Duration = 600.0

    def ack_timeout_for(self, priority: str) -> float:
        if isinstance(self.ack_timeout, dict):
            return self.ack_timeout.get(priority, DEFAULT_ACK_TIMEOUTS[priority])
        return self.ack_timeout

    def tier_after(self, fired: int) -> str:
        """The tier an incident has reached once ``fired`` levels of the chain have fired: the
        furthest level reached (a repeated round does not go back down), ``first_tier``
        before any."""
        if fired <= 0:
            return self.first_tier
        levels = self.levels()
        return levels[min(fired, len(levels)) - 1].tier

    def levels(self) -> list[EscalationLevel]:
        """The chain in force, the one-level default included."""
        if self.chain:
            return list(self.chain)
        return [
            EscalationLevel.model_construct(
                tier="L2",
                role="on-call manager",
                after=self.ack_timeout,
                page=self.page_on_escalation,
            )
        ]
