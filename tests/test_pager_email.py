"""EmailPager: the exact mail, then delivery to a real SMTP server (aiosmtpd) over STARTTLS or
implicit TLS with a trustme certificate, and every way SMTP says no."""

from __future__ import annotations

import email.utils
import smtplib
import socket
import ssl
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.fakes.smtp import SmtpFake
from tests.helpers import closed_port
from ticketing.errors import DeliveryError, PermanentError, RetryableError
from ticketing.pagers.base import Page
from ticketing.pagers.email import (
    EmailPager,
    EmailSettings,
    delivery_error,
    page_body,
    page_message,
    resolve_message,
    thread_id,
)

USER = "watchdesk"
PASSWORD = "s3cret-smtp-pass"
TIMEOUT = 0.5
NOW = datetime(2026, 3, 1, 15, 4, 5, tzinfo=UTC)

PAGE = Page(
    dedup_key="watchdesk-web-17",
    summary="[URGENT] web is down",
    details="web is down: status 503\nSince: 2026-03-01 10:00 EST\n"
    "Check: HTTP GET of https://web.acme.example/health",
    priority="urgent",
    reason="open",
    target="web",
    customer="acme",
    ticket_url="https://acme.freshdesk.com/a/tickets/1",
)

BODY = (
    "web is down: status 503\n"
    "Since: 2026-03-01 10:00 EST\n"
    "Check: HTTP GET of https://web.acme.example/health\n"
    "Ticket: https://acme.freshdesk.com/a/tickets/1\n"
    "\n"
    "Priority: urgent\n"
    "Why: new incident\n"
    "Key: watchdesk-web-17\n"
    "-- \n"
    "watchdesk\n"
)


def settings(smtp: SmtpFake | None = None, **extra: object) -> EmailSettings:
    values: dict[str, object] = {
        "to": ["ops-manager@example.com", "oncall@example.com"],
        "from_address": "Watchdesk <watchdesk@acme.example>",
        "smtp_host": smtp.host if smtp else "smtp.example.com",
        "smtp_port": smtp.port if smtp else 587,
        "username": USER,
        "password_env": "SMTP_PASSWORD",
    }
    if smtp is not None:
        values["ca_file"] = smtp.ca_file
    return EmailSettings.model_validate({**values, **extra})


@pytest.fixture
def smtp() -> Iterator[SmtpFake]:
    with SmtpFake(USER, PASSWORD) as server:
        yield server


# --- the mail itself -------------------------------------------------------------------------


def test_page_body_is_exact() -> None:
    assert page_body(PAGE) == BODY
    bare = Page("k-1", "[LOW] db is down", "db is down: refused", "low", "escalation", "db")
    assert page_body(bare) == (
        "db is down: refused\n\nPriority: low\n"
        "Why: escalation: nobody is working the ticket yet\nKey: k-1\n-- \nwatchdesk\n"
    )


def test_page_message_headers() -> None:
    message = page_message(PAGE, settings(), NOW, "<id-1@acme.example>")
    assert message["Subject"] == "[URGENT] web is down"
    assert message["From"] == "Watchdesk <watchdesk@acme.example>"
    assert message["To"] == "ops-manager@example.com, oncall@example.com"
    assert message["Date"] == "Sun, 01 Mar 2026 15:04:05 +0000"
    assert message["Message-ID"] == "<id-1@acme.example>"
    assert message["X-Watchdesk-Dedup"] == "watchdesk-web-17"
    assert message["References"] == thread_id("watchdesk-web-17", "acme.example")
    assert message["Auto-Submitted"] == "auto-generated"
    assert message.get_content_type() == "text/plain"
    assert message.get_content() == BODY


def test_resolve_message() -> None:
    message = resolve_message(
        "watchdesk-web-17", "web recovered after 12m", settings(), NOW, "<id-2@acme.example>"
    )
    assert message["Subject"] == "[RESOLVED] web recovered after 12m"
    assert message["X-Watchdesk-Dedup"] == "watchdesk-web-17"
    # Same thread as the page: mail clients group them.
    assert message["References"] == thread_id("watchdesk-web-17", "acme.example")
    assert message.get_content() == (
        "web recovered after 12m\n\nKey: watchdesk-web-17\n-- \nwatchdesk\n"
    )


def test_multi_line_summary_is_one_subject_line() -> None:
    page = Page("k", "web\nis down", "d", "high", "open", "web")
    assert page_message(page, settings(), NOW, "<x@y>")["Subject"] == "web is down"


@pytest.mark.parametrize(
    ("error", "kind", "text"),
    [
        (smtplib.SMTPAuthenticationError(535, b"5.7.8 bad"), PermanentError, "email: 535 5.7.8"),
        (smtplib.SMTPAuthenticationError(454, b"4.7.0 later"), RetryableError, "454"),
        (smtplib.SMTPSenderRefused(553, b"5.7.1 no", "a@b"), PermanentError, "553"),
        (smtplib.SMTPDataError(452, b"4.3.1 full"), RetryableError, "452 4.3.1 full"),
        (smtplib.SMTPConnectError(421, b"busy"), RetryableError, "421 busy"),
        (smtplib.SMTPServerDisconnected("gone"), RetryableError, "connection lost"),
        (smtplib.SMTPNotSupportedError("no STARTTLS"), PermanentError, "no STARTTLS"),
        (TimeoutError(), RetryableError, "no answer within 0.5s"),
        (ConnectionRefusedError(111, "Connection refused"), RetryableError, "refused"),
        (socket.gaierror(-2, "Name or service not known"), RetryableError, "not known"),
    ],
)
def test_delivery_errors(error: Exception, kind: type[DeliveryError], text: str) -> None:
    mapped = delivery_error(error, TIMEOUT)
    assert type(mapped) is kind
    assert text in mapped.message


def test_recipients_refused() -> None:
    permanent = smtplib.SMTPRecipientsRefused({"a@x": (550, b"5.1.1 User unknown")})
    assert isinstance(delivery_error(permanent, TIMEOUT), PermanentError)
    assert "a@x: 550 5.1.1 User unknown" in delivery_error(permanent, TIMEOUT).message
    mixed = smtplib.SMTPRecipientsRefused({"a@x": (550, b"no"), "b@x": (450, b"greylisted")})
    assert isinstance(delivery_error(mixed, TIMEOUT), RetryableError)


# --- against a real SMTP server --------------------------------------------------------------


async def test_starttls_login_delivers(smtp: SmtpFake) -> None:
    pager = EmailPager(settings(smtp), PASSWORD, timeout=TIMEOUT)
    assert pager.name == "email"
    await pager.page(PAGE)
    assert len(smtp.messages) == 1
    received = smtp.messages[0]
    assert received.tls is True
    assert received.login == USER
    assert received.mail_from == "watchdesk@acme.example"
    assert received.rcpt_tos == ("ops-manager@example.com", "oncall@example.com")
    message = received.message
    assert message["Subject"] == "[URGENT] web is down"
    assert message["From"] == "Watchdesk <watchdesk@acme.example>"
    assert message["To"] == "ops-manager@example.com, oncall@example.com"
    assert message["X-Watchdesk-Dedup"] == "watchdesk-web-17"
    assert message["Message-ID"].endswith("@acme.example>")
    sent = email.utils.parsedate_to_datetime(message["Date"])
    assert abs((datetime.now(UTC) - sent).total_seconds()) < 60
    assert message.get_content().replace("\r\n", "\n") == BODY
    assert await pager.acknowledged(PAGE.dedup_key) is None
    await pager.aclose()


async def test_resolve_sends_a_short_mail(smtp: SmtpFake) -> None:
    pager = EmailPager(settings(smtp), PASSWORD, timeout=TIMEOUT)
    assert pager.supports_resolve is True
    await pager.page(PAGE)
    await pager.resolve(PAGE.dedup_key, "web recovered after 12m")
    page_mail, resolved = (r.message for r in smtp.messages)
    assert resolved["Subject"] == "[RESOLVED] web recovered after 12m"
    assert resolved["References"] == page_mail["References"]
    assert resolved["Message-ID"] != page_mail["Message-ID"]
    assert "web recovered after 12m" in resolved.get_content()


async def test_implicit_tls() -> None:
    with SmtpFake(USER, PASSWORD, mode="ssl") as server:
        pager = EmailPager(settings(server, ssl=True, starttls=False), PASSWORD, timeout=TIMEOUT)
        await pager.page(PAGE)
        assert [(m.tls, m.login) for m in server.messages] == [(True, USER)]


async def test_local_relay_without_tls_or_login() -> None:
    with SmtpFake(None, mode="plain") as server:
        config = settings(server, starttls=False, username=None, password_env=None)
        await EmailPager(config, None, timeout=TIMEOUT).page(PAGE)
        assert [(m.tls, m.login) for m in server.messages] == [(False, None)]


async def test_wrong_password_is_permanent_and_secret_free(smtp: SmtpFake) -> None:
    wrong = "wrong-pass-123"
    pager = EmailPager(settings(smtp), wrong, timeout=TIMEOUT)
    with pytest.raises(PermanentError) as caught:
        await pager.page(PAGE)
    assert caught.value.message.startswith("email: 535")
    assert "Authentication credentials invalid" in caught.value.message
    assert wrong not in str(caught.value)
    assert PASSWORD not in str(caught.value)
    assert smtp.messages == []
    assert smtp.auth_attempts[-1][1:] == (USER, False)


async def test_nothing_listening_is_retryable() -> None:
    config = settings(smtp_host="127.0.0.1", smtp_port=closed_port())
    with pytest.raises(RetryableError, match="cannot connect") as caught:
        await EmailPager(config, PASSWORD, timeout=TIMEOUT).page(PAGE)
    assert not isinstance(caught.value, PermanentError)


async def test_silent_server_times_out() -> None:
    with socket.socket() as listener:  # accepts TCP, never says hello
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        config = settings(smtp_host="127.0.0.1", smtp_port=port)
        with pytest.raises(RetryableError, match=r"no answer within 0\.5s"):
            await EmailPager(config, PASSWORD, timeout=TIMEOUT).page(PAGE)


async def test_untrusted_certificate_is_permanent(smtp: SmtpFake) -> None:
    pager = EmailPager(settings(smtp, ca_file=smtp.other_ca_file), PASSWORD, timeout=TIMEOUT)
    with pytest.raises(PermanentError, match="TLS certificate verification failed"):
        await pager.page(PAGE)
    assert smtp.auth_attempts == []  # the password never left
    assert smtp.messages == []


async def test_system_cas_do_not_trust_a_private_ca(smtp: SmtpFake) -> None:
    pager = EmailPager(settings(smtp, ca_file=None), PASSWORD, timeout=TIMEOUT)
    with pytest.raises(PermanentError, match="certificate"):
        await pager.page(PAGE)


async def test_missing_ca_file_is_permanent(smtp: SmtpFake, tmp_path: Path) -> None:
    config = settings(smtp, ca_file=str(tmp_path / "nope.pem"))
    with pytest.raises(PermanentError, match="cannot load ca_file"):
        await EmailPager(config, PASSWORD, timeout=TIMEOUT).page(PAGE)


async def test_server_without_starttls_gets_no_password() -> None:
    with SmtpFake(USER, PASSWORD, mode="plain") as server:
        pager = EmailPager(settings(server), PASSWORD, timeout=TIMEOUT)
        with pytest.raises(PermanentError, match="STARTTLS"):
            await pager.page(PAGE)
        assert server.auth_attempts == []


async def test_temporary_failure_is_retryable(smtp: SmtpFake) -> None:
    smtp.fail_next("data", "451 4.3.0 Mail server temporarily rejected message")
    pager = EmailPager(settings(smtp), PASSWORD, timeout=TIMEOUT)
    with pytest.raises(RetryableError) as caught:
        await pager.page(PAGE)
    assert caught.value.message == "email: 451 4.3.0 Mail server temporarily rejected message"
    await pager.page(PAGE)
    assert len(smtp.messages) == 1


async def test_unknown_mailbox_is_permanent(smtp: SmtpFake) -> None:
    reply = "550 5.1.1 <{0}>: Recipient address rejected: User unknown"
    for address in ("ops-manager@example.com", "oncall@example.com"):
        smtp.reject(address, reply.format(address))
    with pytest.raises(PermanentError) as caught:
        await EmailPager(settings(smtp), PASSWORD, timeout=TIMEOUT).page(PAGE)
    assert "Recipient address rejected: User unknown" in caught.value.message
    assert "550" in caught.value.message


async def test_one_refused_recipient_still_delivers(smtp: SmtpFake) -> None:
    smtp.reject("oncall@example.com", "550 5.1.1 User unknown")
    await EmailPager(settings(smtp), PASSWORD, timeout=TIMEOUT).page(PAGE)
    assert [m.rcpt_tos for m in smtp.messages] == [("ops-manager@example.com",)]


def test_tls_context_verifies_host_names(smtp: SmtpFake) -> None:
    pager = EmailPager(settings(smtp), PASSWORD, timeout=TIMEOUT)
    context = pager._tls_context()
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname is True
