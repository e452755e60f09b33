"""Playground-Text: grasp objects, grow plants and animals, from text observations."""

from autotelic.envs.playground.config import PlaygroundConfig
from autotelic.envs.playground.env import ENV_ID, EpisodeOverError, PlaygroundTextEnv
from autotelic.envs.playground.goals import (
    FEASIBLE_CATEGORIES,
    HORIZONS,
    IMPOSSIBLE_HORIZON,
    OPTIMAL_STEPS,
    Goal,
    GoalCategory,
    GoalError,
    Verb,
    achieved,
    achieved_batch,
    all_goals,
    canonical_goal,
    goal_category,
    parse_goal,
    reward,
)
from autotelic.envs.playground.objects import (
    OBJECTS_BY_CATEGORY,
    WATER,
    ObjectCategory,
    objects_in_split,
    split_of,
)
from autotelic.envs.playground.oracle import NoPlanError, oracle_action
from autotelic.envs.playground.scene import InadmissibleActionError, Scene
from autotelic.envs.playground.vector import BatchStep, PlaygroundBatch

__all__ = [
    "ENV_ID",
    "FEASIBLE_CATEGORIES",
    "HORIZONS",
    "IMPOSSIBLE_HORIZON",
    "OBJECTS_BY_CATEGORY",
    "OPTIMAL_STEPS",
    "WATER",
    "BatchStep",
    "EpisodeOverError",
    "Goal",
    "GoalCategory",
    "GoalError",
    "InadmissibleActionError",
    "NoPlanError",
    "ObjectCategory",
    "PlaygroundBatch",
    "PlaygroundConfig",
    "PlaygroundTextEnv",
    "Scene",
    "Verb",
    "achieved",
    "achieved_batch",
    "all_goals",
    "canonical_goal",
    "goal_category",
    "objects_in_split",
    "oracle_action",
    "parse_goal",
    "reward",
    "split_of",
]
