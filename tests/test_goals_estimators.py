"""Windowed LP estimators (per goal and per category) and their saved state."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autotelic.goals import BucketLP, CompetenceEstimator, GoalLP, MemoryStateStore, absolute_lp
from tests.goals_fixtures import PLAYGROUND, saved

outcome_lists = st.lists(st.booleans(), max_size=60)


def _category(goal: str) -> str:
    return PLAYGROUND.parse(goal).category


def test_absolute_lp_compares_recent_half_with_older_half() -> None:
    assert absolute_lp([]) == 0.0
    assert absolute_lp([1.0]) == 0.0
    assert absolute_lp([0, 0, 1, 1]) == 1.0
    assert absolute_lp([1, 1, 0, 0]) == 1.0  # forgetting counts as progress too
    assert absolute_lp([0, 1, 0, 1]) == 0.0
    assert absolute_lp([0, 0, 1, 1, 1]) == pytest.approx(1.0)  # the middle one is left out
    assert absolute_lp([0, 0, 1, 0, 1, 1]) == pytest.approx(1 / 3)


@settings(max_examples=100, deadline=None)
@given(outcome_lists)
def test_absolute_lp_is_bounded_and_symmetric_in_time(outcomes: list[bool]) -> None:
    values = [float(o) for o in outcomes]
    lp = absolute_lp(values)
    assert 0.0 <= lp <= 1.0
    assert lp == pytest.approx(absolute_lp(values[::-1]))
    assert lp == pytest.approx(absolute_lp([1.0 - v for v in values]))


@settings(max_examples=60, deadline=None)
@given(outcome_lists, st.integers(min_value=2, max_value=30))
def test_goal_lp_uses_only_the_last_window_outcomes(outcomes: list[bool], window: int) -> None:
    estimator = GoalLP(window)
    for o in outcomes:
        estimator.update("Grow carrot", o)
    recent = [float(o) for o in outcomes[-window:]]
    assert estimator.lp(["Grow carrot"])[0] == pytest.approx(absolute_lp(recent))
    expected_competence = float(np.mean(recent)) if recent else 0.0
    assert estimator.competence(["Grow carrot"])[0] == pytest.approx(expected_competence)
    assert estimator.attempts(["Grow carrot"])[0] == len(outcomes)


def test_goal_lp_separates_goals_and_is_zero_for_untried_ones() -> None:
    estimator = GoalLP(window=10)
    assert isinstance(estimator, CompetenceEstimator)
    for i in range(10):
        estimator.update("Grow carrot", i >= 5)  # learning: 0 0 0 0 0 1 1 1 1 1
        estimator.update("Grasp cow", True)  # mastered
        estimator.update("Grow sofa", False)  # impossible
    lp = estimator.lp(["Grow carrot", "Grasp cow", "Grow sofa", "Grow lion"])
    np.testing.assert_allclose(lp, [1.0, 0.0, 0.0, 0.0])
    competence = estimator.competence(["Grow carrot", "Grasp cow", "Grow sofa", "Grow lion"])
    np.testing.assert_allclose(competence, [0.5, 1.0, 0.0, 0.0])


def test_bucket_lp_pools_goals_of_a_category() -> None:
    estimator = BucketLP(_category, window=20)
    plants = ["Grow carrot", "Grow potato", "Grow berry", "Grow onion"]
    for i in range(20):
        estimator.update(plants[i % 4], i >= 10)
        estimator.update("Grasp cow" if i % 2 else "Grasp lion", True)
    lp = estimator.lp([*plants, "Grow tomato", "Grasp sofa", "Grow lion"])
    np.testing.assert_allclose(lp, [1.0] * 5 + [0.0, 0.0])  # tomato was never tried
    np.testing.assert_allclose(estimator.competence(["Grow tomato", "Grasp desk"]), [0.5, 1.0])


def test_window_must_hold_two_outcomes() -> None:
    with pytest.raises(ValueError, match="window must be at least 2"):
        GoalLP(window=1)


@pytest.mark.parametrize("make", [lambda: GoalLP(8), lambda: BucketLP(_category, 8)])
def test_estimator_state_round_trips_through_msgpack(make) -> None:
    rng = np.random.default_rng(0)
    goals = ["Grow carrot", "Grow cow", "Grasp lion", "Grow sofa"]
    first = make()
    for _ in range(50):
        first.update(goals[rng.integers(4)], bool(rng.random() < 0.4))
    store = MemoryStateStore()
    store.put_state("e", first.state_dict())
    second = make()
    second.load_state_dict(saved(store, "e"))
    np.testing.assert_array_equal(second.lp(goals), first.lp(goals))
    np.testing.assert_array_equal(second.competence(goals), first.competence(goals))
    for est in (first, second):  # and they go on identically
        est.update("Grow carrot", True)
    np.testing.assert_array_equal(second.lp(goals), first.lp(goals))


def test_loading_another_estimators_state_is_refused() -> None:
    bucket = BucketLP(_category, 8)
    bucket.update("Grow carrot", True)
    with pytest.raises(ValueError, match="'bucket' estimator cannot be loaded into a 'goal'"):
        GoalLP(8).load_state_dict(bucket.state_dict())
