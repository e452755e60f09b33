"""BabyAI-Text as a registered batch: what the runtime builds from ``env.id``."""

from __future__ import annotations

from autotelic.core import Split
from autotelic.envs.babyai.config import BabyAIConfig
from autotelic.envs.babyai.env import BabyAITextEnv
from autotelic.envs.babyai.goal_space import BabyAIGoalSpace
from autotelic.envs.gym_batch import GymTextBatch


def goal_space(config: BabyAIConfig | None = None) -> BabyAIGoalSpace:
    """BabyAI-Text's goals, listed for the configured families."""
    return BabyAIGoalSpace((config or BabyAIConfig()).categories)


def make_batch(
    config: BabyAIConfig | None = None, *, num_envs: int | None = None, split: Split | None = None
) -> GymTextBatch:
    """``num_envs`` BabyAI-Text envs; ``split`` chooses the goals sampled when none is given."""
    config = config or BabyAIConfig()
    if split is not None and split != config.split:
        config = config.model_copy(update={"split": split})
    n = config.num_envs if num_envs is None else num_envs
    return GymTextBatch([BabyAITextEnv(config) for _ in range(n)], goal_space(config))
