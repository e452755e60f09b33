"""Playground-Text's goals behind the :class:`~autotelic.core.goals.GoalSpace` contract."""

from __future__ import annotations

from collections.abc import Collection, Sequence

import numpy as np
import numpy.typing as npt

from autotelic.core import InvalidGoalError, ParsedGoal, Split
from autotelic.envs.playground.goals import (
    GoalCategory,
    GoalError,
    achieved,
    achieved_batch,
    all_goals,
    parse_goal,
)
from autotelic.envs.playground.objects import split_of


class PlaygroundGoalSpace:
    """``Grasp <object>`` and ``Grow <object>``; the last 3 objects of each category are
    held out (split ``test``)."""

    def __init__(self, *, include_impossible: bool = False) -> None:
        self.include_impossible = include_impossible

    def parse(self, text: str) -> ParsedGoal:
        try:
            goal = parse_goal(text)
        except GoalError as err:
            raise InvalidGoalError(text, str(err)) from None
        return ParsedGoal(goal.text, goal.category.value)

    def categories(self) -> Sequence[str]:
        return [c.value for c in GoalCategory]

    def goals(self, split: Split = "train") -> list[str]:
        return all_goals(split, include_impossible=self.include_impossible)

    def achieved(self, goal: str, achieved_goals: Collection[str]) -> bool:
        return achieved(goal, achieved_goals)

    def achieved_batch(
        self, goals: Sequence[str], achieved_goals: Sequence[Collection[str]]
    ) -> npt.NDArray[np.bool_]:
        return achieved_batch(goals, achieved_goals)

    def split(self, goal: str) -> Split:
        """``test`` for a goal naming a held-out object, whether or not the configured
        lists hold it (``Grow lamp`` is impossible and held out): held-out goals never
        train."""
        return split_of(parse_goal(goal).obj)

    def feasible(self, goal: str) -> bool | None:
        """Furniture never grows; every other goal is feasible in a scene made for it."""
        return self.parse(goal).category != GoalCategory.GROW_FURNITURE.value
