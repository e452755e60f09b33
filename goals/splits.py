"""Which known goals are held out: the test split the curriculum must never practise.

Held-out goals measure generalisation; an episode pursuing one trains the
policy on it and the held-out numbers then mean nothing (measured: a held-out
goal the agent discovered was pursued 220 times, one injected once was then
sampled 129 times). The curriculum therefore asks, for every goal, whether it is
held out, and keeps those goals out of its training pool.

The goal-space contract says which goals are held out through ``goals("test")``.
A grammar may accept held-out goals that list leaves out (a goal of a family the
configuration does not list, a goal that is never feasible); a goal space that
has a ``split(goal)`` method answers for every goal, and that answer wins.
"""

from __future__ import annotations

from collections.abc import Callable

from autotelic.core import GoalSpace


class HeldOutGoals:
    """``held_out(goal)`` for canonical goal texts of one goal space (answers cached)."""

    def __init__(self, goal_space: GoalSpace) -> None:
        self.goal_space = goal_space
        split = getattr(goal_space, "split", None)
        self._split: Callable[[str], str] | None = split if callable(split) else None
        self._listed: frozenset[str] | None = None
        self._cache: dict[str, bool] = {}

    def __call__(self, goal: str) -> bool:
        """Whether ``goal`` (canonical) belongs to the held-out split."""
        known = self._cache.get(goal)
        if known is None:
            known = self._cache[goal] = self._ask(goal)
        return known

    def _ask(self, goal: str) -> bool:
        if self._split is not None:
            return self._split(goal) == "test"
        if self._listed is None:
            # Listed once: goal spaces build the list, and the curriculum asks per goal.
            self._listed = frozenset(self.goal_space.goals("test"))
        return goal in self._listed
