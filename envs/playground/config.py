"""Settings of a Playground-Text environment."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, field_validator

from autotelic.core import EnvConfig
from autotelic.envs.playground.goals import FEASIBLE_CATEGORIES, GoalCategory, canonical_goal
from autotelic.envs.playground.objects import Split

ENV_ID: Literal["autotelic/PlaygroundText-v0"] = "autotelic/PlaygroundText-v0"


class PlaygroundConfig(EnvConfig):
    """How scenes and goals are drawn."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Literal["autotelic/PlaygroundText-v0"] = Field(ENV_ID, description="Environment id.")

    n_objects: int = Field(4, ge=4, le=12, description="Objects per scene (water included).")
    split: Split = Field(
        "train",
        description="Objects scenes and sampled goals use: training, held-out ('test'), or all.",
    )
    impossible_share: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="Probability that a reset makes its goal infeasible in the scene.",
    )
    goals: tuple[str, ...] | None = Field(
        None, description="Goals to sample from when reset gets none; default: every goal."
    )
    impossible_goals: bool = Field(
        False,
        description=(
            "The goal space lists the goals no episode achieves (growing furniture) among "
            "its goals: an autotelic curriculum then chooses among them too and must find "
            "out by itself that they never succeed. Evaluations and scenes are unchanged."
        ),
    )
    category_weights: dict[GoalCategory, float] | None = Field(
        None,
        description="Relative weight of each goal category when sampling; default: uniform.",
    )

    @field_validator("goals")
    @classmethod
    def _canonical_goals(cls, goals: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if goals is None:
            return None
        if not goals:
            raise ValueError("goals, when given, must not be empty")
        return tuple(canonical_goal(g) for g in goals)

    @field_validator("category_weights")
    @classmethod
    def _positive_weights(
        cls, weights: dict[GoalCategory, float] | None
    ) -> dict[GoalCategory, float] | None:
        if weights is None:
            return None
        if any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
            raise ValueError("category weights must be >= 0 with a positive sum")
        unknown = set(weights) - set(FEASIBLE_CATEGORIES)
        if unknown:
            raise ValueError(f"cannot sample categories {sorted(unknown)}: they are never feasible")
        return weights
