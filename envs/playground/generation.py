"""Scene and goal generation: a feasible goal gets what it needs, an impossible one does not."""

from __future__ import annotations

import random

from autotelic.envs.playground.config import PlaygroundConfig
from autotelic.envs.playground.goals import (
    FEASIBLE_CATEGORIES,
    Goal,
    GoalCategory,
    Verb,
    parse_goal,
)
from autotelic.envs.playground.objects import (
    OBJECTS_BY_CATEGORY,
    WATER,
    ObjectCategory,
    objects_in_split,
)
from autotelic.envs.playground.scene import Scene, required_objects

_GROW_OBJECT_CATEGORY = {
    GoalCategory.GROW_PLANT: ObjectCategory.PLANT,
    GoalCategory.GROW_HERBIVORE: ObjectCategory.HERBIVORE,
    GoalCategory.GROW_CARNIVORE: ObjectCategory.CARNIVORE,
}


def _pool(config: PlaygroundConfig) -> list[str]:
    names = [n for c in OBJECTS_BY_CATEGORY for n in objects_in_split(c, config.split)]
    return [*names, WATER]


def sample_goal(config: PlaygroundConfig, rng: random.Random) -> str:
    """A feasible-category goal over the config's objects (or from its goal list)."""
    if config.goals is not None:
        return rng.choice(config.goals)
    categories = list(FEASIBLE_CATEGORIES)
    weights = config.category_weights
    # Given weights are exhaustive: a category they leave out is never sampled.
    relative = [weights.get(c, 0.0) for c in categories] if weights else [1.0] * len(categories)
    category = rng.choices(categories, relative)[0]
    if category is GoalCategory.GRASP:
        obj_category = rng.choice(list(OBJECTS_BY_CATEGORY))
        return f"{Verb.GRASP.value} {rng.choice(objects_in_split(obj_category, config.split))}"
    objects = objects_in_split(_GROW_OBJECT_CATEGORY[category], config.split)
    return f"{Verb.GROW.value} {rng.choice(objects)}"


def feasible_scene(goal: Goal, config: PlaygroundConfig, rng: random.Random) -> list[str]:
    """Object names for a fresh scene in which ``goal`` is feasible."""
    support = {
        c: rng.choice(objects_in_split(c, config.split))
        for c in (ObjectCategory.PLANT, ObjectCategory.HERBIVORE)
    }
    needed = required_objects(goal, support)
    rest = [n for n in _pool(config) if n not in needed]
    names = needed + rng.sample(rest, config.n_objects - len(needed))
    rng.shuffle(names)
    return names


def infeasible_scene(goal: Goal, config: PlaygroundConfig, rng: random.Random) -> list[str]:
    """Object names for a fresh scene in which ``goal`` cannot be achieved.

    Leaving out the goal's own object suffices for every goal, and keeps the
    scene otherwise as varied as a feasible one.
    """
    pool = [n for n in _pool(config) if n != goal.obj]
    for _ in range(100):
        names = rng.sample(pool, config.n_objects)
        if not Scene.fresh(names).is_feasible(goal):
            return names
    raise RuntimeError(f"could not draw a scene where {goal.text!r} is infeasible")  # unreachable


def generate(
    goal_text: str | None,
    config: PlaygroundConfig,
    rng: random.Random,
    feasible: bool | None = None,
) -> tuple[Goal, Scene]:
    """Draw the episode's goal (unless given) and a scene for it.

    ``feasible`` forces the scene's kind; by default a scene is infeasible with
    probability ``config.impossible_share``; a sampled goal for an infeasible
    scene is sometimes one that never holds (growing furniture), which gets an
    ordinary scene.
    """
    # Both draws happen whether or not a goal is given, and the goal has its own stream:
    # so a recorded (goal, seed) pair regenerates the same scene.
    feasible_draw = rng.random()
    goal_rng = random.Random(rng.getrandbits(64))
    if feasible is None:
        feasible = feasible_draw >= config.impossible_share
    if goal_text is None:
        goal_text = sample_goal(config, goal_rng)
        if not feasible and goal_rng.random() < 1 / (len(FEASIBLE_CATEGORIES) + 1):
            furniture = objects_in_split(ObjectCategory.FURNITURE, config.split)
            goal_text = f"{Verb.GROW.value} {goal_rng.choice(furniture)}"
    goal = parse_goal(goal_text)
    if goal.category is GoalCategory.GROW_FURNITURE:
        names = rng.sample(_pool(config), config.n_objects)
    elif feasible:
        names = feasible_scene(goal, config, rng)
    else:
        names = infeasible_scene(goal, config, rng)
    return goal, Scene.fresh(names)
