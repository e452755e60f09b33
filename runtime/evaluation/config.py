"""The ``eval:`` section: periodic evaluation inside the running service. It lives beside
the evaluator it configures; the root configuration (``runtime/config.py``) composes it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

EVAL_SPLITS: tuple[Literal["train", "test"], ...] = ("train", "test")
EVAL_ACTING: tuple[Literal["greedy", "sampled"], ...] = ("greedy", "sampled")


class EvalConfig(BaseModel):
    """Periodic evaluation inside the running service (see docs/evaluation.md)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(
        True, description="Evaluate the current policy periodically while the service trains."
    )
    interval_env_steps: int | None = Field(
        10_000,
        ge=1,
        description="An evaluation is due every this many training env steps (None: not by "
        "steps). The cpu profile (run.profile) makes it 2,000 when unset, so that a laptop's "
        "first session sees an evaluation point.",
    )
    interval_s: float | None = Field(
        None,
        gt=0,
        description="An evaluation is also due this many seconds after the last one started "
        "(None: not by time).",
    )
    episodes_per_category: int = Field(
        4,
        ge=1,
        le=10_000,
        description="Episodes per goal category, split and way of acting: a fixed, seeded "
        "set of goals and scenes, the same at every evaluation.",
    )
    splits: list[Literal["train", "test"]] = Field(
        default_factory=lambda: list(EVAL_SPLITS),
        min_length=1,
        description="Goal splits evaluated: the training goals and the held-out ones.",
    )
    acting: list[Literal["greedy", "sampled"]] = Field(
        default_factory=lambda: list(EVAL_ACTING),
        min_length=1,
        description="Ways of acting evaluated: the most likely action, or one sampled.",
    )
    num_envs: int = Field(
        8, ge=1, le=4096, description="Environments of the evaluation's own batch, per split."
    )
    seed: int = Field(
        12345,
        description="Seed of the evaluation's goals, scenes and sampled actions (the training "
        "streams are never used).",
    )
    max_cost_fraction: float = Field(
        0.1,
        gt=0.0,
        le=1.0,
        description="Evaluation env steps may be at most this share of the training env steps "
        "taken since the service started; evaluation waits for training otherwise.",
    )

    @model_validator(mode="after")
    def _usable(self) -> EvalConfig:
        if self.enabled and self.interval_env_steps is None and self.interval_s is None:
            raise ValueError(
                "eval: set interval_env_steps or interval_s (or enabled: false to turn "
                "periodic evaluation off)"
            )
        for name in ("splits", "acting"):
            values = getattr(self, name)
            if len(set(values)) != len(values):
                raise ValueError(f"eval.{name} lists a value twice: {values}")
        return self
