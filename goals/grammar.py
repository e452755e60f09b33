"""The one environment-specific piece of the curriculum: what a goal is.

Everything else in ``autotelic.goals`` handles goals as opaque canonical
strings with a category; a grammar turns free text into that pair or says why
it cannot. Another text environment plugs in by providing its own grammar.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from autotelic.envs.playground import GoalCategory, GoalError, all_goals, parse_goal
from autotelic.envs.playground.objects import Split
from autotelic.goals.errors import InvalidGoalError


@dataclass(frozen=True, slots=True)
class ParsedGoal:
    """A validated goal: its canonical text and its category (a metrics label)."""

    text: str
    category: str


@runtime_checkable
class GoalGrammar(Protocol):
    """What the curriculum needs to know about an environment's goals."""

    def parse(self, text: str) -> ParsedGoal:
        """Canonicalise ``text`` or raise :class:`InvalidGoalError` with the reason."""
        ...

    def categories(self) -> Sequence[str]:
        """Every category, so metrics show all of them from the start."""
        ...

    def default_goals(self) -> list[str]:
        """The goals configured when the configuration names none."""
        ...


class PlaygroundGrammar:
    """Playground-Text's goal grammar (``Grasp <object>``, ``Grow <object>``)."""

    def __init__(self, split: Split = "train", *, include_impossible: bool = False) -> None:
        self.split: Split = split
        self.include_impossible = include_impossible

    def parse(self, text: str) -> ParsedGoal:
        try:
            goal = parse_goal(text)
        except GoalError as err:
            raise InvalidGoalError(text, str(err)) from None
        return ParsedGoal(goal.text, goal.category.value)

    def categories(self) -> Sequence[str]:
        return [c.value for c in GoalCategory]

    def default_goals(self) -> list[str]:
        return all_goals(self.split, include_impossible=self.include_impossible)
