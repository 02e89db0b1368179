"""Problems pinned to the file: every one collected, each with its dotted key path and line,
in words a person can act on ("unknown key ... did you mean ...")."""

from __future__ import annotations

import difflib
from functools import cached_property
from typing import Any

from pydantic import (
    BaseModel,
    ValidationError,
)

from monitor.config.tomlpos import Path as KeyPath
from monitor.config.tomlpos import key_lines, line_of
from monitor.errors import ConfigProblem


class Collector:
    """Gathers problems with their lines so the user sees all of them in one run."""

    def __init__(self, source: str, text: str) -> None:
        self.source = source
        self._text = text
        self.problems: list[ConfigProblem] = []

    @cached_property
    def lines(self) -> dict[KeyPath, int]:
        """Where each key is written; scanned at the first problem only (a valid 50,000-target
        file would spend a third of its parse on lines nobody reads)."""
        return key_lines(self._text)

    def add(self, path: KeyPath, message: str) -> None:
        self.problems.append(
            ConfigProblem(
                path=".".join(str(part) for part in path),
                message=message,
                file=self.source,
                line=line_of(self.lines, path),
            )
        )

    def add_validation(
        self, prefix: KeyPath, error: ValidationError, model: type[BaseModel]
    ) -> None:
        for item in error.errors():
            loc = tuple(part for part in item["loc"] if not _is_union_tag(part))
            self.add((*prefix, *loc), _explain(item, loc, model))

    def sorted(self) -> list[ConfigProblem]:
        """In file order, and a secret written inline reported once (not also as unknown)."""
        secret_paths = {p.path for p in self.problems if p.message.startswith("a secret must")}
        kept = [
            p
            for p in self.problems
            if p.path not in secret_paths or p.message.startswith("a secret must")
        ]
        return sorted(kept, key=lambda p: (p.line is None, p.line or 0))

    def validate(self, prefix: KeyPath, model: type[BaseModel], data: Any) -> Any:
        try:
            return model.model_validate(data)
        except ValidationError as error:
            self.add_validation(prefix, error, model)
            return None


def _is_union_tag(part: Any) -> bool:
    """Pydantic puts union member names in error locations ('function-before[...]', 'float')."""
    return isinstance(part, str) and (
        "[" in part or part in {"float", "str", "int", "dict[str,float]", "list[str]"}
    )


def _explain(item: Any, loc: tuple[Any, ...], model: type[BaseModel]) -> str:
    kind = item["type"]
    if kind == "extra_forbidden":
        key = str(loc[-1]) if loc else "?"
        known = _known_keys(model, loc[:-1])
        hint = difflib.get_close_matches(key, known, n=1)
        message = f'unknown key "{key}"'
        if hint:
            return f'{message}; did you mean "{hint[0]}"?'
        if known:
            return f"{message}; known keys here: {', '.join(sorted(known))}"
        return message
    if kind == "missing":
        return "required key is missing"
    message = str(item["msg"]).removeprefix("Value error, ")
    return message.replace("Input should be", "must be").replace("String should", "must")


def _known_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        fields = getattr(current, "model_fields", None)
        if not fields or part not in fields:
            return []
        current = fields[part].annotation
    return list(getattr(current, "model_fields", {}) or [])
