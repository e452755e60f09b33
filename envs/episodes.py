"""What every text environment's episode needs alike: the live world and goal, the
guard against stepping outside an episode, and an action given by text or index.

Kept in one place so that each environment raises the same errors with the same
words (the runtime and the tests rely on ``EpisodeOverError`` and
``InadmissibleActionError``) and a plug-in environment can reuse it.
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral
from typing import Any, Generic, TypeVar

from autotelic.core import EpisodeOverError, InadmissibleActionError

World = TypeVar("World")
GoalT = TypeVar("GoalT")


class LiveEpisode(Generic[World, GoalT]):
    """The world an episode is played in and its goal, once ``start`` was called;
    ``done`` once the episode has ended (the world stays readable)."""

    def __init__(self) -> None:
        self._world: World | None = None
        self._goal: GoalT | None = None
        self.done = True

    def start(self, world: World, goal: GoalT) -> None:
        """A new episode on ``world`` for ``goal``."""
        self._world, self._goal, self.done = world, goal, False

    def require(self, allow_done: bool = False) -> tuple[World, GoalT]:
        """The world and goal; an error when no episode started, or (unless
        ``allow_done``) when it is over."""
        if self._world is None or self._goal is None:
            raise EpisodeOverError("no episode: call reset() first")
        if self.done and not allow_done:
            raise EpisodeOverError("the episode is over: call reset() before step()")
        return self._world, self._goal


def action_index(action: str | int, admissible: Sequence[str]) -> int:
    """The index in ``admissible`` of ``action``, given as its text or its index (a bool
    is not an index); anything else is an :class:`InadmissibleActionError`."""
    if isinstance(action, str):
        if action not in admissible:
            raise InadmissibleActionError(action, list(admissible))
        return list(admissible).index(action)
    if isinstance(action, bool) or not isinstance(action, Integral):
        raise InadmissibleActionError(action, list(admissible))
    if not 0 <= int(action) < len(admissible):
        raise InadmissibleActionError(action, list(admissible))
    return int(action)


def render_mode_of(render_mode: str | None, metadata: dict[str, Any]) -> str | None:
    """``render_mode`` as gymnasium passes it to an environment (``gym.make(...,
    render_mode="ansi")``, and its checker), refused unless the metadata lists it."""
    modes = metadata.get("render_modes", [])
    if render_mode is not None and render_mode not in modes:
        raise ValueError(f"render_mode {render_mode!r} is not one of {modes}")
    return render_mode


def render(goal_text: str, world_text: str) -> str:
    """The ``ansi`` rendering every text environment gives: the goal, then the world."""
    return f"Goal: {goal_text}\n{world_text}"
