"""BabyAI-Text's goals behind the :class:`~autotelic.core.goals.GoalSpace` contract."""

from __future__ import annotations

from collections.abc import Collection, Sequence

import numpy as np
import numpy.typing as npt

from autotelic.core import InvalidGoalError, ParsedGoal, Split
from autotelic.core.goals import achieved_rows
from autotelic.envs.babyai.grammar import Category, Goal, GoalError, parse_goal
from autotelic.envs.babyai.splits import all_goals, split_of


def parse_or_invalid(text: str) -> Goal:
    """:func:`parse_goal` raising the core's :class:`InvalidGoalError` with the reason."""
    try:
        return parse_goal(text)
    except GoalError as err:
        raise InvalidGoalError(text, err.reason) from None


class BabyAIGoalSpace:
    """``go to``, ``pick up``, ``open`` and ``put ... next to`` goals over BabyAI objects;
    goals naming a held-out colour-object pair (see :mod:`.splits`) form split ``test``.

    ``categories`` limits the configured goal lists (what the curriculum starts from and
    evaluation measures) to those families; any grammatical goal still parses, so a
    person can inject one of another family.
    """

    def __init__(self, categories: Sequence[Category] = tuple(Category)) -> None:
        self.families = {Category(c).value for c in categories}

    def parse(self, text: str) -> ParsedGoal:
        goal = parse_or_invalid(text)
        return ParsedGoal(goal.text, goal.category.value)

    def categories(self) -> Sequence[str]:
        return [c.value for c in Category]

    def goals(self, split: Split = "train") -> list[str]:
        return [g for g in all_goals(split) if parse_goal(g).category.value in self.families]

    def split(self, goal: str) -> Split:
        """``test`` for a goal naming a held-out colour-object pair, of any family (also
        one the configuration leaves out): held-out goals never train."""
        return split_of(parse_or_invalid(goal))

    def achieved(self, goal: str, achieved_goals: Collection[str]) -> bool:
        """Membership of the canonical goal: the env reports achieved goals canonically."""
        if goal in achieved_goals:
            return True
        return parse_or_invalid(goal).text in achieved_goals

    def achieved_batch(
        self, goals: Sequence[str], achieved_goals: Sequence[Collection[str]]
    ) -> npt.NDArray[np.bool_]:
        return achieved_rows(self, goals, achieved_goals)

    def feasible(self, goal: str) -> bool | None:
        """Every grammatical goal is: an episode started for it places what it names."""
        parse_or_invalid(goal)
        return True
