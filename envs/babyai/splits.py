"""Which goals train and which are held out to measure generalisation.

Four colour-object pairs never appear in a training goal: the red box, the
green key, the blue ball and the yellow door. A goal naming any of them is a
test goal; every other goal is a training goal. Each colour and each type
still occurs in training goals, so test goals are new combinations of known
words (compositional generalisation), as in BabyAI-style held-out evaluations.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from autotelic.core import Split
from autotelic.envs.babyai.grammar import (
    COLOURS,
    OBJECT_TYPES,
    PORTABLE_TYPES,
    Category,
    Goal,
    Thing,
)

HELD_OUT: frozenset[Thing] = frozenset(
    {Thing("red", "box"), Thing("green", "key"), Thing("blue", "ball"), Thing("yellow", "door")}
)
"""Colour-object pairs that only test goals name."""


def split_of(goal: Goal) -> Split:
    """``test`` when the goal names a held-out pair, else ``train``."""
    return "test" if any(t in HELD_OUT for t in goal.things) else "train"


def all_goals(split: Split, categories: Iterable[Category] = tuple(Category)) -> list[str]:
    """Every goal of ``split`` in ``categories``, canonical, in a stable order."""
    wanted = set(categories)
    return [g.text for g in _every_goal() if g.category in wanted and split_of(g) == split]


def _every_goal() -> Iterator[Goal]:
    """All grammatical goals, by category, then colour, then type."""
    things = [Thing(c, k) for c in COLOURS for k in OBJECT_TYPES]
    portable = [t for t in things if t.kind in PORTABLE_TYPES]
    yield from (Goal(Category.GO_TO, t) for t in things)
    yield from (Goal(Category.PICK_UP, t) for t in portable)
    yield from (Goal(Category.OPEN, t) for t in things if t.kind == "door")
    yield from (Goal(Category.PUT_NEXT, a, b) for a in portable for b in portable if a != b)
