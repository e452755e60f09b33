"""A scripted expert that reads only the goal and the observation text.

It re-plans at every step, so it also recovers from states a learner left it
in. From a fresh scene it follows the shortest plan (2/4/7/10 steps by goal
category), which is how the tests check the mechanics.
"""

from __future__ import annotations

from collections.abc import Callable

from autotelic.envs.playground.goals import Verb, parse_goal
from autotelic.envs.playground.objects import FEEDS, ObjectCategory
from autotelic.envs.playground.observation import ObservationView, Seen, parse_observation


class NoPlanError(RuntimeError):
    """The goal cannot be achieved from this observation."""


def oracle_action(goal: str, observation: str) -> str:
    """The next action of a shortest plan for ``goal`` from ``observation``."""
    view = parse_observation(observation)
    parsed = parse_goal(goal)
    if parsed.verb is Verb.GRASP:
        return _fetch(view, lambda s: s.name == parsed.obj, reason=goal)
    return _grow(view, parsed.obj)


def _is_feeder(category: ObjectCategory) -> Callable[[Seen], bool]:
    return lambda s: s.category is category and (s.grown or category is ObjectCategory.WATER)


def _grow(view: ObservationView, target: str) -> str:
    held_target = next((s for s in view.inventory if s.name == target), None)
    if held_target is not None:
        return f"Release {held_target.label}"  # put it down to be able to feed it
    on_floor = next((s for s in view.floor if s.name == target), None)
    if on_floor is None or on_floor.grown or on_floor.category not in FEEDS:
        raise NoPlanError(f"cannot grow {target!r} from this observation")
    feeder = _is_feeder(FEEDS[on_floor.category])
    held = next((s for s in view.inventory if feeder(s)), None)
    if held is not None:
        if view.standing_on is not None and view.standing_on.name == target:
            return f"Release {held.label}"
        return f"Go to {on_floor.label}"
    if any(feeder(s) for s in view.floor):
        return _fetch(view, feeder, reason=f"feed {target}")
    # No grown feeder anywhere: grow one first (a seed for a herbivore, a baby herbivore
    # for a carnivore), choosing one whose own chain is possible.
    for candidate in (*view.floor, *view.inventory):
        if candidate.category is FEEDS[on_floor.category] and not candidate.grown:
            try:
                return _grow(view, candidate.name)
            except NoPlanError:
                continue
    raise NoPlanError(f"nothing can be grown to feed {target!r}")


def _fetch(view: ObservationView, wanted: Callable[[Seen], bool], reason: str) -> str:
    """Steps to get an object matching ``wanted`` into the inventory."""
    if view.standing_on is not None and wanted(view.standing_on):
        if view.has_room:
            return "Grasp"
        return f"Release {view.inventory[0].label}"
    held = next((s for s in view.inventory if wanted(s)), None)
    if held is not None:
        return f"Release {held.label}"  # grasping it again is what the goal asks
    target = next((s for s in view.floor if wanted(s)), None)
    if target is None:
        raise NoPlanError(f"nothing to fetch for {reason!r}")
    return f"Go to {target.label}"
