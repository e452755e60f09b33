"""Playground-Text as a registered batch: what the runtime builds from ``env.id``."""

from __future__ import annotations

from autotelic.core import Split
from autotelic.envs.gym_batch import GymTextBatch
from autotelic.envs.playground.config import PlaygroundConfig
from autotelic.envs.playground.env import PlaygroundTextEnv
from autotelic.envs.playground.goal_space import PlaygroundGoalSpace


def goal_space(config: PlaygroundConfig) -> PlaygroundGoalSpace:
    """Playground's goals; the configuration only says whether the impossible ones are
    listed (the grammar is the same)."""
    return PlaygroundGoalSpace(include_impossible=config.impossible_goals)


def make_batch(
    config: PlaygroundConfig | None = None,
    *,
    num_envs: int | None = None,
    split: Split | None = None,
) -> GymTextBatch:
    """``num_envs`` Playground-Text envs; ``split`` draws scenes from that split's objects."""
    config = config or PlaygroundConfig()
    if split is not None and split != config.split:
        config = config.model_copy(update={"split": split})
    n = config.num_envs if num_envs is None else num_envs
    return GymTextBatch([PlaygroundTextEnv(config) for _ in range(n)], goal_space(config))
