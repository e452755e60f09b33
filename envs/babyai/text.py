"""What the agent sees, in a few short English lines a small language model can read.

One line per object in the agent's partial view (minigrid's own field of view
and occlusion), nearest first, with its offset from the agent in steps forward
and left or right; then the first wall straight ahead, to the left and to the
right, when the view shows one; then what the agent carries::

    You see a red ball 2 steps forward and 1 step left.
    You see a closed blue door 3 steps forward.
    You see a wall 4 steps forward.
    You carry nothing.

The same state always gives the same text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

_NOTHING_SEEN = "You see nothing nearby."


@dataclass(frozen=True, slots=True)
class Sighting:
    """A visible object and where it is relative to the agent."""

    label: str
    """``red ball``, ``closed blue door``..."""
    forward: int
    """Steps ahead (0: level with the agent)."""
    right: int
    """Steps to the right; negative: to the left."""

    @property
    def text(self) -> str:
        return f"{_article(self.label)} {self.label} {offset(self.forward, self.right)}"


def describe(level: Any) -> str:
    """The observation text of a minigrid env's current state."""
    grid, visible = level.gen_obs_grid()
    return describe_view(grid, visible, level.carrying)


def describe_view(grid: Any, visible: Any, carrying: Any) -> str:
    """The text of an agent-centred view (minigrid's ``gen_obs_grid``) and what is carried."""
    lines = [f"You see {s.text}." for s in sightings(grid, visible)]
    lines += [f"You see a wall {w}." for w in walls(grid, visible)]
    if not lines:
        lines.append(_NOTHING_SEEN)
    lines.append(carrying_line(carrying))
    return "\n".join(lines)


def sightings(grid: Any, visible: Any) -> list[Sighting]:
    """Visible objects (walls excepted) of an agent-centred view, nearest first."""
    size = grid.width
    found = []
    for vx in range(size):
        for vy in range(size):
            forward, right = size - 1 - vy, vx - size // 2
            cell = grid.get(vx, vy)
            if (forward, right) == (0, 0) or cell is None or not visible[vx, vy]:
                continue
            if cell.type != "wall":
                found.append(Sighting(label(cell), forward, right))
    return sorted(found, key=lambda s: (s.forward + abs(s.right), s.forward, s.right))


def walls(grid: Any, visible: Any) -> list[str]:
    """Offsets of the first wall ahead, left and right, when it is in view."""
    size = grid.width
    agent = (size // 2, size - 1)
    rays = (((0, -1), "forward"), ((-1, 0), "left"), ((1, 0), "right"))
    found = []
    for (dx, dy), word in rays:
        x, y = agent
        for steps in range(1, size):
            x, y = x + dx, y + dy
            if not (0 <= x < size and 0 <= y < size) or not visible[x, y]:
                break
            cell = grid.get(x, y)
            if cell is not None and cell.type == "wall":
                found.append(f"{steps} {_steps(steps)} {word}")
                break
    return found


def label(obj: Any) -> str:
    """``red ball``; doors say whether they are open, closed or locked."""
    if obj.type != "door":
        return f"{obj.color} {obj.type}"
    state = "open" if obj.is_open else "locked" if obj.is_locked else "closed"
    return f"{state} {obj.color} door"


def offset(forward: int, right: int) -> str:
    """``2 steps forward and 1 step left``; a zero part is left out."""
    parts = []
    if forward:
        parts.append(f"{forward} {_steps(forward)} forward")
    if right:
        side = "right" if right > 0 else "left"
        parts.append(f"{abs(right)} {_steps(abs(right))} {side}")
    return " and ".join(parts)


def carrying_line(carried: Any) -> str:
    if carried is None:
        return "You carry nothing."
    name = label(carried)
    return f"You carry {_article(name)} {name}."


def _steps(n: int) -> str:
    return "step" if n == 1 else "steps"


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"
