"""What customers read follows the policy's correspondence rules, and a customer's own
templates replace the defaults, in a sandbox."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import jinja2.exceptions
import pytest

from monitor.policy import texts
from tests.agent_harness import Harness

CONFIG = """
[defaults]
interval = "30s"
failure_threshold = 2
recovery_threshold = 1

[[targets]]
name = "web"
kind = "http"
url = "https://www.acme.example/health"
customer = "acme"

[[targets]]
name = "shop"
kind = "tcp"
host = "127.0.0.1"
port = 9
customer = "globex"

[customers.acme]
email = "it@acme.example"
name = "Acme IT"

[customers.globex]
email = "ops@globex.example"
TEMPLATES
"""


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Callable[[str], Awaitable[Harness]]]:
    made: list[Harness] = []

    async def build(extra: str = "") -> Harness:
        h = await Harness.create(tmp_path / "state", CONFIG.replace("TEMPLATES", extra))
        made.append(h)
        return h

    yield build
    for h in made:
        await h.close()


async def test_the_ticket_and_the_recovery_note_are_courteous_and_complete(
    harness: Callable[[str], Awaitable[Harness]],
) -> None:
    h = await harness("")
    await h.fail("web", 2, reason="status 503")
    await h.succeed("web")
    await h.deliver()
    (ticket, *_) = h.tickets()
    description = str(ticket["description"])
    assert description.startswith("Hello Acme IT,")  # a polite opening, by name
    assert "Last error: status 503" in description  # what is known
    assert "What happens next:" in description
    assert "just reply to this ticket" in description  # an offer of further help
    assert "Thank you" in description
    (note,) = h.notes(ticket["id"])
    assert note.startswith("Hello Acme IT,")
    assert "web has recovered at" in note
    assert "How it was resolved: it recovered by itself" in note
    assert "Thank you for your patience" in note


async def test_a_customers_own_template_replaces_the_default_for_that_customer_only(
    harness: Callable[[str], Awaitable[Harness]], tmp_path: Path
) -> None:
    own = tmp_path / "globex-templates"
    own.mkdir()
    (own / "recovery_note.txt.j2").write_text(
        "Dear Globex team, {{ target }} is back since {{ recovered_at }}. Regards."
    )
    h = await harness(f'templates = "{own}"')
    await h.fail("shop", 2)
    await h.succeed("shop")
    await h.fail("web", 2)
    await h.succeed("web")
    await h.deliver()
    notes = {str(t["subject"]): h.notes(t["id"]) for t in h.tickets()}
    assert notes["[URGENT] shop is down"] == [
        "Dear Globex team, shop is back since 2026-11-24 10:01:00 UTC. Regards."
    ]
    assert notes["[URGENT] web is down"][0].startswith("Hello Acme IT,")
    # Templates the customer did not write come from the defaults.
    shop = next(t for t in h.tickets() if t["subject"] == "[URGENT] shop is down")
    assert str(shop["description"]).startswith("Hello,")


def test_templates_run_in_a_sandbox(tmp_path: Path) -> None:
    (tmp_path / "recovery_note.txt.j2").write_text(
        "{{ target.__class__.__mro__[1].__subclasses__() }}"
    )
    texts.environment.cache_clear()
    with pytest.raises(jinja2.exceptions.SecurityError):
        texts.render("recovery_note", str(tmp_path), target="web")


async def test_the_closing_note_is_courteous_and_a_customer_may_word_it_their_way(
    harness: Callable[[str], Awaitable[Harness]], tmp_path: Path
) -> None:
    own = tmp_path / "globex-templates"
    own.mkdir()
    (own / "auto_close.txt.j2").write_text(
        "Dear Globex, we close the {{ target }} ticket after {{ after }}; reply to reopen it."
    )
    h = await harness(f'templates = "{own}"')
    for target in ("web", "shop"):
        await h.fail(target, 2)
        await h.succeed(target)
    await h.deliver()
    h.clock.advance(7 * 86400 + 60)
    await h.agent.policy.follow_up.sweep()
    await h.deliver()
    closing = {str(t["subject"]): h.notes(t["id"])[-1] for t in h.tickets()}
    web = closing["[URGENT] web is down"]
    assert web.startswith("Hello Acme IT,")
    assert "closed after 7 days without reply" in web  # what happens, and why
    assert "web has been working normally since it recovered at 2026-11-24" in web
    assert "all you have to do is reply, and the ticket will open again" in web
    assert "Thank you" in web
    assert closing["[URGENT] shop is down"] == (
        "Dear Globex, we close the shop ticket after 7 days; reply to reopen it."
    )
