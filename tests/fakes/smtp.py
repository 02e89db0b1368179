"""A real SMTP server for tests: aiosmtpd on 127.0.0.1 with a trustme certificate.

In a test::

    with SmtpFake(user="watchdesk", password="pw") as smtp:   # STARTTLS + AUTH by default
        settings = {"smtp_host": smtp.host, "smtp_port": smtp.port, "ca_file": smtp.ca_file, ...}
        ...
        message = smtp.messages[0].message        # an email.message.EmailMessage
        smtp.fail_next("data", "451 4.3.0 Try again later")
        smtp.reject("nobody@example.com", "550 5.1.1 <nobody@example.com>: User unknown")

Modes: ``"starttls"`` (plain connection, ``STARTTLS`` offered and required before ``MAIL``;
``AUTH`` only offered after it: ``auth_require_tls``), ``"ssl"`` (TLS from the first byte, as
on port 465) and ``"plain"`` (no TLS at all). With a ``user``, ``AUTH PLAIN``/``LOGIN`` are
offered and a ``MAIL`` without a successful ``AUTH`` gets 530; a wrong password gets aiosmtpd's
``535 5.7.8 Authentication credentials invalid``.

The certificate is issued by a throwaway CA for ``localhost`` and ``127.0.0.1``; ``ca_file`` is
that CA in PEM, what a client must trust. ``other_ca_file`` is another CA's PEM: trusting only
it makes verification fail, as a wrong private CA would.

Standalone, for a test that runs the agent in another process::

    python -m tests.fakes.smtp --port 2525 --user U --password P --ca-out ca.pem --spool DIR
    # prints "ready" once it listens; each message is written to DIR/0001.eml, ...
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import ssl
import sys
import tempfile
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Literal, Self

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tests.helpers import free_port

Mode = Literal["starttls", "ssl", "plain"]
Stage = Literal["mail", "rcpt", "data"]


@dataclass(frozen=True)
class Received:
    """One message the server accepted."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes
    message: EmailMessage
    tls: bool  # the message came over TLS (STARTTLS or implicit)
    login: str | None  # the user that authenticated, if any


class _Handler:
    def __init__(self, fake: SmtpFake) -> None:
        self.fake = fake

    async def handle_MAIL(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        failure = self.fake._take_failure("mail")
        if failure is not None:
            return failure
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        failure = self.fake._take_failure("rcpt")
        if failure is not None:
            return failure
        rejection = self.fake.rejected.get(address.lower())
        if rejection is not None:
            return rejection
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        failure = self.fake._take_failure("data")
        if failure is not None:
            return failure
        raw = envelope.original_content or b""
        if isinstance(envelope.content, bytes) and not raw:
            raw = envelope.content
        auth = session.auth_data
        received = Received(
            mail_from=str(envelope.mail_from),
            rcpt_tos=tuple(envelope.rcpt_tos),
            raw=raw,
            message=message_from_bytes(raw, policy=policy.default),
            tls=server.transport is not None
            and server.transport.get_extra_info("ssl_object") is not None,
            login=auth.login.decode() if isinstance(auth, LoginPassword) else None,
        )
        self.fake._store(received)
        return "250 2.0.0 Message accepted for delivery"


class _Controller(Controller):
    """aiosmtpd only counts STARTTLS as TLS for ``auth_require_tls`` (and warns when it is off):
    this one offers AUTH on an implicit-TLS connection too, and on a plain one in "plain" mode."""

    def __init__(self, handler: Any, *, auth_without_starttls: bool, **options: Any) -> None:
        super().__init__(handler, **options)
        self.auth_without_starttls = auth_without_starttls

    def factory(self) -> SMTP:
        server: SMTP = super().factory()  # type: ignore[no-untyped-call]
        if self.auth_without_starttls:
            server._auth_require_tls = False
        return server


class SmtpFake:
    """aiosmtpd in a thread of its own; ``start()``/``stop()`` or a (sync/async) ``with``."""

    def __init__(
        self,
        user: str | None = "watchdesk",
        password: str = "smtp-password",
        *,
        mode: Mode = "starttls",
        host: str = "127.0.0.1",
        port: int = 0,
        spool: Path | None = None,
    ) -> None:
        self.user = user
        self.password = password
        self.mode = mode
        self.host = host
        self.port = port
        self.spool = spool
        self.messages: list[Received] = []
        self.auth_attempts: list[tuple[str, str, bool]] = []  # (mechanism, login, success)
        self.rejected: dict[str, str] = {}  # recipient (lower case) -> reply
        self._failures: dict[str, deque[str]] = {s: deque() for s in ("mail", "rcpt", "data")}
        self._lock = threading.Lock()
        self._dir = tempfile.TemporaryDirectory(prefix="smtp-fake-")
        self.ca = trustme.CA()
        self._cert = self.ca.issue_cert("localhost", "127.0.0.1")
        self.ca_file = str(Path(self._dir.name) / "ca.pem")
        self.ca.cert_pem.write_to_path(self.ca_file)
        self.other_ca_file = str(Path(self._dir.name) / "other-ca.pem")
        trustme.CA().cert_pem.write_to_path(self.other_ca_file)
        self._controller: Controller | None = None

    # --- scripting -------------------------------------------------------------------------

    def fail_next(self, stage: Stage, reply: str, count: int = 1) -> None:
        """Answer the next ``count`` MAIL / RCPT / DATA commands with ``reply`` (e.g. "451 ...")."""
        with self._lock:
            self._failures[stage].extend(reply for _ in range(count))

    def reject(self, recipient: str, reply: str) -> None:
        """Refuse ``recipient`` at RCPT with ``reply`` (e.g. "550 5.1.1 ... User unknown")."""
        self.rejected[recipient.lower()] = reply

    def _take_failure(self, stage: str) -> str | None:
        with self._lock:
            queue = self._failures[stage]
            return queue.popleft() if queue else None

    def _store(self, received: Received) -> None:
        with self._lock:
            self.messages.append(received)
            if self.spool is not None:
                self.spool.mkdir(parents=True, exist_ok=True)
                (self.spool / f"{len(self.messages):04d}.eml").write_bytes(received.raw)

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        if not isinstance(data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login, password = data.login.decode(), data.password.decode()
        ok = login == self.user and password == self.password
        with self._lock:
            self.auth_attempts.append((mechanism, login, ok))
        return AuthResult(success=ok, handled=False, auth_data=data if ok else None)

    # --- serving ---------------------------------------------------------------------------

    def _server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._cert.configure_cert(context)
        return context

    def start(self) -> tuple[str, int]:
        if not self.port:
            self.port = free_port()
        options: dict[str, Any] = {"hostname": self.host, "port": self.port}
        if self.user is not None:
            options |= {"authenticator": self._authenticate, "auth_required": True}
        if self.mode == "starttls":
            options |= {"tls_context": self._server_context(), "require_starttls": True}
        elif self.mode == "ssl":
            options |= {"ssl_context": self._server_context(), "server_hostname": "localhost"}
        self._controller = _Controller(
            _Handler(self), auth_without_starttls=self.mode != "starttls", **options
        )
        self._controller.start()
        return self.host, self.port

    def stop(self) -> None:
        if self._controller is not None:
            with contextlib.suppress(AssertionError, RuntimeError):
                self._controller.stop()
            self._controller = None

    def close(self) -> None:
        self.stop()
        self._dir.cleanup()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self.__enter__()

    async def __aexit__(self, *exc: object) -> None:
        self.close()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A real SMTP server (aiosmtpd) for tests.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--mode", choices=["starttls", "ssl", "plain"], default="starttls")
    parser.add_argument("--user", default="watchdesk", help="empty: no AUTH")
    parser.add_argument("--password", default="smtp-password")
    parser.add_argument("--ca-out", type=Path, help="write the CA certificate (PEM) here")
    parser.add_argument("--spool", type=Path, help="write each message here as NNNN.eml")
    args = parser.parse_args(argv)
    fake = SmtpFake(
        args.user or None,
        args.password,
        mode=args.mode,
        host=args.host,
        port=args.port,
        spool=args.spool,
    )
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    with fake:
        if args.ca_out is not None:
            fake.ca.cert_pem.write_to_path(str(args.ca_out))
        print(f"smtp fake listening on {fake.host}:{fake.port}", file=sys.stderr, flush=True)
        print("ready", flush=True)
        done.wait()


if __name__ == "__main__":
    main()
