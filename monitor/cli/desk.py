"""``watchdesk ack``, ``mute``, ``unmute`` and ``explain``: the operator's commands, sent to the
running agent over its HTTP API with ``requests`` (the bearer token from the same
``agent.api_token_env``)."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from collections.abc import Callable
from typing import Any

from monitor.config import Config
from monitor.config.secrets import read_api_token
from monitor.errors import SecretError

EXIT_OK = 0
EXIT_FAILED = 1


def add_commands(command: Callable[[str, str], argparse.ArgumentParser]) -> None:
    """Register the commands through the CLI's ``command(name, help)`` factory."""
    ack = command("ack", "acknowledge an incident: it counts as worked, escalation stops")
    ack.add_argument("incident", type=int)
    ack.add_argument("--by", default=None, help="who (default: your user name)")
    mute = command("mute", "mute a target: it opens no incident until the mute ends")
    mute.add_argument("target")
    mute.add_argument("--for", dest="duration", required=True, help='how long, e.g. "2h"')
    mute.add_argument("--reason", required=True, help="why (it goes on the ticket)")
    mute.add_argument("--by", default=None)
    unmute = command("unmute", "end a target's mute")
    unmute.add_argument("target")
    unmute.add_argument("--by", default=None)
    explain = command("explain", "say why a target has, or has no, incident right now")
    explain.add_argument("target")
    explain.add_argument("--json", action="store_true", help="the agent's answer as JSON")


def run(config: Config, args: argparse.Namespace) -> int:
    if args.command == "explain":
        show = _print_json if args.json else _print_explanation
        return _call(config, "GET", f"/api/targets/{args.target}", {}, show)
    by = args.by or _user()
    if args.command == "ack":
        return _call(config, "POST", f"/api/incidents/{args.incident}/ack", {"by": by})
    if args.command == "mute":
        query = {"for": args.duration, "reason": args.reason, "by": by}
        return _call(config, "POST", f"/api/targets/{args.target}/mute", query)
    return _call(config, "DELETE", f"/api/targets/{args.target}/mute", {"by": by})


def _call(
    config: Config,
    method: str,
    path: str,
    query: dict[str, str],
    show: Callable[[Any], None] | None = None,
) -> int:
    host = config.agent.host
    base = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::', '') else host}:{config.agent.port}"
    try:
        token = read_api_token(config)
    except SecretError as error:
        print(f"agent.api_token: {error}", file=sys.stderr)
        return EXIT_FAILED
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    import requests  # here: the other commands build the same parser without it

    try:
        answer = requests.request(method, base + path, params=query, headers=headers, timeout=10)
    except requests.ConnectionError:
        print(
            f"cannot reach the agent at {base}: is `watchdesk run` running with this config?",
            file=sys.stderr,
        )
        return EXIT_FAILED
    except requests.RequestException as error:
        print(f"the agent at {base} did not answer: {error}", file=sys.stderr)
        return EXIT_FAILED
    if answer.status_code >= 400:
        print(f"refused ({answer.status_code}): {answer.text.strip()}", file=sys.stderr)
        return EXIT_FAILED
    if show is None:
        print(answer.text.strip())
    else:
        show(answer.json())
    return EXIT_OK


def _print_json(answer: Any) -> None:
    print(json.dumps(answer, indent=2))


def _print_explanation(answer: dict[str, Any]) -> None:
    """What decides first, then the counters, then every rule in effect."""
    print(f"{answer['target']}: {answer['why']}")
    print(
        f"  state {answer['state']}: {answer['consecutive_failures']} consecutive failures "
        f"(failure_threshold {answer['failure_threshold']}), "
        f"{answer['consecutive_successes']} successes "
        f"(recovery_threshold {answer['recovery_threshold']})"
    )
    last = answer.get("last_result")
    if last:
        print(f"  last probe: {'ok' if last['ok'] else 'failed'}: {last['reason']}")
    for incident in (answer.get("incident"), answer.get("storm")):
        if incident:
            ticket = incident["ticket_id"] or "no ticket of its own"
            print(f"  incident {incident['id']} ({incident['dedup_key']}): {ticket}")
    for fact in answer.get("facts", []):
        print(f"  - {fact}")
    for seen in answer.get("vantages") or []:
        counted = (
            ""
            if seen["counts"]
            else " (not counted: " + ("impaired)" if seen["impaired"] else "not live)")
        )
        print(f"  vantage {seen['vantage']}: {seen['verdict']}{counted}: {seen['reason']}")


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "someone"
