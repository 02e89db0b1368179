"""The sections that need more than one model: targets (defaults, references, dependency
cycles), ticketing and pagers (the registries' settings), maintenance windows."""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

from checks import PROBES
from monitor.config.confirmation import vantage_list
from monitor.config.diagnostics import Collector
from monitor.config.model import (
    COMMON_KEYS,
    NAME_PATTERN,
    SECRET_KEYS,
    Config,
    CustomerSection,
    DefaultsSection,
    TargetCommon,
    TargetConfig,
    TicketingSection,
)
from monitor.config.tomlpos import Path as KeyPath
from monitor.config.types import duration
from monitor.durations import format_duration
from ticketing import BACKEND_SETTINGS, PAGER_SETTINGS, IntegrationSettings


def missing_ref(what: str, name: str, known: Iterable[str], how: str) -> str:
    names = sorted(known)
    hint = difflib.get_close_matches(name, names, n=1)
    message = f'{what} "{name}" is not defined'
    if hint:
        return f'{message}; did you mean "{hint[0]}"?'
    return f"{message}; define it as {how}" + (f" (defined: {', '.join(names)})" if names else "")


def refuse_inline_secrets(node: Any, path: KeyPath, problems: Collector) -> None:
    """Secret-named keys written in the file, outside ``[[targets]]``: a target's keys are its
    probe's settings, which this rule has never covered, so the walk skips the targets (50,000
    tables of a large config)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if path == () and key == "targets":
                continue
            if key in SECRET_KEYS:
                problems.add(
                    (*path, key),
                    f"a secret must not be written in the config file: put it in an environment "
                    f'variable and set {key}_env = "VARIABLE_NAME", or in a file readable only by '
                    f'the agent and set {key}_file = "/path/to/file"',
                )
            else:
                refuse_inline_secrets(value, (*path, key), problems)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            refuse_inline_secrets(value, (*path, index), problems)


def named_tables(
    raw: dict[str, Any], section: str, model: type[Any], problems: Collector
) -> dict[str, Any]:
    tables = raw.get(section, {})
    if not isinstance(tables, dict):
        problems.add((section,), f"must be a table of named entries, like [{section}.NAME]")
        return {}
    parsed: dict[str, Any] = {}
    for name, body in tables.items():
        if not re.fullmatch(NAME_PATTERN, name):
            problems.add((section, name), "names may hold only letters, digits, '_', '.' and '-'")
        if not isinstance(body, dict):
            problems.add((section, name), f"must be a table, like [{section}.{name}]")
            continue
        value = problems.validate((section, name), model, body)
        if value is not None:
            parsed[name] = value
    return parsed


def parse_targets(
    raw_targets: Any,
    defaults: DefaultsSection | None,
    customers: Mapping[str, CustomerSection],
    problems: Collector,
    previous: Config | None = None,
    fingerprints: dict[str, str] | None = None,
) -> list[TargetConfig]:
    """Every target, validated; a target written exactly as in ``previous`` (same text of its
    table, same defaults: the caller's check) is that config's very object, not validated
    again (a reload of 50,000 unchanged targets validates none). ``fingerprints`` receives
    each target's text for the next reload."""
    fingerprints = {} if fingerprints is None else fingerprints
    if not isinstance(raw_targets, list):
        problems.add(("targets",), "must be an array of tables: write each target as [[targets]]")
        return []
    base = defaults or DefaultsSection()
    targets: list[TargetConfig] = []
    first_seen: dict[str, int] = {}
    index_of: dict[str, int] = {}
    declared: dict[str, list[str]] = {}
    for index, body in enumerate(raw_targets):
        path: KeyPath = ("targets", index)
        if not isinstance(body, dict):
            problems.add(path, "must be a table: write each target as [[targets]]")
            continue
        name = body.get("name")
        if isinstance(name, str):
            if name in first_seen:
                problems.add(
                    (*path, "name"),
                    f'duplicate target name "{name}" (also targets.{first_seen[name]}); '
                    "names must be unique",
                )
                continue
            first_seen[name] = index
            parents = body.get("depends_on", [])
            declared[name] = (
                [p for p in parents if isinstance(p, str)] if isinstance(parents, list) else []
            )
            index_of[name] = index
            fingerprints[name] = repr(body)
            if (same := _unchanged(previous, name, fingerprints[name], customers)) is not None:
                targets.append(same)
                continue
        common_raw = {key: value for key, value in body.items() if key in COMMON_KEYS}
        kind_raw = {key: value for key, value in body.items() if key not in COMMON_KEYS}
        kind = body.get("kind")
        plain = _plain(common_raw)
        common = plain or problems.validate(path, TargetCommon, common_raw)
        if not isinstance(kind, str) or kind not in PROBES:
            if "kind" in body:
                problems.add((*path, "kind"), f'unknown kind "{kind}"; one of: {", ".join(PROBES)}')
            continue
        settings = problems.validate(path, PROBES[kind].settings, kind_raw)
        if common is None or settings is None:
            continue
        interval = common.interval or base.interval
        timeout = common.timeout or base.timeout
        if timeout > interval:
            key = "timeout" if common.timeout else "interval"
            problems.add(
                (*path, key),
                f"timeout {format_duration(timeout)} is longer than the interval "
                f"{format_duration(interval)}; a probe "
                "must end before the next one starts: shorten timeout or lengthen interval",
            )
        if common.customer is not None and common.customer not in customers:
            problems.add(
                (*path, "customer"),
                missing_ref("customer", common.customer, customers, "[customers.NAME]"),
            )
        targets.append(
            TargetConfig(
                name=common.name if plain is None else str(name),
                kind=kind,
                settings=settings,
                interval=interval,
                timeout=timeout,
                failure_threshold=common.failure_threshold or base.failure_threshold,
                recovery_threshold=common.recovery_threshold or base.recovery_threshold,
                priority=common.priority or base.priority,
                customer=common.customer,
                depends_on=tuple(common.depends_on),
                tags=tuple(common.tags),
                description=common.description,
                group=common.group,
                vantages=vantage_list(common.vantages),
                min_vantages=common.min_vantages,
            )
        )
    names = set(declared)
    for name, parents in declared.items():
        for position, parent in enumerate(parents):
            where = ("targets", index_of[name], "depends_on", position)
            if parent == name:
                problems.add(where, "a target cannot depend on itself")
            elif parent not in names:
                problems.add(where, missing_ref("target", parent, names, "a [[targets]] entry"))
    graph = {name: [p for p in ps if p in names and p != name] for name, ps in declared.items()}
    for cycle in find_cycles(graph):
        problems.add(
            ("targets", index_of[cycle[0]], "depends_on"),
            f"dependency cycle {' -> '.join(cycle)}: remove one of these depends_on entries",
        )
    return targets


# What TargetCommon makes of a table whose common keys are only its name and kind.
_DEFAULT_COMMON = TargetCommon.model_construct(name="", kind="")
_PLAIN_KEYS = frozenset({"name", "kind"})
_NAME = re.compile(NAME_PATTERN.removeprefix("^").removesuffix("$"))


def _plain(common_raw: dict[str, Any]) -> TargetCommon | None:
    """The defaults of TargetCommon when the table sets nothing common but a valid name and a
    kind (most targets at scale): what validation would give, without a pydantic round per
    target; anything else (and every problem) goes through the model."""
    name, kind = common_raw.get("name"), common_raw.get("kind")
    if (
        common_raw.keys() <= _PLAIN_KEYS
        and isinstance(name, str)
        and isinstance(kind, str)
        and _NAME.fullmatch(name)
    ):
        return _DEFAULT_COMMON
    return None


def _unchanged(
    previous: Config | None, name: str, fingerprint: str, customers: Mapping[str, CustomerSection]
) -> TargetConfig | None:
    """The previous config's target if it is written the same and what it refers to outside
    its table still holds (its customer, its CA file)."""
    if previous is None or previous.fingerprints.get(name) != fingerprint:
        return None
    target = previous.by_name[name]
    if target.customer is not None and target.customer not in customers:
        return None
    ca_file = getattr(target.settings, "ca_file", None)
    if isinstance(ca_file, str) and not os.path.isfile(ca_file):
        return None
    return target


def find_cycles(graph: dict[str, list[str]]) -> list[list[str]]:
    """Every dependency cycle once, each as a path that ends where it starts."""
    found: list[list[str]] = []
    seen_sets: set[frozenset[str]] = set()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for parent in graph.get(node, []):
            if state.get(parent) == 1:
                cycle = [*stack[stack.index(parent) :], parent]
                key = frozenset(cycle)
                if key not in seen_sets:
                    seen_sets.add(key)
                    found.append(cycle)
            elif parent not in state:
                visit(parent)
        stack.pop()
        state[node] = 2

    for node in graph:
        if node not in state:
            visit(node)
    return found


def integration_settings(
    path: KeyPath, model: type[IntegrationSettings], body: dict[str, Any], problems: Collector
) -> Any:
    """Validate one integration's table, its duration keys turned into seconds first."""
    body = dict(body)
    for key in model.DURATIONS:
        if key in body:
            try:
                body[key] = duration(body[key])
            except ValueError as exc:
                problems.add((*path, key), str(exc))
                return None
    return problems.validate(path, model, body)


def parse_ticketing(
    raw: Any, problems: Collector
) -> tuple[TicketingSection | None, IntegrationSettings | None]:
    if not isinstance(raw, dict):
        problems.add(("ticketing",), "must be a table: [ticketing]")
        return None, None
    top = {key: value for key, value in raw.items() if not isinstance(value, dict)}
    section = problems.validate(("ticketing",), TicketingSection, top)
    for key in top:
        if key not in TicketingSection.model_fields:
            problems.add(
                ("ticketing", key),
                f'unknown key "{key}"; known keys here: backend, on_recovery, request_timeout, '
                "search_lag, auto_close_after, and one [ticketing.BACKEND] table",
            )
    for key, value in raw.items():
        if isinstance(value, dict) and key not in BACKEND_SETTINGS:
            problems.add(
                ("ticketing", key),
                f'unknown backend table "{key}"; one of: {", ".join(BACKEND_SETTINGS)}',
            )
    if section is None:
        return None, None
    if section.backend not in BACKEND_SETTINGS:
        problems.add(
            ("ticketing", "backend"),
            f'unknown backend "{section.backend}"; one of: {", ".join(BACKEND_SETTINGS)}',
        )
        return section, None
    settings = None
    for name, model in BACKEND_SETTINGS.items():
        body = raw.get(name)
        if body is None and name != section.backend:
            continue
        if body is None and name == section.backend and model.REQUIRED_SECRETS:
            problems.add(("ticketing", name), f"backend {name} needs a [ticketing.{name}] table")
            continue
        parsed = integration_settings(("ticketing", name), model, body or {}, problems)
        if name == section.backend:
            settings = parsed
    local = raw.get("local")
    if (
        section.auto_close_after is not None
        and isinstance(local, dict)
        and "auto_close_after" in local
    ):
        problems.add(
            ("ticketing", "local", "auto_close_after"),
            "also set as [ticketing] auto_close_after, which now says it for every backend; "
            "keep that one and remove this",
        )
    return section, settings


def parse_pagers(
    raw: Any, problems: Collector
) -> tuple[dict[str, IntegrationSettings], dict[str, str]]:
    pagers: dict[str, IntegrationSettings] = {}
    types: dict[str, str] = {}
    if not isinstance(raw, dict):
        problems.add(("pagers",), "must be a table of named pagers, like [pagers.oncall]")
        return pagers, types
    for name, body in raw.items():
        path: KeyPath = ("pagers", name)
        if not re.fullmatch(NAME_PATTERN, name):
            problems.add(path, "names may hold only letters, digits, '_', '.' and '-'")
        if not isinstance(body, dict):
            problems.add(path, "must be a table, like [pagers.NAME]")
            continue
        kind = body.get("type")
        if kind not in PAGER_SETTINGS:
            problems.add(
                (*path, "type"),
                ("unknown type " + repr(kind) if kind else "required key is missing")
                + f"; one of: {', '.join(PAGER_SETTINGS)}",
            )
            continue
        settings = integration_settings(
            path, PAGER_SETTINGS[kind], {k: v for k, v in body.items() if k != "type"}, problems
        )
        if settings is not None:
            pagers[name] = settings
            types[name] = kind
    return pagers, types
