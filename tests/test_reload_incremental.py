"""A reload costs what it changes (issue 13): an unchanged target keeps its schedule entry, its
state, its rendered series and its counters; a changed one is scheduled and rendered once
more; added and removed ones come and go. No timing: the test looks at what was replaced.

The agent is real (``monitor.agent.Agent`` on a config file it reloads, a manual clock); no
probe runs, results are fed to ``apply_result`` as the scheduler's probes would.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import trustme
from aiohttp import web

from checks import ProbeResult
from monitor.agent import Agent
from monitor.clock import ManualClock
from monitor.config import load_config, parse_config
from monitor.errors import ConfigError
from monitor.probing import run_probe
from tests.agent_harness import START

COUNT = 300


def config_text(
    state: Path, ports: dict[int, int] | None = None, count: int = COUNT, web: int = 9
) -> str:
    """``count`` tcp targets ``t0``..., and ``web``, http on port ``web``; ``ports`` gives
    some of the tcp ones another port."""
    ports = ports or {}
    targets = f'\n[[targets]]\nname = "web"\nkind = "http"\nurl = "http://127.0.0.1:{web}/"\n'
    targets += "".join(
        f'\n[[targets]]\nname = "t{i}"\nkind = "tcp"\nhost = "127.0.0.1"\n'
        f"port = {ports.get(i, 9)}\n"
        for i in range(count)
    )
    return (
        f'[agent]\nstate_dir = "{state}"\n[defaults]\ninterval = "10s"\ntimeout = "5s"\n'
        "failure_threshold = 1\nrecovery_threshold = 1\n" + targets
    )


def snapshot(agent: Agent) -> dict[str, tuple[int, object, tuple[str, ...]]]:
    """Per target: its schedule generation, its state object, its rendered series lines."""
    return {
        name: (
            agent.scheduler.generation(name),
            agent.states.get(name),
            agent.metrics.targets.lines_of(name),
        )
        for name in agent.targets
    }


def replaced(before: dict[str, tuple[int, object, tuple[str, ...]]], agent: Agent) -> list[str]:
    """The targets of ``before`` of which anything was made anew (compared by identity)."""
    after = snapshot(agent)
    out = []
    for name, (generation, state, lines) in before.items():
        if name not in after:
            continue
        new_generation, new_state, new_lines = after[name]
        same_lines = len(lines) == len(new_lines) and all(
            a is b for a, b in zip(lines, new_lines, strict=True)
        )
        if generation != new_generation or state is not new_state or not same_lines:
            out.append(name)
    return out


async def serve_ok() -> tuple[web.AppRunner, int]:
    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/", ok)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]


async def test_a_reload_replaces_only_what_changed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    runner, port = await serve_ok()
    path, state = tmp_path / "config.toml", tmp_path / "state"
    path.write_text(config_text(state, web=port))
    agent = Agent(load_config(path), config_path=str(path), clock=ManualClock(START))
    await agent.prepare()
    try:
        # A real probe: what it caches on its target must not make the target "changed".
        web_result = await run_probe(agent.targets["web"], agent.clients)
        assert web_result.ok, web_result.reason
        await agent.apply_result(agent.targets["web"], web_result)
        for name, ok in (("t1", True), ("t1", True), ("t2", False), ("t7", True)):
            await agent.apply_result(agent.targets[name], ProbeResult(ok, 0.01, "status"))
        counted = 'watchdesk_probes_total{kind="tcp",result="success",target="t1"} 2.0'
        assert counted in agent.metrics.exposition().decode()
        before = snapshot(agent)
        assert {generation for generation, _, _ in before.values()} == {1}

        caplog.set_level(logging.INFO, logger="watchdesk")
        targets = agent.config.targets
        assert await agent.reload()  # the same file: nothing changes
        assert replaced(before, agent) == []
        assert all(t is o for t, o in zip(agent.config.targets, targets, strict=True))
        assert (
            f"{COUNT + 1} targets (0 added, 0 changed, 0 removed, {COUNT + 1} unchanged)"
            in caplog.text
        )
        exposition = agent.metrics.exposition().decode()
        assert counted in exposition
        assert 'watchdesk_target_up{target="t2"} 0.0' in exposition

        # t2 and t7 probe another port, t0 goes, t300 comes.
        text = config_text(state, {2: 10, 7: 11}, COUNT + 1, port).replace('"t0"', '"t300x"')
        path.write_text(text)
        assert await agent.reload()
        assert sorted(replaced(before, agent)) == ["t2", "t7"]
        assert "t0" not in agent.targets
        assert "t0" not in agent.metrics.targets
        assert agent.scheduler.generation("t0") == 0
        assert [agent.scheduler.generation(n) for n in ("t2", "t7", "t1", "t300")] == [2, 2, 1, 1]
        assert "(2 added, 2 changed, 1 removed, 298 unchanged)" in caplog.text
        exposition = agent.metrics.exposition().decode()
        assert counted in exposition  # t1 unchanged: its counters go on
        # t7 checks another port now: it starts afresh (unknown, no up series); t2 too, but
        # its open incident says down.
        assert 'watchdesk_target_up{target="t7"}' not in exposition
        assert agent.states["t7"].status == "unknown"
        assert 'watchdesk_target_up{target="t2"} 0.0' in exposition
    finally:
        await agent.integrations.aclose()
        await agent.clients.close()
        await agent.store.close()
        await runner.cleanup()


BASE = """
[defaults]
interval = "10s"

[customers.acme]
email = "it@acme.example"

[[targets]]
name = "a"
kind = "tcp"
host = "127.0.0.1"
port = 9
customer = "acme"

[[targets]]
name = "b"
kind = "http"
url = "https://127.0.0.1/"
ca_file = "CA"
"""


def test_a_reread_file_takes_unchanged_targets_as_they_were(tmp_path: Path) -> None:
    """What a reload reads: targets written as before are the running config's objects (not
    validated again), but still checked against what lies outside their table."""
    ca = tmp_path / "ca.pem"
    ca.write_text(trustme.CA().cert_pem.bytes().decode())
    text = BASE.replace('"CA"', f'"{ca}"')
    first = parse_config(text)
    again = parse_config(text, previous=first)
    assert [t is f for t, f in zip(again.targets, first.targets, strict=True)] == [True, True]

    changed = parse_config(text.replace("port = 9", "port = 10"), previous=first)
    assert changed.targets[0] is not first.targets[0]
    assert changed.targets[0].settings.port == 10  # type: ignore[attr-defined]
    assert changed.targets[1] is first.targets[1]

    # New defaults are folded into every target: none is taken over.
    slower = parse_config(text.replace('interval = "10s"', 'interval = "20s"'), previous=first)
    assert [t.interval for t in slower.targets] == [20.0, 20.0]

    with pytest.raises(ConfigError) as refused:
        parse_config(text.replace("[customers.acme]", "[customers.other]"), previous=first)
    assert any(p.path == "targets.0.customer" for p in refused.value.problems)
    ca.unlink()
    with pytest.raises(ConfigError) as refused:
        parse_config(text, previous=first)
    assert any(p.path == "targets.1.ca_file" for p in refused.value.problems)
