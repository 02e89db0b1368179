"""Every backend reads a ticket's priority back, against its stand-in (or the local tables):
the one it created the ticket with, the one a person set in the helpdesk's own field, and none
(never a guess) for a value watchdesk never creates tickets with. The webhook receiver is not
asked: it answers nothing about priorities."""

from __future__ import annotations

from tests.helpdesks import Helpdesk
from tests.samples import DRAFT
from ticketing.backends import github, jira, servicenow, webhook, zendesk
from ticketing.backends.jira import JiraSettings
from ticketing.base import PRIORITIES, TicketBackend, priority_of


async def test_the_priority_a_person_sets_is_read_back(
    desk_and_backend: tuple[Helpdesk, TicketBackend],
) -> None:
    desk, backend = desk_and_backend
    ref = await backend.create(DRAFT)
    assert (await backend.get(ref)).priority == "urgent", desk.name
    for priority in ("high", "low", "medium", "urgent"):
        desk.set_priority(ref.id, priority)
        assert (await backend.get(ref)).priority == priority, (desk.name, priority)
        # Asked with the customer's replies too (another request on some helpdesks): the same.
        assert (await backend.get(ref, replies_since=0.0)).priority == priority, desk.name
    if desk.set_unmapped_priority(ref.id):
        assert (await backend.get(ref)).priority is None, desk.name


def test_a_value_mapped_twice_or_not_at_all_is_no_priority() -> None:
    mapping = {"urgent": "P1", "high": "P1", "medium": "P3", "low": "P4"}
    assert priority_of(mapping, "P3") == "medium"
    assert priority_of(mapping, "P1") is None  # which of the two a person meant: unknown
    assert priority_of(mapping, "P9") is None
    assert priority_of({"low": 1, "medium": 2, "high": 3, "urgent": 4}, True) is None


def test_jira_reads_back_through_the_configured_names() -> None:
    settings = JiraSettings.model_validate(
        {
            "url": "https://acme.atlassian.net",
            "email": "bot@acme.example",
            "project_key": "OPS",
            "api_token_env": "WD_JIRA_TOKEN",
            "priorities": {"urgent": "P1 - Critical", "high": "P2"},
        }
    )
    names = settings.priority_names()

    def read(name: object) -> object:
        issue = {"fields": {"status": {"name": "To Do"}, "priority": {"name": name}}}
        return jira.ticket_info(issue, priorities=names).priority

    assert read("P1 - Critical") == "urgent"
    assert read("P2") == "high"
    assert read("Medium") == "medium"  # not configured: the default scheme's name
    assert read("Highest") is None  # the default for urgent, which this project renamed
    assert jira.ticket_info({"fields": {"priority": None}}).priority is None


def test_servicenow_reads_back_only_the_pairs_it_creates() -> None:
    for priority in PRIORITIES:
        urgency, impact = servicenow.URGENCY_IMPACT[priority]
        record = {"state": "2", "urgency": urgency, "impact": impact}
        assert servicenow.ticket_info(record).priority == priority
    assert servicenow.ticket_info({"state": "2", "urgency": "3", "impact": "3"}).priority is None
    assert servicenow.ticket_info({"state": "2"}).priority is None


def test_zendesk_github_and_webhook_read_back() -> None:
    assert zendesk.ticket_info({"status": "open", "priority": "normal"}).priority == "medium"
    assert zendesk.ticket_info({"status": "open", "priority": None}).priority is None
    labels = [{"name": "watchdesk"}, {"name": "priority:low"}]
    assert github.ticket_info({"state": "open", "labels": labels}, "p").priority == "low"
    assert github.ticket_info({"state": "open", "labels": []}, "p").priority is None
    answer = {"status": "open", "priority": "urgent"}
    assert webhook.info_from_answer(answer).priority is None  # not part of its contract
