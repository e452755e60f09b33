"""Both built-in goal spaces answer ``split(goal)`` for any goal, listed or not, so a
held-out goal outside the configured lists (impossible, or of a family left out) never
trains either."""

from __future__ import annotations

from autotelic.envs.babyai import BabyAIGoalSpace, Category
from autotelic.envs.playground import PlaygroundGoalSpace
from autotelic.goals.splits import HeldOutGoals


def test_playground_splits_every_goal_by_its_object() -> None:
    space = PlaygroundGoalSpace()
    held_out = HeldOutGoals(space)
    assert "Grow lamp" not in space.goals("test")  # impossible: not a configured goal
    assert held_out("Grow lamp") and held_out("Grasp tiger")
    assert not held_out("Grow carrot") and not held_out("Grasp door")
    for split in ("train", "test"):
        assert {space.split(g) for g in space.goals(split)} == {split}


def test_babyai_splits_goals_of_families_the_configuration_leaves_out() -> None:
    space = BabyAIGoalSpace([Category.GO_TO, Category.PICK_UP])
    held_out = HeldOutGoals(space)
    assert "open the yellow door" not in space.goals("test")
    assert held_out("open the yellow door")
    assert not held_out("open the red door")
    for split in ("train", "test"):
        assert {space.split(g) for g in space.goals(split)} == {split}
