"""The collector around a config parse (monitor/heap.py): off while 50,000 targets are built,
back on afterwards whatever the parse's outcome, and not left to walk the new config at once."""

from __future__ import annotations

import gc

import pytest

from monitor.config import parse_config
from monitor.errors import ConfigError


def _targets(count: int) -> str:
    return "".join(
        f'[[targets]]\nname = "t{i}"\nkind = "tcp"\nhost = "127.0.0.1"\nport = {1000 + i}\n'
        for i in range(count)
    )


def test_the_collector_is_on_again_after_a_parse_that_fails() -> None:
    assert gc.isenabled()
    with pytest.raises(ConfigError):
        parse_config(_targets(3) + '[[targets]]\nname = "bad"\nkind = "nope"\n')
    assert gc.isenabled()


def test_a_large_config_is_not_young_garbage_for_the_next_collection() -> None:
    """Switched back on with the parse's objects still young, the collector walks all of them
    at its next allocation and again at the next middle-generation collection (0.08 s each on
    the event loop at 50,000 targets)."""
    gc.collect()
    config = parse_config(_targets(60_000))
    try:
        assert len(config.targets) == 60_000
        assert gc.isenabled()
        young = {id(thing) for generation in (0, 1) for thing in gc.get_objects(generation)}
        walked = sum(id(target.settings) in young for target in config.targets)
        assert walked == 0, f"{walked} targets' settings left to the young collections"
    finally:
        gc.unfreeze()  # the test process, unlike an agent, lets the collector have them back


def test_a_small_config_is_left_to_the_collector() -> None:
    gc.collect()
    frozen = gc.get_freeze_count()
    parse_config(_targets(20))
    assert gc.get_freeze_count() == frozen
