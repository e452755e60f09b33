"""Scene state and mechanics: what is where, what the agent may do, what happens.

A scene is a handful of distinct objects. Each lies on the floor or sits in the
agent's inventory (two slots); the agent stands on at most one floor object.
Everything the observation says is derived from this state, and every change
goes through :meth:`Scene.apply`, which returns the goals the step achieved.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from autotelic.core import InadmissibleActionError
from autotelic.envs.playground.goals import Goal, GoalCategory, Verb, goals_of_events, parse_goal
from autotelic.envs.playground.objects import (
    CATEGORY_OF,
    FEEDS,
    GROWABLE,
    WATER,
    ObjectCategory,
    display_name,
)

INVENTORY_SIZE = 2


@dataclass(slots=True)
class Thing:
    """One object of the scene and its growth stage."""

    name: str
    grown: bool

    @property
    def category(self) -> ObjectCategory:
        return CATEGORY_OF[self.name]

    @property
    def label(self) -> str:
        """The name the observation and the actions use (``carrot seed``, ``baby cow``)."""
        return display_name(self.name, self.grown)


def feeds(given: Thing, target: Thing) -> bool:
    """Whether releasing ``given`` onto ``target`` makes ``target`` grow."""
    if target.grown or target.category not in GROWABLE:
        return False
    needed = FEEDS[target.category]
    return given.category is needed and (given.grown or needed is ObjectCategory.WATER)


@dataclass
class Scene:
    """The mutable state of one episode."""

    floor: list[Thing]
    inventory: list[Thing] = field(default_factory=list)
    standing_on: Thing | None = None

    @classmethod
    def fresh(cls, names: list[str]) -> Scene:
        """A new scene: every plant a seed, every animal a baby, the agent empty-handed."""
        if len(set(names)) != len(names):
            raise ValueError(f"scene objects must be distinct, got {names}")
        return cls(floor=[Thing(n, grown=CATEGORY_OF[n] not in GROWABLE) for n in names])

    # -- reading -------------------------------------------------------------------------------

    def things(self) -> list[Thing]:
        """Every object still in the scene, floor first."""
        return [*self.floor, *self.inventory]

    def find(self, name: str) -> Thing | None:
        return next((t for t in self.things() if t.name == name), None)

    def admissible_actions(self) -> list[str]:
        """The actions allowed now, in a stable order: go to, grasp, release."""
        actions = [f"Go to {t.label}" for t in self.floor if t is not self.standing_on]
        if self.standing_on is not None and len(self.inventory) < INVENTORY_SIZE:
            actions.append("Grasp")
        actions.extend(f"Release {t.label}" for t in self.inventory)
        if len(self.inventory) == INVENTORY_SIZE:
            actions.append("Release all")
        return actions

    def observation(self) -> str:
        """The three-line text observation."""
        seen = ", ".join(t.label for t in self.floor) or "nothing"
        on = self.standing_on.label if self.standing_on is not None else "nothing"
        held = ", ".join(t.label for t in self.inventory) or "empty"
        return (
            f"You see: {seen}\n"
            f"You are standing on: {on}\n"
            f"Inventory ({len(self.inventory)}/{INVENTORY_SIZE}): {held}"
        )

    # -- acting --------------------------------------------------------------------------------

    def apply(self, action: str) -> list[str]:
        """Carry out an admissible action; return the goals it achieved (canonical strings).

        Raises :class:`InadmissibleActionError` without touching the state otherwise.
        """
        admissible = self.admissible_actions()
        if action not in admissible:
            raise InadmissibleActionError(action, admissible)
        events: list[tuple[Verb, str]] = []
        if action.startswith("Go to "):
            label = action.removeprefix("Go to ")
            self.standing_on = next(t for t in self.floor if t.label == label)
        elif action == "Grasp":
            assert self.standing_on is not None
            thing = self.standing_on
            self.floor.remove(thing)
            self.inventory.append(thing)
            self.standing_on = None
            events.append((Verb.GRASP, thing.name))
        elif action == "Release all":
            for thing in list(self.inventory):
                events.extend(self._release(thing))
        else:
            label = action.removeprefix("Release ")
            events.extend(self._release(next(t for t in self.inventory if t.label == label)))
        return goals_of_events(events)

    def _release(self, thing: Thing) -> list[tuple[Verb, str]]:
        """Release a held object onto what the agent stands on: feed it, or drop it there."""
        self.inventory.remove(thing)
        target = self.standing_on
        if target is not None and feeds(thing, target):
            target.grown = True  # the given object is consumed: it leaves the scene
            return [(Verb.GROW, target.name)]
        self.floor.append(thing)
        self.standing_on = thing
        return []

    # -- planning ------------------------------------------------------------------------------

    def is_feasible(self, goal: str | Goal) -> bool:
        """Whether the goal can still be achieved from this state."""
        parsed = parse_goal(goal) if isinstance(goal, str) else goal
        if parsed.verb is Verb.GRASP:
            return self.find(parsed.obj) is not None
        if parsed.category is GoalCategory.GROW_FURNITURE:
            return False
        target = self.find(parsed.obj)
        return (
            target is not None
            and not target.grown
            and self._can_supply(FEEDS[target.category], exclude=target.name)
        )

    def _can_supply(self, category: ObjectCategory, exclude: str) -> bool:
        """Whether a grown object of ``category`` is or can be made available."""
        if category is ObjectCategory.WATER:
            return self.find(WATER) is not None
        for thing in self.things():
            if thing.name == exclude or thing.category is not category:
                continue
            if thing.grown or self._can_supply(FEEDS[category], exclude=thing.name):
                return True
        return False


def required_objects(goal: Goal, pick: dict[ObjectCategory, str]) -> list[str]:
    """The objects a fresh scene needs for ``goal`` to be feasible.

    ``pick`` chooses the supporting plant and herbivore when the goal needs them.
    """
    if goal.verb is Verb.GRASP:
        return [goal.obj]
    needed = [goal.obj]
    category = goal.object_category
    while category in FEEDS:
        category = FEEDS[category]
        needed.append(WATER if category is ObjectCategory.WATER else pick[category])
    return needed
