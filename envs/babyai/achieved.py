"""The goals a step made true, read off the grid, as BabyAI's verifier defines them.

- go to X: the agent faces X, in the cell right in front (after any action);
- pick up X: a ``pick up`` action left the agent carrying X, empty-handed before;
- open X: a ``toggle`` action left the door X in front open;
- put X next to Y: a ``drop`` action put X (carried before) on a cell that shares
  a side with Y (a ball, box or key other than X's own description).

Goals are reported canonically, for every object that qualifies, which is what
hindsight relabeling needs; the episode's own goal holds exactly when the
verifier reports the mission's success.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from minigrid.core.actions import Actions

from autotelic.envs.babyai.grammar import OBJECT_TYPES, PORTABLE_TYPES, Category, Goal, Thing

_SIDES = ((1, 0), (0, 1), (-1, 0), (0, -1))


@dataclass(frozen=True, slots=True)
class Before:
    """What the achieved goals of a step depend on from before it."""

    carrying: Any
    """The carried minigrid object, or None."""


def before_step(level: Any) -> Before:
    return Before(carrying=level.carrying)


def achieved_goals(level: Any, action: int, before: Before) -> list[str]:
    """Canonical goals the step ``action`` made true in ``level`` (a stepped minigrid env)."""
    goals: list[Goal] = []
    front = _thing_at(level, level.front_pos, OBJECT_TYPES)
    if front is not None:
        goals.append(Goal(Category.GO_TO, front))
    if action == Actions.pickup and before.carrying is None and level.carrying is not None:
        goals.append(Goal(Category.PICK_UP, _thing(level.carrying)))
    if action == Actions.toggle and front is not None and _is_open_door(level, front):
        goals.append(Goal(Category.OPEN, front))
    if action == Actions.drop and before.carrying is not None and level.carrying is None:
        goals.extend(_put_next(level, _thing(before.carrying)))
    return list(dict.fromkeys(g.text for g in goals))


def _put_next(level: Any, moved: Thing) -> list[Goal]:
    x, y = (int(v) for v in level.front_pos)
    goals = []
    for dx, dy in _SIDES:
        neighbour = _thing_at(level, (x + dx, y + dy), PORTABLE_TYPES)
        if neighbour is not None and neighbour != moved:
            goals.append(Goal(Category.PUT_NEXT, moved, neighbour))
    return sorted(goals, key=lambda g: g.text)


def _thing_at(level: Any, pos: Any, kinds: tuple[str, ...]) -> Thing | None:
    x, y = int(pos[0]), int(pos[1])
    if not (0 <= x < level.grid.width and 0 <= y < level.grid.height):
        return None
    cell = level.grid.get(x, y)
    if cell is None or cell.type not in kinds:
        return None
    return _thing(cell)


def _is_open_door(level: Any, front: Thing) -> bool:
    return front.kind == "door" and bool(level.grid.get(*level.front_pos).is_open)


def _thing(obj: Any) -> Thing:
    return Thing(str(obj.color), str(obj.type))
