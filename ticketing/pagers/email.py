"""Pages by SMTP email, plain text that a phone shows well.

Sent with the standard library's ``smtplib`` in a worker thread (``asyncio.to_thread``), one
connection per mail (https://docs.python.org/3/library/smtplib.html):

- ``starttls = true`` (default, port 587, RFC 3207): ``STARTTLS`` before anything else; a server
  that does not offer it is refused rather than sent a password in clear. ``ssl = true`` (port
  465, RFC 8314): TLS from the first byte. Either way the server certificate and host name are
  verified, against the system's CAs or, with ``ca_file``, against that file only (a private
  CA). ``starttls = false`` and ``ssl = false``: plain SMTP, for a relay on localhost.
- ``username`` set: ``AUTH`` (smtplib picks CRAM-MD5, PLAIN or LOGIN), the password being the
  secret.
- Reply codes, as RFC 5321 section 4.2.1 defines them: 4yz is transient -> ``RetryableError``;
  5yz is permanent (535 bad credentials, 550 no such mailbox, 554) -> ``PermanentError`` with the
  server's own reply. Refused connections, timeouts and lost connections are retried; a
  certificate that does not verify is a ``PermanentError`` (retrying will not fix it).

A page is a mail whose subject is the page's summary and whose first lines say what is down,
the last error, since when and the ticket link; headers ``X-Watchdesk-Dedup`` (the incident's
key) and ``References`` (one thread per incident in mail clients). ``resolve`` sends a short
"[RESOLVED] <summary>" mail in the same thread, so ``supports_resolve`` is True. Email cannot
tell who read it: ``acknowledged`` answers None. ``send`` mails anything else (scheduled
reports) over the same connection code, to recipients of its own.
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import logging
import smtplib
import ssl
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import ClassVar, Final

from pydantic import Field, model_validator

from ticketing.errors import DeliveryError, PermanentError, RetryableError
from ticketing.http import DEFAULT_TIMEOUT
from ticketing.pagers.base import Page
from ticketing.settings import IntegrationSettings

log = logging.getLogger(__name__)

DEDUP_HEADER: Final = "X-Watchdesk-Dedup"
REASONS: Final = {
    "open": "new incident",
    "escalation": "escalation: nobody is working the ticket yet",
    "test": "test page, nothing is down",
    "database": "watchdesk cannot reach its database: nothing opens or is sent",
}
SIGNATURE: Final = "-- \nwatchdesk"


class EmailSettings(IntegrationSettings):
    SECRETS: ClassVar[tuple[str, ...]] = ("password",)

    to: list[str] = Field(min_length=1)
    from_address: str = "watchdesk@localhost"
    smtp_host: str
    smtp_port: int = Field(default=587, ge=1, le=65535)
    starttls: bool = True
    ssl: bool = False
    username: str | None = None
    password_env: str | None = None
    password_file: str | None = None
    ca_file: str | None = None

    @model_validator(mode="after")
    def _login_needs_both(self) -> EmailSettings:
        has_password = bool(self.password_env or self.password_file)
        if has_password and not self.username:
            raise ValueError("password_env/password_file is set but username is not")
        if self.ssl and self.starttls:
            raise ValueError("ssl (implicit TLS, port 465) and starttls exclude each other")
        return self


# --- pure message building -----------------------------------------------------------------


def one_line(text: str) -> str:
    return " ".join(text.split())


def sender_domain(settings: EmailSettings) -> str:
    _, address = email.utils.parseaddr(settings.from_address)
    domain = address.rpartition("@")[2]
    return domain or "localhost"


def thread_id(dedup_key: str, domain: str) -> str:
    """A Message-ID-shaped anchor shared by every mail of one incident (``References``)."""
    digest = hashlib.sha256(dedup_key.encode()).hexdigest()[:24]
    return f"<watchdesk.{digest}@{domain}>"


def page_body(page: Page) -> str:
    lines = [line.rstrip() for line in page.details.strip().splitlines()]
    if page.ticket_url:
        lines.append(f"Ticket: {page.ticket_url}")
    lines += [
        "",
        f"Priority: {page.priority}",
        f"Why: {REASONS.get(page.reason, page.reason)}",
        f"Key: {page.dedup_key}",
        SIGNATURE,
    ]
    return "\n".join(lines) + "\n"


def resolve_body(dedup_key: str, summary: str) -> str:
    return f"{summary}\n\nKey: {dedup_key}\n{SIGNATURE}\n"


def _message(
    settings: EmailSettings,
    subject: str,
    body: str,
    dedup_key: str,
    now: datetime,
    message_id: str,
) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = one_line(subject)
    message["From"] = settings.from_address
    message["To"] = ", ".join(settings.to)
    message["Date"] = email.utils.format_datetime(now.astimezone(UTC))
    message["Message-ID"] = message_id
    message["References"] = thread_id(dedup_key, sender_domain(settings))
    message[DEDUP_HEADER] = dedup_key
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies to this
    message.set_content(body)
    return message


def page_message(
    page: Page, settings: EmailSettings, now: datetime, message_id: str
) -> EmailMessage:
    return _message(settings, page.summary, page_body(page), page.dedup_key, now, message_id)


def resolve_message(
    dedup_key: str, summary: str, settings: EmailSettings, now: datetime, message_id: str
) -> EmailMessage:
    return _message(
        settings,
        f"[RESOLVED] {summary}",
        resolve_body(dedup_key, summary),
        dedup_key,
        now,
        message_id,
    )


def new_message_id(settings: EmailSettings) -> str:
    return email.utils.make_msgid("watchdesk", domain=sender_domain(settings))


# --- SMTP errors -> delivery errors --------------------------------------------------------


def reply_text(reply: bytes | str) -> str:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    return one_line(text)


def by_code(code: int, text: str) -> DeliveryError:
    message = f"email: {code} {text}".rstrip()
    if 500 <= code < 600:
        return PermanentError(message)
    return RetryableError(message)


def delivery_error(exc: BaseException, timeout: float) -> DeliveryError:
    """What an ``smtplib``/``ssl``/socket failure means for the outbox."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        replies = sorted(exc.recipients.items())
        text = "; ".join(f"{addr}: {code} {reply_text(msg)}" for addr, (code, msg) in replies)
        transient = any(400 <= code < 500 for _, (code, _) in replies)
        error_type = RetryableError if transient else PermanentError
        return error_type(f"email: every recipient refused: {text}")
    if isinstance(exc, smtplib.SMTPResponseException):
        return by_code(exc.smtp_code, reply_text(exc.smtp_error))
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return PermanentError(f"email: {exc}")
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        if isinstance(exc.__context__, TimeoutError):  # smtplib wraps a read timeout
            return RetryableError(f"email: no answer within {timeout:g}s")
        return RetryableError(f"email: connection lost: {exc}")
    if isinstance(exc, smtplib.SMTPException):
        if "authentication method" in str(exc):
            return PermanentError(f"email: {exc}")
        return RetryableError(f"email: {exc}")
    if isinstance(exc, ssl.SSLCertVerificationError):
        reason = exc.verify_message or exc.reason or str(exc)
        return PermanentError(f"email: TLS certificate verification failed: {reason}")
    if isinstance(exc, ssl.SSLError):
        return RetryableError(f"email: TLS failed: {exc.reason or exc}")
    if isinstance(exc, TimeoutError):
        return RetryableError(f"email: no answer within {timeout:g}s")
    if isinstance(exc, OSError):
        return RetryableError(f"email: cannot connect: {exc.strerror or type(exc).__name__}")
    return RetryableError(f"email: {type(exc).__name__}")


# --- the pager -----------------------------------------------------------------------------


class EmailPager:
    name = "email"
    # Not a service-side resolve: a short "[RESOLVED]" mail in the incident's thread.
    supports_resolve = True

    def __init__(
        self, settings: EmailSettings, secret: str | None, timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        self.settings = settings
        self._password = secret
        self._timeout = timeout

    def _tls_context(self) -> ssl.SSLContext:
        try:
            return ssl.create_default_context(cafile=self.settings.ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise PermanentError(
                f"email: cannot load ca_file {self.settings.ca_file}: "
                f"{getattr(exc, 'strerror', None) or exc}"
            ) from None

    def _send_sync(self, message: EmailMessage, recipients: list[str]) -> None:
        settings = self.settings
        client: smtplib.SMTP
        if settings.ssl:
            client = smtplib.SMTP_SSL(
                settings.smtp_host,
                settings.smtp_port,
                timeout=self._timeout,
                context=self._tls_context(),
            )
        else:
            client = smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=self._timeout)
        try:
            if settings.starttls and not settings.ssl:
                client.starttls(context=self._tls_context())
            if settings.username:
                client.login(settings.username, self._password or "")
            refused = client.send_message(
                message, from_addr=settings.from_address, to_addrs=recipients
            )
        except BaseException:
            client.close()  # no QUIT on a connection in an unknown state
            raise
        try:
            client.quit()
        except (smtplib.SMTPException, OSError):
            client.close()
        if refused:
            # Some recipients have it; sending again would page them twice.
            log.warning(
                "email: %s refused: %s",
                ", ".join(sorted(refused)),
                "; ".join(f"{code} {reply_text(text)}" for code, text in refused.values()),
            )

    async def send(self, message: EmailMessage, recipients: list[str]) -> None:
        """Send any mail through this pager's SMTP settings (connection, TLS, login, error
        mapping): what scheduled reports go out by."""
        try:
            await asyncio.to_thread(self._send_sync, message, recipients)
        except DeliveryError as error:
            raise self._scrub(error) from None
        except Exception as exc:
            raise self._scrub(delivery_error(exc, self._timeout)) from None

    def _scrub(self, error: DeliveryError) -> DeliveryError:
        if not self._password or self._password not in error.message:
            return error
        return type(error)(error.message.replace(self._password, "***"))

    async def page(self, page: Page) -> None:
        now = datetime.now(UTC)
        await self.send(
            page_message(page, self.settings, now, new_message_id(self.settings)), self.settings.to
        )

    async def resolve(self, dedup_key: str, summary: str) -> None:
        now = datetime.now(UTC)
        message = resolve_message(
            dedup_key, summary, self.settings, now, new_message_id(self.settings)
        )
        await self.send(message, self.settings.to)

    async def acknowledged(self, dedup_key: str) -> bool | None:
        return None

    async def aclose(self) -> None:
        return None
