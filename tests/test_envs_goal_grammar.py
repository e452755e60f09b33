"""The goal grammar: every valid goal round-trips, every invalid one says why."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from autotelic.envs.playground import (
    GoalCategory,
    GoalError,
    ObjectCategory,
    Verb,
    achieved,
    achieved_batch,
    all_goals,
    canonical_goal,
    parse_goal,
)


@pytest.mark.parametrize("goal", all_goals("all", include_impossible=True))
def test_every_goal_round_trips(goal):
    parsed = parse_goal(goal)
    assert parsed.text == goal
    assert parse_goal(parsed.text) == parsed
    assert parse_goal(goal.upper()) == parsed
    assert parse_goal(f"  {goal.lower()}  ".replace(" ", "   ")) == parsed


def test_categories():
    assert parse_goal("Grasp door").category is GoalCategory.GRASP
    assert parse_goal("Grasp cow").category is GoalCategory.GRASP
    assert parse_goal("Grow carrot").category is GoalCategory.GROW_PLANT
    assert parse_goal("Grow cow").category is GoalCategory.GROW_HERBIVORE
    assert parse_goal("Grow tiger").category is GoalCategory.GROW_CARNIVORE
    assert parse_goal("Grow door").category is GoalCategory.GROW_FURNITURE
    assert parse_goal("Grow tiger").verb is Verb.GROW
    assert parse_goal("Grow tiger").object_category is ObjectCategory.CARNIVORE


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty goal"),
        ("   ", "empty goal"),
        ("Eat carrot", "unknown verb 'Eat'"),
        ("Grow", "names no object"),
        ("Grasp unicorn", "unknown object 'unicorn'"),
        ("Grow carrot seed", "not its growth stage (try 'carrot')"),
        ("Grasp baby cow", "not its growth stage (try 'cow')"),
        ("Grasp water", "'water' is not a goal object"),
        ("Grow carrot now", "unknown object 'carrot now'"),
    ],
)
def test_invalid_goals_say_what_is_wrong(text, reason):
    with pytest.raises(GoalError) as err:
        parse_goal(text)
    assert reason in str(err.value)


@pytest.mark.parametrize("value", [None, 3, b"Grow carrot", ["Grow carrot"]])
def test_non_strings_are_rejected_clearly(value):
    with pytest.raises(GoalError, match="a goal is a string"):
        parse_goal(value)


@given(st.text(max_size=40))
def test_parsing_arbitrary_text_either_succeeds_canonically_or_raises_goal_error(text):
    try:
        goal = parse_goal(text)
    except GoalError as err:
        assert str(err)
    else:
        assert canonical_goal(goal.text) == goal.text
        assert goal.text in all_goals("all", include_impossible=True)


def test_predicate_is_pure_and_batchable():
    assert achieved("Grow carrot", ["Grasp cow", "Grow carrot"])
    assert not achieved("Grow carrot", ["Grasp carrot"])
    assert not achieved("Grow carrot", [])
    out = achieved_batch(
        ["Grow carrot", "Grasp cow", "Grow cow"], [["Grow carrot"], [], {"Grow cow"}]
    )
    assert out.dtype == np.bool_ and out.tolist() == [True, False, True]
    with pytest.raises(ValueError, match="2 goals for 1"):
        achieved_batch(["a", "b"], [[]])


def test_splits_partition_the_goals():
    train, test = set(all_goals("train")), set(all_goals("test"))
    assert not train & test
    assert train | test == set(all_goals("all"))
    assert "Grasp door" in train and "Grasp cupboard" in test and "Grow tiger" in test
