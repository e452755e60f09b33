"""BabyAI-Text: BabyAI's go-to, pick-up, open and put-next-to missions, in text.

The environment of GLAM (Carta et al. 2023) rebuilt on minigrid's BabyAI: a
level is generated for each goal, the agent reads what its partial view shows
and what it carries, and acts with six text actions. Importing this package
registers ``autotelic/BabyAIText-v0`` with autotelic's registry and with
gymnasium.
"""

import gymnasium as gym

from autotelic.core import register_env
from autotelic.envs.babyai.achieved import achieved_goals
from autotelic.envs.babyai.batch import goal_space, make_batch
from autotelic.envs.babyai.config import ENV_ID, BabyAIConfig
from autotelic.envs.babyai.env import ACTIONS, BabyAITextEnv
from autotelic.envs.babyai.goal_space import BabyAIGoalSpace
from autotelic.envs.babyai.grammar import (
    COLOURS,
    OBJECT_TYPES,
    PORTABLE_TYPES,
    Category,
    Goal,
    GoalError,
    Thing,
    canonical_goal,
    goal_category,
    parse_goal,
)
from autotelic.envs.babyai.levels import DoorRoomLevel, GoalLevel, ObjectRoomLevel
from autotelic.envs.babyai.oracle import BotAdvisor, OracleError, oracle_action
from autotelic.envs.babyai.splits import HELD_OUT, all_goals, split_of
from autotelic.envs.babyai.text import describe
from autotelic.envs.babyai.vocabulary import vocabulary

__all__ = [
    "ACTIONS",
    "COLOURS",
    "ENV_ID",
    "HELD_OUT",
    "OBJECT_TYPES",
    "PORTABLE_TYPES",
    "BabyAIConfig",
    "BabyAIGoalSpace",
    "BabyAITextEnv",
    "BotAdvisor",
    "Category",
    "DoorRoomLevel",
    "Goal",
    "GoalError",
    "GoalLevel",
    "ObjectRoomLevel",
    "OracleError",
    "Thing",
    "achieved_goals",
    "all_goals",
    "canonical_goal",
    "describe",
    "goal_category",
    "goal_space",
    "make_batch",
    "oracle_action",
    "parse_goal",
    "split_of",
    "vocabulary",
]

register_env(
    ENV_ID,
    config=BabyAIConfig,
    make=make_batch,
    goal_space=goal_space,
    vocabulary=vocabulary,
    description="BabyAI-Text: go to, pick up, open, put next to, in text (GLAM, Carta et al.)",
)
if ENV_ID not in gym.registry:
    gym.register(
        id=ENV_ID,
        entry_point="autotelic.envs.babyai.env:BabyAITextEnv",
        disable_env_checker=True,
    )
