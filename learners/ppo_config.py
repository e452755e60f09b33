"""The ``algorithm:`` section of PPO-GLAM (``name: ppo``).

Apart from the learner and free of torch, so a configuration is read and checked
(``autotelic config show``, ``inject``) without loading the deep-learning stack.
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from autotelic.core import OnPolicyConfig


class PPOConfig(OnPolicyConfig):
    """PPO-GLAM hyper-parameters; defaults follow Carta et al. (2023) where they apply."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Literal["ppo"] = Field("ppo", description="PPO-GLAM (on-policy, from rollouts).")
    gamma: float = Field(default=0.99, gt=0.0, le=1.0, description="Discount per step.")
    gae_lambda: float = Field(default=0.99, ge=0.0, le=1.0, description="GAE lambda.")
    clip_ratio: float = Field(default=0.2, gt=0.0, description="PPO ratio clip epsilon.")
    epochs: int = Field(default=4, ge=1, description="Passes over each rollout.")
    minibatch_size: int = Field(
        default=64, ge=1, description="Steps per gradient step within an epoch."
    )
    lr: float = Field(
        default=1e-4,
        gt=0.0,
        description="Adam learning rate of the LLM: SAC's actor rate for the same weights. "
        "Carta et al.'s 1e-6 was for full fine-tuning of a large model; under LoRA it leaves "
        "the adapter where it started (docs/learning.md, section 7).",
    )
    value_lr: float = Field(
        default=1e-4, gt=0.0, description="Adam learning rate of the value head MLP."
    )
    value_coef: float = Field(default=0.5, ge=0.0, description="Weight of the value loss.")
    entropy_coef: float = Field(
        default=0.01, ge=0.0, description="Weight of the entropy bonus (over candidates)."
    )
    value_clip: float | None = Field(
        default=0.2,
        gt=0.0,
        description="Clip of the value change per update around the rollout values; None: off.",
    )
    max_grad_norm: float | None = Field(
        default=0.5, gt=0.0, description="Gradient-norm clip; None: no clipping."
    )
    normalize_advantages: bool = Field(
        default=True, description="Standardise advantages within each minibatch."
    )
    target_kl: float | None = Field(
        default=None,
        gt=0.0,
        description="Stop the epochs early once the approximate KL exceeds this; None: never.",
    )
    value_hidden: tuple[int, ...] = Field(
        default=(1024, 1024), description="Hidden layer widths of the value head MLP."
    )
    padding_side: Literal["left", "right"] = Field(
        default="right", description="Where packed sequences are padded (results are equal)."
    )
    seed: int = Field(default=0, description="Seed of the value head and of minibatch shuffling.")
