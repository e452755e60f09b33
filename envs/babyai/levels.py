"""BabyAI levels built for a given goal, so minigrid's verifier and the BabyAI bot apply.

Objects goals (go to, pick up or put next to balls, boxes and keys) get one
room, as BabyAI's GoToLocal / PickupLocal / PutNextLocal levels. Door goals (go
to or open a door) get the middle room of a 3x3 grid with four closed doors of
distinct colours, one on each wall, as BabyAI's OpenDoor / GoToObjDoor levels.
The goal's objects appear exactly once (distractors never copy them), the agent
is placed first and objects never next to it, so no goal holds at the start.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from minigrid.core.roomgrid import RoomGrid
from minigrid.envs.babyai.core.roomgrid_level import RejectSampling, RoomGridLevel
from minigrid.envs.babyai.core.verifier import (
    GoToInstr,
    Instr,
    ObjDesc,
    OpenInstr,
    PickupInstr,
    PutNextInstr,
)

from autotelic.envs.babyai.grammar import COLOURS, PORTABLE_TYPES, Category, Goal, Thing

_MAX_DRAWS = 1000
"""Rejection-sampling attempts before a level is declared impossible to lay out."""


def instructions_for(goal: Goal) -> Instr:
    """Minigrid's verifier instruction whose mission text is ``goal``'s canonical form."""
    # minigrid's verifier is untyped
    target = ObjDesc(goal.target.kind, goal.target.colour)  # type: ignore[no-untyped-call]
    if goal.category is Category.GO_TO:
        return GoToInstr(target)  # type: ignore[no-untyped-call]
    if goal.category is Category.PICK_UP:
        return PickupInstr(target)  # type: ignore[no-untyped-call]
    if goal.category is Category.OPEN:
        return OpenInstr(target)  # type: ignore[no-untyped-call]
    assert goal.fixed is not None
    fixed = ObjDesc(goal.fixed.kind, goal.fixed.colour)  # type: ignore[no-untyped-call]
    return PutNextInstr(target, fixed)  # type: ignore[no-untyped-call]


def needs_doors(goal: Goal) -> bool:
    """Door goals get the room with doors; every other goal the single room."""
    return goal.target.kind == "door"


class GoalLevel(RoomGridLevel):
    """A level whose mission is :attr:`goal`; set it, then ``reset(seed=...)``.

    The layout depends only on the goal, the seed and the settings, so a seed
    regenerates an episode's start.
    """

    def __init__(
        self,
        *,
        num_rows: int,
        num_cols: int,
        room_size: int,
        num_distractors: int,
        agent_view_size: int,
        banned: Collection[Thing],
        max_steps: int,
    ) -> None:
        self.goal: Goal | None = None
        self.last_view: tuple[Any, Any] | None = None
        self.num_distractors = num_distractors
        self.banned = frozenset(banned)
        super().__init__(
            room_size=room_size,
            num_rows=num_rows,
            num_cols=num_cols,
            max_steps=max_steps,
            agent_view_size=agent_view_size,
        )

    # minigrid's hooks ---------------------------------------------------------------------

    def _gen_grid(self, width: int, height: int) -> None:
        """Draw rooms and mission until the verifier accepts them (minigrid's own loop
        prints each rejection; this one stays quiet and gives up after a while)."""
        for _ in range(_MAX_DRAWS):
            RoomGrid._gen_grid(self, width, height)  # type: ignore[no-untyped-call]
            try:
                self.gen_mission()
                self.validate_instrs(self.instrs)  # type: ignore[no-untyped-call]
            except (RejectSampling, RecursionError):
                continue
            self.surface = self.instrs.surface(self)  # type: ignore[no-untyped-call]
            self.mission = self.surface
            return
        raise RuntimeError(f"could not lay out a level for {self._goal().text!r}")

    def gen_obs(self) -> dict[str, Any]:
        """Minigrid's observation, keeping the agent's view it is made of in
        :attr:`last_view` so the text need not compute it a second time."""
        grid, visible = self.last_view = self.gen_obs_grid()  # type: ignore[no-untyped-call]
        return {"image": grid.encode(visible), "direction": self.agent_dir, "mission": self.mission}

    def gen_mission(self) -> None:
        goal = self._goal()
        self.lay_out(goal)
        self.check_objs_reachable()  # type: ignore[no-untyped-call]
        self.instrs = instructions_for(goal)

    # layout ---------------------------------------------------------------------------------

    def lay_out(self, goal: Goal) -> None:
        """Place the agent, the goal's objects and the distractors."""
        raise NotImplementedError

    def add_things(self, room: tuple[int, int], things: Collection[Thing]) -> None:
        for thing in things:
            self.add_object(*room, thing.kind, thing.colour)

    def add_distractors_avoiding(self, room: tuple[int, int], avoid: Collection[Thing]) -> None:
        """``num_distractors`` random portable objects, none of them in ``avoid``."""
        allowed = [Thing(c, k) for c in COLOURS for k in PORTABLE_TYPES if Thing(c, k) not in avoid]
        for _ in range(self.num_distractors):
            thing = self._rand_elem(allowed)
            self.add_object(*room, thing.kind, thing.colour)

    def _goal(self) -> Goal:
        if self.goal is None:
            raise RuntimeError("set the level's goal before resetting it")
        return self.goal


class ObjectRoomLevel(GoalLevel):
    """One room with the goal's objects and distractors (BabyAI's *Local levels)."""

    def __init__(self, **settings: Any) -> None:
        super().__init__(num_rows=1, num_cols=1, **settings)

    def lay_out(self, goal: Goal) -> None:
        self.place_agent(0, 0)
        self.add_things((0, 0), goal.things)
        self.add_distractors_avoiding((0, 0), {*goal.things, *self.banned})


class DoorRoomLevel(GoalLevel):
    """The middle room of a 3x3 grid, a closed door of its own colour on each wall."""

    def __init__(self, **settings: Any) -> None:
        super().__init__(num_rows=3, num_cols=3, **settings)

    def lay_out(self, goal: Goal) -> None:
        others = [
            c for c in COLOURS if c != goal.target.colour and Thing(c, "door") not in self.banned
        ]
        colours = [goal.target.colour, *self._rand_subset(others, 3)]
        for wall, colour in enumerate(self._rand_subset(colours, 4)):
            self.add_door(1, 1, door_idx=wall, color=colour, locked=False)
        self.place_agent(1, 1)
        self.add_distractors_avoiding((1, 1), self.banned)
