"""LLM policy, critic heads and the learning algorithms (SAC-GLAM, PPO-GLAM).

Public API (imported lazily: importing the package does not import torch):

Models
    ``ModelConfig``, ``PolicyModel``, ``load_model(config)``, ``ModelError``,
    ``default_cache_dir()`` (tiny test models: :mod:`autotelic.testing.tiny_models`)
Scoring
    ``Scorer(model, padding_side=...)`` with ``.score(prompts, candidates, *, module=None,
    logprobs=True) -> Scores``; ``Scores`` (``logprobs``, ``log_pi``, ``features``,
    ``state_features``, ``layout``, ``entropy()``); ``CandidateLayout``; ``ScoringInputError``
    (the one-sequence-per-pair reference: :mod:`autotelic.testing.naive_scorer`)
Acting
    ``Policy``, ``ActResult`` (``actions``, ``log_probs``, ``entropies``, ``probs``,
    ``policy_version``)
Learners
    ``SACConfig``, ``SACLearner``, ``PPOConfig``, ``PPOLearner``, ``CheckpointError``,
    ``QEnsemble`` (the contracts they implement are in :mod:`autotelic.core`; they register
    in :mod:`autotelic.learners.algorithms`)
Prompts
    ``build_prompt``, ``build_prompts``, ``candidate_text``
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from autotelic.learners.base import CheckpointError
    from autotelic.learners.cache import default_cache_dir
    from autotelic.learners.critic import QEnsemble
    from autotelic.learners.encoding import ScoringInputError
    from autotelic.learners.layout import CandidateLayout
    from autotelic.learners.models import ModelConfig, ModelError, PolicyModel, load_model
    from autotelic.learners.policy import Policy
    from autotelic.learners.ppo import PPOLearner
    from autotelic.learners.ppo_config import PPOConfig
    from autotelic.learners.prompt import build_prompt, build_prompts, candidate_text
    from autotelic.learners.sac import SACLearner
    from autotelic.learners.sac_config import SACConfig
    from autotelic.learners.scorer import Scorer, Scores

_WHERE = {
    "CheckpointError": "base",
    "default_cache_dir": "cache",
    "QEnsemble": "critic",
    "ScoringInputError": "encoding",
    "CandidateLayout": "layout",
    "ModelConfig": "model_config",
    "ModelError": "models",
    "PolicyModel": "models",
    "load_model": "models",
    "Policy": "policy",
    "PPOConfig": "ppo_config",
    "PPOLearner": "ppo",
    "build_prompt": "prompt",
    "build_prompts": "prompt",
    "candidate_text": "prompt",
    "SACConfig": "sac_config",
    "SACLearner": "sac",
    "Scorer": "scorer",
    "Scores": "scorer",
}

__all__ = [
    "CandidateLayout",
    "CheckpointError",
    "ModelConfig",
    "ModelError",
    "PPOConfig",
    "PPOLearner",
    "Policy",
    "PolicyModel",
    "QEnsemble",
    "SACConfig",
    "SACLearner",
    "Scorer",
    "Scores",
    "ScoringInputError",
    "build_prompt",
    "build_prompts",
    "candidate_text",
    "default_cache_dir",
    "load_model",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"autotelic.learners.{module}"), name)
