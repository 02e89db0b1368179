"""JiraBackend: exact payloads, then every call against a fake Jira Cloud that really fails."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import pytest

from tests.fakes.jira import JiraFake
from tests.samples import DRAFT as SAMPLE_DRAFT
from ticketing.backends.jira import (
    JiraBackend,
    JiraSettings,
    adf,
    comment_payload,
    create_payload,
    dedup_label,
    pick_transition,
    search_payload,
    ticket_info,
    transition_payload,
)
from ticketing.base import TicketDraft, TicketInfo, TicketRef
from ticketing.errors import OutcomeUnknown, PermanentError, RetryableError

EMAIL = "bot@acme.example"
TOKEN = "jira-secret-token-1234567890"
TIMEOUT = 0.5

DRAFT = dataclasses.replace(
    SAMPLE_DRAFT,
    description="web failed 3 checks since 10:00 UTC\n\nlast error: status 503",
)


def settings(url: str = "https://acme.atlassian.net", **extra: object) -> JiraSettings:
    return JiraSettings.model_validate(
        {
            "url": url,
            "email": EMAIL,
            "api_token_env": "JIRA_API_TOKEN",
            "project_key": "OPS",
            **extra,
        }
    )


@pytest.fixture
async def fake() -> AsyncIterator[JiraFake]:
    async with JiraFake(email=EMAIL, token=TOKEN) as server:
        yield server


@pytest.fixture
async def backend(fake: JiraFake) -> AsyncIterator[JiraBackend]:
    client = JiraBackend(
        settings(fake.url, pending_transition="Waiting for customer"), TOKEN, timeout=TIMEOUT
    )
    yield client
    await client.aclose()


# --- pure payloads ---------------------------------------------------------------------------


def test_create_payload_is_exact() -> None:
    assert create_payload(DRAFT, settings(labels=["noc", "customer acme"])) == {
        "fields": {
            "project": {"key": "OPS"},
            "summary": "[URGENT] web is down",
            "description": {
                "type": "doc",
                "version": 1,
                "content": [
                    {
                        "type": "paragraph",
                        "content": [
                            {"type": "text", "text": "web failed 3 checks since 10:00 UTC"}
                        ],
                    },
                    {"type": "paragraph", "content": []},
                    {
                        "type": "paragraph",
                        "content": [{"type": "text", "text": "last error: status 503"}],
                    },
                ],
            },
            "issuetype": {"name": "Task"},
            "priority": {"name": "Highest"},
            "labels": ["watchdesk", "watchdesk-web-17", "web", "noc", "customer-acme"],
        }
    }


@pytest.mark.parametrize(
    ("priority", "name"),
    [("urgent", "Highest"), ("high", "High"), ("medium", "Medium"), ("low", "Low")],
)
def test_priorities(priority: str, name: str) -> None:
    draft = TicketDraft("k", "s", "d", priority, None, "t")  # type: ignore[arg-type]
    assert create_payload(draft, settings())["fields"]["priority"] == {"name": name}


def test_priority_names_are_configurable() -> None:
    custom = settings(priorities={"urgent": "P1"}, issue_type="Incident")
    fields = create_payload(DRAFT, custom)["fields"]
    assert fields["priority"] == {"name": "P1"}
    assert fields["issuetype"] == {"name": "Incident"}
    draft = TicketDraft("k", "s", "d", "low", None, "t")
    assert create_payload(draft, custom)["fields"]["priority"] == {"name": "Low"}


def test_summary_is_one_line_of_255() -> None:
    draft = TicketDraft("k", "a\nb  " + "x" * 300, "d", "low", None, "t")
    summary = create_payload(draft, settings())["fields"]["summary"]
    assert summary.startswith("a b x")
    assert len(summary) == 255


def test_dedup_label_falls_back_to_a_digest() -> None:
    assert dedup_label("watchdesk-web-17") == "watchdesk-web-17"
    spaced = dedup_label("watchdesk web 17")
    assert spaced.startswith("watchdesk-")
    assert " " not in spaced
    assert spaced == dedup_label("watchdesk web 17")  # stable
    assert dedup_label('a"b') != 'a"b'


def test_search_payload_is_exact() -> None:
    assert search_payload("watchdesk-web-17", settings()) == {
        "jql": 'project = "OPS" AND labels = "watchdesk-web-17" ORDER BY created ASC',
        "fields": ["summary", "created"],
        "maxResults": 10,
    }


def test_comment_payloads_are_exact() -> None:
    assert comment_payload("up again", public=True) == {"body": adf("up again")}
    assert comment_payload("paged oncall", public=False) == {
        "body": {
            "type": "doc",
            "version": 1,
            "content": [
                {
                    "type": "paragraph",
                    "content": [{"type": "text", "text": "[internal] paged oncall"}],
                }
            ],
        },
        "properties": [{"key": "sd.public.comment", "value": {"internal": True}}],
    }
    assert transition_payload("31") == {"transition": {"id": "31"}}


def test_pick_transition_by_name_or_target() -> None:
    transitions = [
        {"id": "5", "name": "Resolve Issue", "to": {"name": "Resolved"}},
        {"id": "2", "name": "Close", "to": {"name": "Done"}},
    ]
    assert pick_transition(transitions, "resolve issue") == transitions[0]
    assert pick_transition(transitions, "Done") == transitions[1]
    assert pick_transition(transitions, "Waiting") is None


@pytest.mark.parametrize(
    ("category", "status"),
    [("new", "open"), ("indeterminate", "pending"), ("done", "resolved"), ("odd", "open")],
)
def test_ticket_info_maps_categories(category: str, status: str) -> None:
    issue = {"fields": {"status": {"name": "X", "statusCategory": {"key": category}}}}
    assert ticket_info(issue) == TicketInfo(status, None, "X", {"status_category": category})  # type: ignore[arg-type]


def test_ticket_info_assignee() -> None:
    issue = {
        "fields": {
            "status": {"name": "In Progress", "statusCategory": {"key": "indeterminate"}},
            "assignee": {"accountId": "5b10ac8d82e05b22cc7d4ef5", "displayName": "Mia Krystof"},
        }
    }
    assert ticket_info(issue) == TicketInfo(
        "pending",
        "Mia Krystof",
        "In Progress",
        {"status_category": "indeterminate", "assignee_account_id": "5b10ac8d82e05b22cc7d4ef5"},
    )


# --- against the fake ------------------------------------------------------------------------


async def test_lifecycle(fake: JiraFake, backend: JiraBackend) -> None:
    ref = await backend.create(DRAFT)
    assert ref == TicketRef(id="OPS-1", url=f"{fake.url}/browse/OPS-1")
    fields = fake.issues["OPS-1"]["fields"]
    assert fields["summary"] == "[URGENT] web is down"
    assert fields["priority"] == {"name": "Highest"}
    assert fields["issuetype"] == {"name": "Task"}
    assert fields["labels"] == ["watchdesk", "watchdesk-web-17", "web"]
    assert fields["description"] == adf(DRAFT.description)

    assert await backend.find("watchdesk-web-17") == ref
    assert await backend.find("watchdesk-web-18") is None

    await backend.add_note(ref, "still down", public=True)
    await backend.add_note(ref, "paged oncall", public=False)
    assert [(c["text"], c["internal"]) for c in fake.comments["OPS-1"]] == [
        ("still down", False),
        ("[internal] paged oncall", True),
    ]

    assert await backend.get(ref) == TicketInfo(
        "open", None, "To Do", {"status_category": "new"}, priority="urgent"
    )
    fake.agent_update("OPS-1", {"assignee": {"accountId": "acc-9", "displayName": "Mia"}})
    info = await backend.get(ref)
    assert (info.status, info.assignee) == ("open", "Mia")

    await backend.set_status(ref, "pending")
    assert fake.issues["OPS-1"]["fields"]["status"]["name"] == "Waiting for customer"
    assert (await backend.get(ref)).status == "pending"
    await backend.set_status(ref, "resolved")
    assert fake.issues["OPS-1"]["fields"]["status"]["name"] == "Done"
    assert (await backend.get(ref)).status == "resolved"
    # Again (a retry after a lost answer): Done is no longer offered, and that is fine.
    await backend.set_status(ref, "resolved")
    assert fake.issues["OPS-1"]["fields"]["status"]["name"] == "Done"
    assert [r["json"] for r in fake.requests_to("transition")] == [
        {"transition": {"id": "41"}},
        {"transition": {"id": "31"}},
    ]


async def test_pending_without_a_transition_does_nothing(fake: JiraFake) -> None:
    backend = JiraBackend(settings(fake.url), TOKEN, timeout=TIMEOUT)
    try:
        ref = await backend.create(DRAFT)
        await backend.set_status(ref, "pending")
    finally:
        await backend.aclose()
    assert fake.issues["OPS-1"]["fields"]["status"]["name"] == "To Do"
    assert fake.requests_to("transitions") == []


async def test_missing_transition_names_the_available_ones(fake: JiraFake) -> None:
    backend = JiraBackend(settings(fake.url, resolve_transition="Resolve"), TOKEN, timeout=TIMEOUT)
    try:
        ref = await backend.create(DRAFT)
        with pytest.raises(PermanentError) as caught:
            await backend.set_status(ref, "resolved")
    finally:
        await backend.aclose()
    message = caught.value.message
    assert "'Resolve'" in message
    assert "'In Progress'" in message
    assert "'Done'" in message
    assert fake.issues["OPS-1"]["fields"]["status"]["name"] == "To Do"


async def test_find_returns_the_first_issue(fake: JiraFake, backend: JiraBackend) -> None:
    first = await backend.create(DRAFT)
    await backend.create(DRAFT)
    assert await backend.find(DRAFT.dedup_key) == first


async def test_bad_token_is_permanent_and_secret_free(fake: JiraFake) -> None:
    wrong = "wrong-token-0987654321"
    backend = JiraBackend(settings(fake.url), wrong, timeout=TIMEOUT)
    try:
        with pytest.raises(PermanentError) as caught:
            await backend.create(DRAFT)
    finally:
        await backend.aclose()
    assert "401" in caught.value.message
    assert "Client must be authenticated" in caught.value.message
    assert wrong not in str(caught.value)
    assert TOKEN not in str(caught.value)
    assert fake.issues == {}


async def test_bad_field_is_permanent_and_named(fake: JiraFake) -> None:
    backend = JiraBackend(settings(fake.url, priorities={"urgent": "P0"}), TOKEN, timeout=TIMEOUT)
    try:
        with pytest.raises(PermanentError) as caught:
            await backend.create(DRAFT)
    finally:
        await backend.aclose()
    assert "400" in caught.value.message
    assert '"priority"' in caught.value.message
    assert fake.issues == {}


async def test_rate_limit_carries_retry_after(fake: JiraFake, backend: JiraBackend) -> None:
    fake.fail_next("create", "429", retry_after=7)
    with pytest.raises(RetryableError) as caught:
        await backend.create(DRAFT)
    assert not isinstance(caught.value, OutcomeUnknown)
    assert caught.value.retry_after == 7
    assert "Rate limit exceeded" in caught.value.message
    assert fake.issues == {}


async def test_unavailable_is_retryable(fake: JiraFake, backend: JiraBackend) -> None:
    fake.fail_next("comment", "503")
    with pytest.raises(RetryableError) as caught:
        await backend.add_note(TicketRef("OPS-1"), "x", public=True)
    assert not isinstance(caught.value, OutcomeUnknown)
    assert caught.value.retry_after is None


async def test_timeout_after_create_is_unknown_then_found(
    fake: JiraFake, backend: JiraBackend
) -> None:
    fake.fail_next("create", "timeout")
    with pytest.raises(OutcomeUnknown):
        await backend.create(DRAFT)
    assert list(fake.issues) == ["OPS-1"]
    assert await backend.find(DRAFT.dedup_key) == TicketRef("OPS-1", f"{fake.url}/browse/OPS-1")


async def test_dropped_connection_is_unknown(fake: JiraFake, backend: JiraBackend) -> None:
    fake.fail_next("create", "drop")
    with pytest.raises(OutcomeUnknown):
        await backend.create(DRAFT)
    assert list(fake.issues) == ["OPS-1"]
    fake.fail_next("transition", "drop")
    with pytest.raises(OutcomeUnknown):
        await backend.set_status(TicketRef("OPS-1"), "resolved")
    assert fake.issues["OPS-1"]["fields"]["status"]["name"] == "Done"  # done, answered never


async def test_missing_issue_is_permanent(backend: JiraBackend) -> None:
    with pytest.raises(PermanentError, match="Issue does not exist"):
        await backend.get(TicketRef("OPS-99"))
