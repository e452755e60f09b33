"""The ``algorithm:`` section of SAC-GLAM (``name: sac``).

Apart from the learner and free of torch, so a configuration is read and checked
(``autotelic config show``, ``inject``) without loading the deep-learning stack.
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from autotelic.core import OffPolicyConfig


class SACConfig(OffPolicyConfig):
    """SAC-GLAM hyper-parameters; defaults follow the authors' reference settings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Literal["sac"] = Field("sac", description="SAC-GLAM (off-policy, from replay).")
    actor_lr: float = Field(
        default=1e-4, gt=0.0, description="Adam learning rate of the LLM (LoRA or full)."
    )
    critic_lr: float = Field(default=1e-4, gt=0.0, description="Adam learning rate of the Q heads.")
    alpha_lr: float = Field(
        default=1e-2,
        gt=0.0,
        description=(
            "Learning rate of log alpha. Under Adam log alpha moves by up to about this much "
            "per update: 1e-2 adapts within a few hundred updates, 1e-3 (the authors') barely "
            "moves it (docs/learning.md)."
        ),
    )
    alpha_optimizer: Literal["adam", "sgd", "fixed"] = Field(
        default="adam",
        description=(
            "adam: log alpha moves by about alpha_lr per update whatever the entropy gap; "
            "sgd: by alpha_lr times the gap (its alpha_lr is on another scale); fixed: "
            "alpha stays at exp(initial_log_alpha). Where every action has the same Q (a "
            "goal never achieved) the actor is pulled to uniform at a rate alpha sets; a "
            "small fixed alpha keeps what it learnt on similar goals there (docs/results.md)."
        ),
    )
    initial_log_alpha: float = Field(
        default=-3.0,
        description=(
            "log alpha before any update (the authors' -3, alpha 0.05). With time limits "
            "observed (run.time_limit) the soft-optimal policy at alpha 0.05 and gamma 0.99 "
            "reaches the goal of every Playground-shaped task (2 to 10 steps); bootstrapped "
            "limits need alpha <= 0.002 for that (docs/learning.md)."
        ),
    )
    target_entropy_ratio: float = Field(
        default=0.3,
        ge=0.0,
        le=1.0,
        description=(
            "kappa: per-state target entropy kappa * log |A(s)|. A learned alpha settles where "
            "the policy's entropy meets it: at 0.3 the soft-optimal policy still reaches the "
            "goal of every measured task (P 1.00), at 0.5 a 2-step Grasp drops to 0.91 "
            "(docs/learning.md). 0.98 (the continuous-SAC habit) is unreachable with a few "
            "actions and makes alpha explode."
        ),
    )
    tau: float = Field(
        default=0.005, gt=0.0, le=1.0, description="Polyak rate of the target heads and adapter."
    )
    critic_hidden: tuple[int, ...] = Field(
        default=(1024, 1024), description="Hidden layer widths of each Q head MLP."
    )
    num_q_heads: int = Field(
        default=2, ge=1, description="Q heads; 2 gives clipped double-Q (min of the two)."
    )
    critic_warmup_updates: int = Field(
        default=16,
        ge=0,
        description="First updates that train only the Q heads (LLM and alpha frozen).",
    )
    max_grad_norm: float | None = Field(
        default=1.0,
        gt=0.0,
        description=(
            "Gradient-norm clip of the heads, and of the LLM's gradient as grad_clip says; "
            "None: no clipping."
        ),
    )
    grad_clip: Literal["per_loss", "joint"] = Field(
        default="per_loss",
        description=(
            "per_loss: the actor's and the critic's gradients on the LLM are clipped each to "
            "max_grad_norm, then summed (two backward passes); joint: their sum is clipped once."
        ),
    )
    critic_body_grad_scale: float = Field(
        default=1.0,
        ge=0.0,
        description=(
            "Factor on the critic's gradient into the LLM (after its clip under per_loss); "
            "1.0 weighs it like the actor's, 0.0 trains the LLM by the actor loss only. 0.1 "
            "gave the actor a larger share of each step but learned half as well "
            "(docs/learning.md section 8)."
        ),
    )
    critic_trains_llm: bool = Field(
        default=True,
        description=(
            "Let the critic loss also shape the LLM (LoRA) it reads features from, as the "
            "authors' code does; false trains the LLM by the actor loss only."
        ),
    )
    target_llm: bool = Field(
        default=True,
        description=(
            "Read target features from a Polyak-averaged (tau) copy of the trained LLM "
            "weights: the LoRA adapter, or the whole body under finetune: full (a second copy "
            "of the weights); one more forward of the next states per update. False reads them "
            "from the online pass that gives pi(a'|s')."
        ),
    )
    micro_batch_size: int | None = Field(
        default=None,
        ge=1,
        description="Rows per forward/backward chunk (gradients accumulate); None: whole batch.",
    )
    padding_side: Literal["left", "right"] = Field(
        default="right", description="Where packed sequences are padded (results are equal)."
    )
    seed: int = Field(default=0, description="Seed of the Q heads' initialisation.")
