"""GitHubBackend: exact payloads, then every call against a fake GitHub that really fails."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from tests.fakes.github import GitHubFake
from tests.samples import DRAFT
from ticketing.backends.github import (
    GitHubBackend,
    GitHubSettings,
    comment_payload,
    create_payload,
    dedup_label,
    find_params,
    pending_payload,
    rate_limit_wait,
    resolve_payload,
    ticket_info,
)
from ticketing.base import TicketDraft, TicketInfo, TicketRef
from ticketing.errors import OutcomeUnknown, PermanentError, RetryableError

REPO = "acme/ops"
TOKEN = "ghp_secret_token_1234567890"
TIMEOUT = 0.5


def settings(url: str = "https://api.github.com", **extra: object) -> GitHubSettings:
    return GitHubSettings.model_validate(
        {"url": url, "repository": REPO, "token_env": "GITHUB_TOKEN", **extra}
    )


@pytest.fixture
async def fake() -> AsyncIterator[GitHubFake]:
    async with GitHubFake(REPO, TOKEN, read_only_tokens=["ghp_read_only"]) as server:
        yield server


@pytest.fixture
async def backend(fake: GitHubFake) -> AsyncIterator[GitHubBackend]:
    client = GitHubBackend(settings(fake.url), TOKEN, timeout=TIMEOUT)
    yield client
    await client.aclose()


# --- pure payloads ---------------------------------------------------------------------------


def test_create_payload_is_exact() -> None:
    assert create_payload(DRAFT, settings()) == {
        "title": "[URGENT] web is down",
        "body": (
            "web failed 3 checks since 10:00 UTC\nlast error: status 503\n\n---\n"
            "Target: `web`\nCustomer: acme\nRequester: it@acme.example\n"
            "Dedup key: `watchdesk-web-17`"
        ),
        "labels": ["watchdesk", "watchdesk-web-17", "priority:urgent", "web", "incident"],
    }


def test_create_payload_minimal() -> None:
    draft = TicketDraft("watchdesk-db-3", "db is down", "d", "low", None, "db")
    assert create_payload(draft, settings(labels=[])) == {
        "title": "db is down",
        "body": "d\n\n---\nTarget: `db`\nDedup key: `watchdesk-db-3`",
        "labels": ["watchdesk", "watchdesk-db-3", "priority:low"],
    }


def test_dedup_label_fits_github() -> None:
    assert dedup_label("watchdesk-web-17") == "watchdesk-web-17"
    long_key = "watchdesk-" + "x" * 60
    assert len(dedup_label(long_key)) <= 50
    assert dedup_label(long_key) == dedup_label(long_key)
    assert "," not in dedup_label("a,b")


def test_small_payloads_are_exact() -> None:
    assert find_params("watchdesk-web-17") == {
        "labels": "watchdesk-web-17",
        "state": "all",
        "sort": "created",
        "direction": "asc",
        "per_page": "10",
    }
    assert comment_payload("up again", public=True) == {"body": "up again"}
    assert comment_payload("paged oncall", public=False) == {"body": "**[internal]** paged oncall"}
    assert resolve_payload() == {"state": "closed", "state_reason": "completed"}
    assert pending_payload(settings()) == {"labels": ["status:pending"]}
    assert pending_payload(settings(pending_label="waiting")) == {"labels": ["waiting"]}


@pytest.mark.parametrize(
    ("state", "reason", "labels", "status"),
    [
        ("open", None, [], "open"),
        ("open", "reopened", [{"name": "status:pending"}], "pending"),
        ("closed", "completed", [], "resolved"),
        ("closed", None, [], "resolved"),
        ("closed", "not_planned", [], "closed"),
    ],
)
def test_ticket_info_maps_states(
    state: str, reason: str | None, labels: list[dict[str, str]], status: str
) -> None:
    issue = {"state": state, "state_reason": reason, "labels": labels, "assignees": []}
    info = ticket_info(issue, "status:pending")
    assert (info.status, info.raw_status, info.assignee) == (status, state, None)


def test_ticket_info_assignee() -> None:
    issue = {"state": "open", "labels": [], "assignees": [{"login": "octocat"}, {"login": "x"}]}
    assert ticket_info(issue, "status:pending") == TicketInfo("open", "octocat", "open")


def test_rate_limit_wait() -> None:
    now = 1_000_000.0
    assert rate_limit_wait(403, {"Retry-After": "7"}, b"{}", now) == 7
    reset = {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "1000030"}
    assert rate_limit_wait(403, reset, b"{}", now) == 30
    assert rate_limit_wait(429, reset, b"{}", now) == 30
    secondary = b'{"message": "You have exceeded a secondary rate limit."}'
    assert rate_limit_wait(403, {"X-RateLimit-Remaining": "4990"}, secondary, now) == 60
    assert rate_limit_wait(429, {}, b"", now) == 60
    forbidden = b'{"message": "Resource not accessible by personal access token"}'
    assert rate_limit_wait(403, {"X-RateLimit-Remaining": "4990"}, forbidden, now) is None
    assert rate_limit_wait(401, {"X-RateLimit-Remaining": "0"}, b"", now) is None


# --- against the fake ------------------------------------------------------------------------


async def test_lifecycle(fake: GitHubFake, backend: GitHubBackend) -> None:
    ref = await backend.create(DRAFT)
    assert ref == TicketRef(id="1", url=f"{fake.url}/{REPO}/issues/1")
    issue = fake.issues[1]
    assert issue["title"] == "[URGENT] web is down"
    assert issue["labels"] == [
        "watchdesk",
        "watchdesk-web-17",
        "priority:urgent",
        "web",
        "incident",
    ]
    assert issue["body"].startswith("web failed 3 checks")
    headers = fake.headers_seen[-1]
    assert headers["Authorization"] == f"Bearer {TOKEN}"
    assert headers["Accept"] == "application/vnd.github+json"
    assert headers["X-GitHub-Api-Version"] == "2022-11-28"

    fake.add_pull_request("fix web", ["watchdesk-web-18"])
    assert await backend.find("watchdesk-web-17") == ref
    assert await backend.find("watchdesk-web-18") is None  # a pull request is no ticket

    await backend.add_note(ref, "still down", public=True)
    await backend.add_note(ref, "paged oncall", public=False)
    assert [c["body"] for c in fake.comments[1]] == ["still down", "**[internal]** paged oncall"]

    assert await backend.get(ref) == TicketInfo("open", None, "open", priority="urgent")
    fake.agent_update("1", {"assignees": ["octocat"]})
    assert await backend.get(ref) == TicketInfo("open", "octocat", "open", priority="urgent")

    await backend.set_status(ref, "pending")
    assert "status:pending" in fake.issues[1]["labels"]
    assert fake.issues[1]["state"] == "open"
    assert (await backend.get(ref)).status == "pending"

    await backend.set_status(ref, "resolved")
    assert (fake.issues[1]["state"], fake.issues[1]["state_reason"]) == ("closed", "completed")
    assert await backend.get(ref) == TicketInfo(
        "resolved", "octocat", "closed", {"state_reason": "completed"}, priority="urgent"
    )
    # A closed issue is still found: a lost answer is reconciled whatever happened since.
    assert await backend.find("watchdesk-web-17") == ref


async def test_bad_token_is_permanent_and_secret_free(fake: GitHubFake) -> None:
    wrong = "ghp_wrong_token_0987654321"
    backend = GitHubBackend(settings(fake.url), wrong, timeout=TIMEOUT)
    try:
        with pytest.raises(PermanentError) as caught:
            await backend.create(DRAFT)
    finally:
        await backend.aclose()
    assert "401" in caught.value.message
    assert "Bad credentials" in caught.value.message
    assert wrong not in str(caught.value)
    assert TOKEN not in str(caught.value)
    assert fake.issues == {}


async def test_forbidden_without_rate_limit_is_permanent(fake: GitHubFake) -> None:
    backend = GitHubBackend(settings(fake.url), "ghp_read_only", timeout=TIMEOUT)
    try:
        with pytest.raises(PermanentError) as caught:
            await backend.create(DRAFT)
    finally:
        await backend.aclose()
    assert "403" in caught.value.message
    assert "Resource not accessible" in caught.value.message
    assert "ghp_read_only" not in str(caught.value)


async def test_validation_error_names_the_field(fake: GitHubFake) -> None:
    backend = GitHubBackend(settings(fake.url), TOKEN, timeout=TIMEOUT)
    try:
        with pytest.raises(PermanentError) as caught:
            await backend.create(TicketDraft("k-1", "   ", "d", "low", None, "t"))
    finally:
        await backend.aclose()
    assert "422" in caught.value.message
    assert "Validation Failed" in caught.value.message
    assert '"field":"title"' in caught.value.message
    assert fake.issues == {}


async def test_primary_rate_limit_403_waits_for_reset(
    fake: GitHubFake, backend: GitHubBackend
) -> None:
    fake.rate_limit_reset_in = 30
    fake.fail_next("create", "403")
    before = time.time()
    with pytest.raises(RetryableError) as caught:
        await backend.create(DRAFT)
    assert not isinstance(caught.value, OutcomeUnknown)
    assert caught.value.retry_after is not None
    assert 28 <= caught.value.retry_after <= 30 + (time.time() - before) + 1
    assert "API rate limit exceeded" in caught.value.message
    assert fake.issues == {}


async def test_secondary_rate_limit_429_carries_retry_after(
    fake: GitHubFake, backend: GitHubBackend
) -> None:
    fake.rate_limit_style = "secondary"
    fake.fail_next("create", "429", retry_after=7)
    with pytest.raises(RetryableError) as caught:
        await backend.create(DRAFT)
    assert not isinstance(caught.value, OutcomeUnknown)
    assert caught.value.retry_after == 7
    assert "secondary rate limit" in caught.value.message


async def test_secondary_rate_limit_403_without_headers_waits_a_minute(
    fake: GitHubFake, backend: GitHubBackend
) -> None:
    fake.rate_limit_style = "secondary"
    fake.fail_next("comment", "403")
    with pytest.raises(RetryableError) as caught:
        await backend.add_note(TicketRef("1"), "x", public=True)
    assert caught.value.retry_after == 60


async def test_unavailable_is_retryable(fake: GitHubFake, backend: GitHubBackend) -> None:
    ref = await backend.create(DRAFT)
    fake.fail_next("get", "503")
    with pytest.raises(RetryableError) as caught:
        await backend.get(ref)
    assert not isinstance(caught.value, OutcomeUnknown)
    assert caught.value.retry_after is None


async def test_timeout_after_create_is_unknown_then_found(
    fake: GitHubFake, backend: GitHubBackend
) -> None:
    fake.fail_next("create", "timeout")
    with pytest.raises(OutcomeUnknown):
        await backend.create(DRAFT)
    assert list(fake.issues) == [1]
    assert await backend.find(DRAFT.dedup_key) == TicketRef("1", f"{fake.url}/{REPO}/issues/1")


async def test_dropped_connection_is_unknown(fake: GitHubFake, backend: GitHubBackend) -> None:
    fake.fail_next("create", "drop")
    with pytest.raises(OutcomeUnknown):
        await backend.create(DRAFT)
    assert list(fake.issues) == [1]
    fake.fail_next("update", "drop")  # PATCH is not retried by aiohttp: one drop shows
    with pytest.raises(OutcomeUnknown):
        await backend.set_status(TicketRef("1"), "resolved")
    assert fake.issues[1]["state"] == "closed"


async def test_missing_issue_is_permanent(backend: GitHubBackend) -> None:
    with pytest.raises(PermanentError, match="Not Found"):
        await backend.get(TicketRef("999"))
