"""Registers the built-in algorithms, SAC-GLAM and PPO-GLAM, with autotelic's registry.

Building a learner loads its model, so torch is imported only when one is built.
"""

from __future__ import annotations

from autotelic.core import Learner, register_algorithm
from autotelic.learners.model_config import ModelConfig
from autotelic.learners.ppo_config import PPOConfig
from autotelic.learners.sac_config import SACConfig


def build_sac(model: ModelConfig, config: SACConfig) -> Learner:
    from autotelic.learners.models import load_model
    from autotelic.learners.sac import SACLearner

    return SACLearner(load_model(model), config)


def build_ppo(model: ModelConfig, config: PPOConfig) -> Learner:
    from autotelic.learners.models import load_model
    from autotelic.learners.ppo import PPOLearner

    return PPOLearner(load_model(model), config)


register_algorithm(
    "sac",
    config=SACConfig,
    build=build_sac,
    description="SAC-GLAM: soft actor-critic on the LLM policy, from replay (HER optional)",
    default=True,
)
register_algorithm(
    "ppo",
    config=PPOConfig,
    build=build_ppo,
    description="PPO-GLAM: the on-policy baseline (Carta et al. 2023)",
)
