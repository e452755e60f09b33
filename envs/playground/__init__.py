"""Playground-Text: grasp objects, grow plants and animals, from text observations.

Importing this package registers ``autotelic/PlaygroundText-v0`` with autotelic's
registry (the runtime's default environment) and with gymnasium.
"""

import gymnasium as gym

from autotelic.core import InadmissibleActionError, register_env
from autotelic.envs.playground.batch import goal_space, make_batch
from autotelic.envs.playground.config import ENV_ID, PlaygroundConfig
from autotelic.envs.playground.env import EpisodeOverError, PlaygroundTextEnv
from autotelic.envs.playground.goal_space import PlaygroundGoalSpace
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
from autotelic.envs.playground.scene import Scene
from autotelic.envs.playground.vocabulary import vocabulary

__all__ = [
    "ENV_ID",
    "FEASIBLE_CATEGORIES",
    "HORIZONS",
    "IMPOSSIBLE_HORIZON",
    "OBJECTS_BY_CATEGORY",
    "OPTIMAL_STEPS",
    "WATER",
    "EpisodeOverError",
    "Goal",
    "GoalCategory",
    "GoalError",
    "InadmissibleActionError",
    "NoPlanError",
    "ObjectCategory",
    "PlaygroundConfig",
    "PlaygroundGoalSpace",
    "PlaygroundTextEnv",
    "Scene",
    "Verb",
    "achieved",
    "achieved_batch",
    "all_goals",
    "canonical_goal",
    "goal_category",
    "goal_space",
    "make_batch",
    "objects_in_split",
    "oracle_action",
    "parse_goal",
    "reward",
    "split_of",
    "vocabulary",
]

register_env(
    ENV_ID,
    config=PlaygroundConfig,
    make=make_batch,
    goal_space=goal_space,
    vocabulary=vocabulary,
    description="Playground-Text: grasp objects, grow plants and animals (Colas et al.)",
    default=True,
)
if ENV_ID not in gym.registry:
    gym.register(
        id=ENV_ID,
        entry_point="autotelic.envs.playground.env:PlaygroundTextEnv",
        disable_env_checker=True,
    )
