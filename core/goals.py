"""What a goal is, as the curriculum, the replay and evaluation see it.

Everything above the environment handles goals as canonical strings with a
category. A :class:`GoalSpace` is the one place that knows the grammar: it
turns free text into that pair or says why it cannot, lists the configured
goals of each split, and answers the one question hindsight relabeling asks,
"does this goal hold given what a step achieved?", as a pure function.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

Split = Literal["train", "test"]
"""Training goals, or the held-out ones evaluation measures generalisation on."""


class InvalidGoalError(ValueError):
    """A goal text the environment's grammar does not accept.

    ``reason`` is the grammar's own explanation, so an MQTT rejection or a CLI
    error can pass it on unchanged.
    """

    def __init__(self, goal: object, reason: str) -> None:
        super().__init__(f"invalid goal {goal!r}: {reason}")
        self.goal = goal
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ParsedGoal:
    """A validated goal: its canonical text and its category (a metrics label)."""

    text: str
    category: str


@runtime_checkable
class GoalSpace(Protocol):
    """An environment's goals: grammar, categories, splits and the success predicate."""

    def parse(self, text: str) -> ParsedGoal:
        """Canonical text and category of ``text``, or :class:`InvalidGoalError` with the
        reason (unknown verb, unknown object...)."""
        ...

    def categories(self) -> Sequence[str]:
        """Every category, so metrics and evaluations show all of them from the start."""
        ...

    def goals(self, split: Split = "train") -> list[str]:
        """The configured goals of ``split``, canonical, in a stable order."""
        ...

    def achieved(self, goal: str, achieved_goals: Collection[str]) -> bool:
        """Whether ``goal`` holds after a step that achieved ``achieved_goals``.

        Pure (no env state): the replay calls it on stored steps for relabeled goals.
        """
        ...

    def achieved_batch(
        self, goals: Sequence[str], achieved_goals: Sequence[Collection[str]]
    ) -> npt.NDArray[np.bool_]:
        """:meth:`achieved` row by row."""
        ...

    def feasible(self, goal: str) -> bool | None:
        """False when no episode can achieve ``goal`` (e.g. growing furniture), True when
        some can, None when the goal space cannot tell without a scene."""
        ...


def achieved_rows(
    space: GoalSpace, goals: Sequence[str], achieved_goals: Sequence[Collection[str]]
) -> npt.NDArray[np.bool_]:
    """A plain row-by-row ``achieved_batch`` that goal spaces may delegate to."""
    if len(goals) != len(achieved_goals):
        raise ValueError(f"{len(goals)} goals for {len(achieved_goals)} achieved lists")
    return np.fromiter(
        (space.achieved(g, a) for g, a in zip(goals, achieved_goals, strict=True)),
        dtype=np.bool_,
        count=len(goals),
    )
