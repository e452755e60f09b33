"""The goal grammar of Playground-Text and the pure goal predicate.

Goals are ``Grasp <object>`` and ``Grow <object>``. Parsing is how the runtime
validates goals people inject, so every rejection says exactly what is wrong.
The predicate only reads the goals an episode reported as achieved, which is all
hindsight relabeling needs: no env instance, no internals.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import numpy.typing as npt

from autotelic.envs.playground.objects import (
    CATEGORY_OF,
    OBJECTS_BY_CATEGORY,
    WATER,
    ObjectCategory,
    Split,
    objects_in_split,
)


class GoalError(ValueError):
    """A goal text that is not a goal of this environment; the message says why."""


class Verb(StrEnum):
    """The two goal verbs."""

    GRASP = "Grasp"
    GROW = "Grow"


class GoalCategory(StrEnum):
    """Goal families: they set horizons and are the buckets of the curriculum and metrics."""

    GRASP = "grasp"
    GROW_PLANT = "grow_plant"
    GROW_HERBIVORE = "grow_herbivore"
    GROW_CARNIVORE = "grow_carnivore"
    GROW_FURNITURE = "grow_furniture"
    """Grammatical but never achievable: furniture does not grow."""


FEASIBLE_CATEGORIES = (
    GoalCategory.GRASP,
    GoalCategory.GROW_PLANT,
    GoalCategory.GROW_HERBIVORE,
    GoalCategory.GROW_CARNIVORE,
)

OPTIMAL_STEPS: dict[GoalCategory, int] = {
    GoalCategory.GRASP: 2,
    GoalCategory.GROW_PLANT: 4,
    GoalCategory.GROW_HERBIVORE: 7,
    GoalCategory.GROW_CARNIVORE: 10,
}
"""Length of the shortest plan from a fresh scene."""

HORIZONS: dict[GoalCategory, int] = {
    GoalCategory.GRASP: 3,
    GoalCategory.GROW_PLANT: 6,
    GoalCategory.GROW_HERBIVORE: 10,
    GoalCategory.GROW_CARNIVORE: 15,
}
"""Episode length limits for feasible goals: about 1.5x the optimal plan."""

IMPOSSIBLE_HORIZON = 10
"""Episode length limit when the goal cannot be achieved in the scene."""

_GROW_CATEGORY = {
    ObjectCategory.PLANT: GoalCategory.GROW_PLANT,
    ObjectCategory.HERBIVORE: GoalCategory.GROW_HERBIVORE,
    ObjectCategory.CARNIVORE: GoalCategory.GROW_CARNIVORE,
    ObjectCategory.FURNITURE: GoalCategory.GROW_FURNITURE,
}

_NAME_HINTS = ("seed", "baby")


@dataclass(frozen=True, slots=True)
class Goal:
    """A parsed goal: its verb, the object it names, and its category."""

    verb: Verb
    obj: str
    category: GoalCategory

    @property
    def text(self) -> str:
        """The canonical goal string, e.g. ``Grow carrot``."""
        return f"{self.verb.value} {self.obj}"

    @property
    def object_category(self) -> ObjectCategory:
        """The category of the object the goal names."""
        return CATEGORY_OF[self.obj]

    def __str__(self) -> str:
        return self.text


def _unknown_object_message(obj: str) -> str:
    words = obj.split()
    if any(hint in words for hint in _NAME_HINTS):
        bare = " ".join(w for w in words if w not in _NAME_HINTS)
        return (
            f"unknown object {obj!r}: goals name the object itself, not its growth stage "
            f"(try {bare!r})"
        )
    if obj == WATER:
        return "'water' is not a goal object: goals name furniture, plants or animals"
    known = ", ".join(sorted(CATEGORY_OF.keys() - {WATER}))
    return f"unknown object {obj!r}; known objects: {known}"


def parse_goal(text: str) -> Goal:
    """Parse a goal string (case and spacing are forgiven) or raise :class:`GoalError`."""
    if not isinstance(text, str):
        raise GoalError(f"a goal is a string, got {type(text).__name__}")
    words = text.split()
    if not words:
        raise GoalError("empty goal: expected '<verb> <object>', e.g. 'Grow carrot'")
    verb_word, obj = words[0].capitalize(), " ".join(words[1:]).lower()
    try:
        verb = Verb(verb_word)
    except ValueError:
        verbs = ", ".join(v.value for v in Verb)
        raise GoalError(f"unknown verb {words[0]!r}; goals start with one of: {verbs}") from None
    if not obj:
        raise GoalError(f"goal {text!r} names no object: expected '{verb.value} <object>'")
    category = CATEGORY_OF.get(obj)
    if category is None or category is ObjectCategory.WATER:
        raise GoalError(_unknown_object_message(obj))
    if verb is Verb.GRASP:
        return Goal(verb, obj, GoalCategory.GRASP)
    return Goal(verb, obj, _GROW_CATEGORY[category])


def canonical_goal(text: str) -> str:
    """The canonical spelling of a goal (raises :class:`GoalError` if invalid)."""
    return parse_goal(text).text


def goal_category(text: str) -> GoalCategory:
    """The category of a goal (raises :class:`GoalError` if invalid)."""
    return parse_goal(text).category


def all_goals(split: Split = "all", *, include_impossible: bool = False) -> list[str]:
    """Every goal over the objects of ``split``, in a fixed order."""
    goals: list[str] = []
    for category, _ in OBJECTS_BY_CATEGORY.items():
        for obj in objects_in_split(category, split):
            goals.append(f"Grasp {obj}")
    for category in (ObjectCategory.PLANT, ObjectCategory.HERBIVORE, ObjectCategory.CARNIVORE):
        goals.extend(f"Grow {obj}" for obj in objects_in_split(category, split))
    if include_impossible:
        goals.extend(f"Grow {obj}" for obj in objects_in_split(ObjectCategory.FURNITURE, split))
    return goals


def achieved(goal: str, achieved_goals: Collection[str]) -> bool:
    """Whether ``goal`` holds after a step that reported ``achieved_goals``.

    Both sides are canonical goal strings, as the env reports them and as
    :func:`canonical_goal` writes them.
    """
    return goal in achieved_goals


def achieved_batch(
    goals: Sequence[str], achieved_goals: Sequence[Collection[str]]
) -> npt.NDArray[np.bool_]:
    """:func:`achieved` over aligned sequences, as a boolean array."""
    if len(goals) != len(achieved_goals):
        raise ValueError(f"{len(goals)} goals for {len(achieved_goals)} achieved-goal sets")
    pairs = zip(goals, achieved_goals, strict=True)
    return np.fromiter((g in a for g, a in pairs), dtype=np.bool_, count=len(goals))


def reward(goal: str, achieved_goals: Collection[str]) -> float:
    """The env's reward for a step: 1.0 exactly when the goal holds."""
    return 1.0 if achieved(goal, achieved_goals) else 0.0


def goals_of_events(events: Iterable[tuple[Verb, str]]) -> list[str]:
    """Canonical goal strings for (verb, object) events, in order, without repeats."""
    seen: dict[str, None] = {}
    for verb, obj in events:
        if obj != WATER:
            seen[f"{verb.value} {obj}"] = None
    return list(seen)
