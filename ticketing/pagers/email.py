"""Pages by SMTP email, plain text that a phone shows well."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, model_validator

from ticketing.settings import IntegrationSettings


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
