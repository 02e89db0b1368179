"""The base of every backend's and pager's settings model.

Secrets never sit in config.toml: a secret ``x`` is configured as ``x_env`` (the name of an
environment variable) or ``x_file`` (a file that holds it). ``SECRETS`` lists a model's secret
names and ``REQUIRED_SECRETS`` the ones it cannot work without; the agent resolves them when it
builds the integration, so values never pass through config objects, logs or errors.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict, model_validator


class IntegrationSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    SECRETS: ClassVar[tuple[str, ...]] = ()
    REQUIRED_SECRETS: ClassVar[tuple[str, ...]] = ()
    # Keys written as durations ("30s", "7d"); the config loader turns them into seconds.
    DURATIONS: ClassVar[tuple[str, ...]] = ()

    @model_validator(mode="after")
    def _one_source_per_secret(self) -> IntegrationSettings:
        for name in self.SECRETS:
            from_env = getattr(self, f"{name}_env", None)
            from_file = getattr(self, f"{name}_file", None)
            if from_env and from_file:
                raise ValueError(f"set either {name}_env or {name}_file, not both")
            if name in self.REQUIRED_SECRETS and not (from_env or from_file):
                raise ValueError(
                    f"{name} is required: set {name}_env to the name of an environment "
                    f"variable that holds it, or {name}_file to a file that holds it"
                )
        return self

    def secret_source(self, name: str) -> tuple[str, str] | None:
        """("env", VAR) or ("file", PATH) for the secret ``name``, or None when not configured."""
        from_env = getattr(self, f"{name}_env", None)
        if from_env:
            return ("env", from_env)
        from_file = getattr(self, f"{name}_file", None)
        if from_file:
            return ("file", from_file)
        return None
