"""Each helpdesk watchdesk can follow after recovery, as a test sees it: the ``[ticketing]``
config that points the agent at its stand-in, and what people do there and read there.

A ``Helpdesk`` reads the stand-in's own records (or the local helpdesk's tables), never the
agent's: a test asserts what the customer and the team would see. ``state`` says where a
ticket stands in the words of this module (open / pending / resolved / closed), whatever the
helpdesk calls it; ``set_pending`` and ``set_open`` are a person changing the status by hand;
``reply`` is the customer writing back at a given moment; ``set_priority`` is a person changing
the ticket's priority in the helpdesk's own field, and ``set_unmapped_priority`` one to a value
watchdesk never creates tickets with (False: the helpdesk has none).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from tests.fakes.freshdesk import FreshdeskFake
from tests.fakes.github import GitHubFake
from tests.fakes.jira import JiraFake
from tests.fakes.servicenow import ServiceNowFake
from tests.fakes.zendesk import ZendeskFake
from ticketing.backends.freshdesk import PRIORITIES as FRESHDESK_PRIORITIES
from ticketing.backends.jira import DEFAULT_PRIORITIES as JIRA_PRIORITIES
from ticketing.backends.local import LocalBackend
from ticketing.backends.servicenow import URGENCY_IMPACT
from ticketing.backends.zendesk import PRIORITIES as ZENDESK_PRIORITIES
from ticketing.base import Priority

SECRET = "stand-in-secret-0123456789"
ENV = {"WD_HELPDESK_SECRET": SECRET}
NAMES = ("local", "freshdesk", "zendesk", "jira", "servicenow", "github")


class Helpdesk:
    """The local helpdesk: tickets in the agent's own SQLite file."""

    name = "local"

    def __init__(self) -> None:
        self._local: Callable[[], LocalBackend] | None = None

    def bind(self, local: Callable[[], LocalBackend]) -> None:
        """The local helpdesk of the agent under test (a restart makes a new one)."""
        self._local = local

    @property
    def local(self) -> LocalBackend:
        assert self._local is not None, "bind() the harness's local backend first"
        return self._local()

    def toml(self) -> str:
        return '[ticketing]\nbackend = "local"\n'

    def state(self, ticket_id: str) -> str:
        (ticket,) = [t for t in self.local.tickets() if str(t["id"]) == ticket_id]
        return str(ticket["status"])

    def set_pending(self, ticket_id: str) -> None:
        self.local.change_status(ticket_id, "pending")

    def set_open(self, ticket_id: str) -> None:
        self.local.change_status(ticket_id, "open")

    def set_priority(self, ticket_id: str, priority: Priority) -> None:
        self.local.change_priority(ticket_id, priority)

    def set_unmapped_priority(self, ticket_id: str) -> bool:
        self.local.change_priority(ticket_id, "critical")  # type: ignore[arg-type]
        return True

    def reply(self, ticket_id: str, at: float) -> None:
        self.local.customer_reply(ticket_id, "It is broken again, please have a look.", at)

    def notes(self, ticket_id: str, public: bool) -> list[str]:
        """What watchdesk wrote on the ticket (not the customer's replies)."""
        return [
            str(n["body"])
            for n in self.local.notes(ticket_id)
            if n["public"] == public and not n["from_customer"]
        ]


class FreshdeskDesk(Helpdesk):
    name = "freshdesk"
    STATES = {2: "open", 3: "pending", 4: "resolved", 5: "closed"}

    def __init__(self, fake: FreshdeskFake) -> None:
        super().__init__()
        self.fake = fake

    def toml(self) -> str:
        return (
            f'[ticketing]\nbackend = "freshdesk"\n[ticketing.freshdesk]\nurl = "{self.fake.url}"\n'
            'api_key_env = "WD_HELPDESK_SECRET"\nrequester_email = "monitoring@acme.example"\n'
        )

    def state(self, ticket_id: str) -> str:
        return self.STATES[self.fake.tickets[int(ticket_id)]["status"]]

    def set_pending(self, ticket_id: str) -> None:
        self.fake.agent_update(ticket_id, {"status": 3})

    def set_open(self, ticket_id: str) -> None:
        self.fake.agent_update(ticket_id, {"status": 2})

    def set_priority(self, ticket_id: str, priority: Priority) -> None:
        self.fake.agent_update(ticket_id, {"priority": FRESHDESK_PRIORITIES[priority]})

    def set_unmapped_priority(self, ticket_id: str) -> bool:
        return False  # Low, Medium, High, Urgent: all four are ours

    def reply(self, ticket_id: str, at: float) -> None:
        self.fake.customer_reply(ticket_id, "It is broken again, please have a look.", at)

    def notes(self, ticket_id: str, public: bool) -> list[str]:
        return [
            str(n["body_text"])
            for n in self.fake.notes[int(ticket_id)]
            if n["kind"] != "customer_reply" and n["private"] != public
        ]


class ZendeskDesk(Helpdesk):
    name = "zendesk"
    STATES = {"new": "open", "open": "open", "pending": "pending", "hold": "pending"}

    def __init__(self, fake: ZendeskFake) -> None:
        super().__init__()
        self.fake = fake

    def toml(self) -> str:
        return (
            f'[ticketing]\nbackend = "zendesk"\n[ticketing.zendesk]\nurl = "{self.fake.url}"\n'
            f'email = "{self.fake.email}"\napi_token_env = "WD_HELPDESK_SECRET"\n'
            'requester_email = "monitoring@acme.example"\n'
        )

    def state(self, ticket_id: str) -> str:
        raw = self.fake.tickets[int(ticket_id)]["status"]
        return {"solved": "resolved"}.get(raw, self.STATES.get(raw, raw))

    def set_pending(self, ticket_id: str) -> None:
        self.fake.agent_update(ticket_id, {"status": "pending"})

    def set_open(self, ticket_id: str) -> None:
        self.fake.agent_update(ticket_id, {"status": "open"})

    def set_priority(self, ticket_id: str, priority: Priority) -> None:
        self.fake.agent_update(ticket_id, {"priority": ZENDESK_PRIORITIES[priority]})

    def set_unmapped_priority(self, ticket_id: str) -> bool:
        self.fake.agent_update(ticket_id, {"priority": None})  # a person cleared the field
        return True

    def reply(self, ticket_id: str, at: float) -> None:
        self.fake.customer_reply(ticket_id, "It is broken again, please have a look.", at)

    def notes(self, ticket_id: str, public: bool) -> list[str]:
        # The first comment is the description; the API agent (author 1) wrote ours.
        return [
            str(c["body"])
            for c in self.fake.comments[int(ticket_id)][1:]
            if c["author_id"] == 1 and c["public"] == public
        ]


class JiraDesk(Helpdesk):
    name = "jira"
    STATES = {"To Do": "open", "In Progress": "open", "Waiting for customer": "pending"}

    def __init__(self, fake: JiraFake) -> None:
        super().__init__()
        self.fake = fake

    def toml(self) -> str:
        return (
            f'[ticketing]\nbackend = "jira"\n[ticketing.jira]\nurl = "{self.fake.url}"\n'
            f'email = "{self.fake.email}"\napi_token_env = "WD_HELPDESK_SECRET"\n'
            'project_key = "OPS"\npending_transition = "Waiting for customer"\n'
        )

    def state(self, ticket_id: str) -> str:
        name = self.fake.issues[ticket_id]["fields"]["status"]["name"]
        return self.STATES.get(name, "closed")  # Done: Jira's one end status

    def set_pending(self, ticket_id: str) -> None:
        self.fake.agent_update(ticket_id, {"status": "Waiting for customer"})

    def set_open(self, ticket_id: str) -> None:
        self.fake.agent_update(ticket_id, {"status": "To Do"})

    def set_priority(self, ticket_id: str, priority: Priority) -> None:
        self.fake.agent_update(ticket_id, {"priority": JIRA_PRIORITIES[priority]})

    def set_unmapped_priority(self, ticket_id: str) -> bool:
        self.fake.agent_update(ticket_id, {"priority": "Lowest"})  # in the scheme, not ours
        return True

    def reply(self, ticket_id: str, at: float) -> None:
        self.fake.customer_reply(ticket_id, "It is broken again, please have a look.", at)

    def notes(self, ticket_id: str, public: bool) -> list[str]:
        return [
            str(c["text"])
            for c in self.fake.comments[ticket_id]
            if c["author"]["accountType"] != "customer" and c["internal"] != public
        ]


class ServiceNowDesk(Helpdesk):
    name = "servicenow"
    STATES = {"1": "open", "2": "open", "3": "pending", "6": "resolved", "7": "closed"}

    def __init__(self, fake: ServiceNowFake) -> None:
        super().__init__()
        self.fake = fake
        self.caller = fake.add_user("jane.caller")

    def toml(self) -> str:
        return (
            f'[ticketing]\nbackend = "servicenow"\n[ticketing.servicenow]\n'
            f'url = "{self.fake.url}"\nusername = "{self.fake.username}"\n'
            f'password_env = "WD_HELPDESK_SECRET"\ncaller_id = "{self.caller}"\n'
        )

    def state(self, ticket_id: str) -> str:
        return self.STATES[self.fake.tickets[ticket_id]["state"]]

    def set_pending(self, ticket_id: str) -> None:
        self.fake.agent_update(ticket_id, {"state": "3", "hold_reason": "1"})

    def set_open(self, ticket_id: str) -> None:
        self.fake.agent_update(ticket_id, {"state": "2", "hold_reason": ""})

    def set_priority(self, ticket_id: str, priority: Priority) -> None:
        urgency, impact = URGENCY_IMPACT[priority]
        self.fake.agent_update(ticket_id, {"urgency": urgency, "impact": impact})

    def set_unmapped_priority(self, ticket_id: str) -> bool:
        # Priority 2 (High) in the lookup, as 1/2 is, but not the pair watchdesk creates.
        self.fake.agent_update(ticket_id, {"urgency": "2", "impact": "1"})
        return True

    def reply(self, ticket_id: str, at: float) -> None:
        self.fake.customer_reply(ticket_id, "It is broken again, please have a look.", at)

    def notes(self, ticket_id: str, public: bool) -> list[str]:
        element = "comments" if public else "work_notes"
        return [
            e["value"]
            for e in self.fake.journal[ticket_id]
            if e["element"] == element and e["sys_created_by"] == self.fake.username
        ]


class GitHubDesk(Helpdesk):
    name = "github"

    def __init__(self, fake: GitHubFake) -> None:
        super().__init__()
        self.fake = fake

    def toml(self) -> str:
        return (
            f'[ticketing]\nbackend = "github"\n[ticketing.github]\nurl = "{self.fake.url}"\n'
            f'repository = "{self.fake.repository}"\ntoken_env = "WD_HELPDESK_SECRET"\n'
        )

    def state(self, ticket_id: str) -> str:
        issue = self.fake.issues[int(ticket_id)]
        if issue["state"] == "closed":
            return "closed"
        return "pending" if "status:pending" in issue["labels"] else "open"

    def set_pending(self, ticket_id: str) -> None:
        labels = self.fake.issues[int(ticket_id)]["labels"]
        self.fake.agent_update(ticket_id, {"labels": [*labels, "status:pending"]})

    def set_open(self, ticket_id: str) -> None:
        labels = self.fake.issues[int(ticket_id)]["labels"]
        self.fake.agent_update(ticket_id, {"labels": [n for n in labels if n != "status:pending"]})

    def set_priority(self, ticket_id: str, priority: Priority) -> None:
        labels = self.fake.issues[int(ticket_id)]["labels"]
        kept = [n for n in labels if not n.startswith("priority:")]
        self.fake.agent_update(ticket_id, {"labels": [*kept, f"priority:{priority}"]})

    def set_unmapped_priority(self, ticket_id: str) -> bool:
        labels = self.fake.issues[int(ticket_id)]["labels"]  # a second label, the old one left
        self.fake.agent_update(ticket_id, {"labels": [*labels, "priority:low", "priority:high"]})
        return True

    def reply(self, ticket_id: str, at: float) -> None:
        self.fake.customer_reply(ticket_id, "It is broken again, please have a look.", at)

    def notes(self, ticket_id: str, public: bool) -> list[str]:
        ours = [
            str(c["body"])
            for c in self.fake.comments[int(ticket_id)]
            if c["user"]["login"] == "watchdesk-bot"
        ]
        return [n for n in ours if n.startswith("**[internal]**") != public]


@asynccontextmanager
async def helpdesk(name: str) -> AsyncIterator[Helpdesk]:
    """The helpdesk ``name`` with its stand-in listening (none for local)."""
    if name == "local":
        yield Helpdesk()
        return
    fakes: dict[str, Callable[[], Any]] = {
        "freshdesk": lambda: FreshdeskFake(api_key=SECRET),
        "zendesk": lambda: ZendeskFake(email="bot@acme.example", token=SECRET),
        "jira": lambda: JiraFake(email="bot@acme.example", token=SECRET),
        "servicenow": lambda: ServiceNowFake(username="watchdesk", password=SECRET),
        "github": lambda: GitHubFake(repository="acme/ops", token=SECRET),
    }
    desks: dict[str, Callable[[Any], Helpdesk]] = {
        "freshdesk": FreshdeskDesk,
        "zendesk": ZendeskDesk,
        "jira": JiraDesk,
        "servicenow": ServiceNowDesk,
        "github": GitHubDesk,
    }
    async with fakes[name]() as fake:
        yield desks[name](fake)
