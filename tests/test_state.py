"""The consecutive-failure state machine, exhaustively with hypothesis."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from monitor.state import TargetState, Transition, advance

results = st.lists(st.booleans(), max_size=60)
thresholds = st.integers(min_value=1, max_value=6)


def run(
    outcomes: list[bool], failure_threshold: int, recovery_threshold: int
) -> tuple[TargetState, list[Transition]]:
    state = TargetState()
    transitions: list[Transition] = []
    for step, ok in enumerate(outcomes):
        state, transition = advance(
            state, ok, "ok" if ok else "boom", float(step), failure_threshold, recovery_threshold
        )
        if transition:
            transitions.append(transition)
    return state, transitions


def trailing(outcomes: list[bool], value: bool) -> int:
    count = 0
    for ok in reversed(outcomes):
        if ok != value:
            break
        count += 1
    return count


@given(results, thresholds, thresholds)
def test_counters_count_the_current_streak(
    outcomes: list[bool], fail_at: int, recover_at: int
) -> None:
    state, _ = run(outcomes, fail_at, recover_at)
    assert state.consecutive_failures == trailing(outcomes, False)
    assert state.consecutive_successes == trailing(outcomes, True)


@given(results, thresholds, thresholds)
def test_down_exactly_on_the_threshold_failure(
    outcomes: list[bool], fail_at: int, recover_at: int
) -> None:
    state = TargetState()
    for step, ok in enumerate(outcomes):
        before = state
        state, transition = advance(state, ok, "r", float(step), fail_at, recover_at)
        if transition and transition.current == "down":
            assert not ok
            assert state.consecutive_failures == fail_at
            assert before.status != "down"
            # The outage is dated from the first failed check of the streak.
            assert transition.first_failure_at == float(step - fail_at + 1)
        if not ok and state.consecutive_failures >= fail_at:
            assert state.status == "down"


@given(results, thresholds, thresholds)
def test_up_after_recovery_threshold_successes(
    outcomes: list[bool], fail_at: int, recover_at: int
) -> None:
    state = TargetState()
    for step, ok in enumerate(outcomes):
        before = state
        state, transition = advance(state, ok, "r", float(step), fail_at, recover_at)
        if transition and transition.current == "up" and before.status == "down":
            assert state.consecutive_successes == recover_at
        if before.status == "down" and ok and state.consecutive_successes < recover_at:
            assert state.status == "down"


@given(results, thresholds, thresholds)
def test_transitions_alternate_and_never_repeat(
    outcomes: list[bool], fail_at: int, recover_at: int
) -> None:
    state, transitions = run(outcomes, fail_at, recover_at)
    for earlier, later in itertools.pairwise(transitions):
        assert earlier.current != later.current
        assert later.previous == earlier.current
    for transition in transitions:
        assert transition.previous != transition.current
    if transitions:
        assert state.status == transitions[-1].current


@given(st.lists(st.just(False), max_size=10), thresholds)
def test_unknown_until_the_first_verdict(failures: list[bool], fail_at: int) -> None:
    state, transitions = run(failures, fail_at, 1)
    if len(failures) < fail_at:
        assert state.status == "unknown"
        assert transitions == []
    else:
        assert state.status == "down"


def test_first_success_is_a_verdict() -> None:
    state, transition = advance(TargetState(), True, "status 200", 5.0, 3, 2)
    assert state.status == "up"
    assert transition is not None
    assert transition.previous == "unknown"


def test_a_success_inside_an_outage_keeps_the_outage_start() -> None:
    outcomes = [False, False, False, True, False, False]
    state, transitions = run(outcomes, 3, 2)
    assert [t.current for t in transitions] == ["down"]
    assert state.status == "down"
    assert state.first_failure_at == 0.0
