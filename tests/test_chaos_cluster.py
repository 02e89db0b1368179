"""The chaos test on two agents judges fairly: the kills are spread over both agents without
changing the single-agent run of the same seed, and the stretches the cluster "surely watched"
leave out the takeover windows the contract allows, and nothing more. With them the unchanged
checker forgives an outage nobody had to see, and still calls a lost one lost."""

from __future__ import annotations

from tests.chaos.checker import check
from tests.chaos.cluster import ClusterTimings, kill_victims, watched
from tests.chaos.scenario import make_scenario
from tests.test_chaos_checker import B, World

TIMINGS = ClusterTimings(lease_ttl=1.5, lease_renew=0.5, margin=0.5)


def test_kills_are_spread_over_the_agents_and_the_run_stays_the_same() -> None:
    single, double = make_scenario(11), make_scenario(11, agents=2)
    assert [(k.offset, k.restart_after) for k in double.kills] == [
        (k.offset, k.restart_after) for k in single.kills
    ]
    assert double.toggles == single.toggles
    assert double.outage_at == single.outage_at
    per_agent = double.describe()["kills_per_agent"]
    assert abs(per_agent[0] - per_agent[1]) <= 1
    assert {k.agent for k in single.kills} == {0}
    assert kill_victims(11, 7, 2) == kill_victims(11, 7, 2)
    assert sorted(kill_victims(11, 7, 3)) == [0, 0, 0, 1, 1, 2, 2]


def test_watched_removes_the_takeover_and_join_windows() -> None:
    assert TIMINGS.blind_after_kill == 2.5
    assert TIMINGS.blind_after_join == 1.5
    agents = [
        [[0.0, 10.0], [11.0, 30.0]],  # killed at 10, ready again at 11
        [[0.5, 30.0]],
    ]
    assert watched(agents, [10.0], TIMINGS) == [[2.0, 10.0], [12.5, 30.0]]
    # Both dead at once: nothing watches until one is back and has taken its slots.
    agents = [[[0.0, 10.0], [20.0, 30.0]], [[0.0, 12.0], [13.0, 30.0]]]
    assert watched(agents, [10.0, 12.0], TIMINGS) == [[1.5, 10.0], [14.5, 20.0], [21.5, 30.0]]


def test_the_checker_with_the_clusters_watch_forgives_the_takeover_only() -> None:
    """Agent 0 is killed at +20 s and back at +21 s; agent 1 lives throughout. An outage from
    +20.2 to +22.2 falls wholly in the takeover window: no ticket needed. An outage from +30 to
    +34 is watched: its missing ticket is lost."""
    world = World().target("a", (20.2, 22.2), (30.0, 34.0))
    lives = [[[B, B + 20.0], [B + 21.0, B + 60.0]], [[B, B + 60.0]]]
    evidence = world.evidence()
    evidence["kills"] = [B + 20.0]
    evidence["alive"] = watched(lives, evidence["kills"], TIMINGS)
    violations, figures = check(evidence)
    assert [(v.kind, v.target) for v in violations] == [("lost", "a")]
    assert f"{B + 30.0:.3f}" in violations[0].detail
    assert figures.observable == 1

    # Judged by "some agent was alive" instead, the first outage would count as lost too.
    evidence["alive"] = [[B, B + 60.0]]
    violations, _ = check(evidence)
    assert [v.kind for v in violations] == ["lost", "lost"]
