"""Building a learner from configuration (what the runtime's config names)."""

from __future__ import annotations

from autotelic.learners.models import ModelConfig, load_model
from autotelic.learners.ppo import PPOConfig, PPOLearner
from autotelic.learners.sac import SACConfig, SACLearner


def build_learner(model: ModelConfig, algorithm: SACConfig | PPOConfig) -> SACLearner | PPOLearner:
    """Load the model and wrap it in the learner whose config is given."""
    if isinstance(algorithm, SACConfig):
        return SACLearner(load_model(model), algorithm)
    if isinstance(algorithm, PPOConfig):
        return PPOLearner(load_model(model), algorithm)
    raise TypeError(f"expected SACConfig or PPOConfig, got {type(algorithm).__name__}")
