"""Settings of a BabyAI-Text environment: which goals it samples and how levels are laid out."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from autotelic.core import EnvConfig, Split
from autotelic.envs.babyai.grammar import Category, GoalError, canonical_goal

ENV_ID = "autotelic/BabyAIText-v0"

_BLOCKED_CELLS = 5
"""Floor cells no object may take at generation: the agent's and its four neighbours."""


class BabyAIConfig(EnvConfig):
    """How goals are drawn and how the level built for a goal looks."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Literal["autotelic/BabyAIText-v0"] = Field(
        "autotelic/BabyAIText-v0", description="Environment id."
    )

    split: Split = Field(
        "train",
        description="Goals sampled when reset gets none: training goals, or the held-out "
        "('test') ones that name a held-out colour-object pair.",
    )
    goals: tuple[str, ...] | None = Field(
        None,
        description="Goals to sample from when reset gets none (overrides split and "
        "categories); default: every goal of the split in the chosen categories.",
    )
    categories: tuple[Category, ...] = Field(
        tuple(Category),
        description="Goal families sampled when reset gets none; a family is drawn "
        "uniformly, then a goal of it.",
    )
    room_size: int = Field(
        8, ge=6, le=16, description="Side of a room in cells, walls included (BabyAI: 8)."
    )
    num_distractors: int = Field(
        6,
        ge=0,
        le=40,
        description="Random balls, boxes and keys added to the room besides the goal's own "
        "objects (never copies of them).",
    )
    agent_view_size: int = Field(
        7, ge=3, le=15, description="Side of the agent's square field of view in cells (odd)."
    )
    hide_held_out: bool = Field(
        True,
        description="In split 'train', keep held-out colour-object pairs out of the levels, "
        "so no training episode (nor hindsight relabeling) achieves a test goal.",
    )
    go_to_horizon: int = Field(64, ge=1, le=10_000, description="Step limit of go-to episodes.")
    pick_up_horizon: int = Field(64, ge=1, le=10_000, description="Step limit of pick-up episodes.")
    open_horizon: int = Field(64, ge=1, le=10_000, description="Step limit of open-door episodes.")
    put_next_horizon: int = Field(
        128, ge=1, le=10_000, description="Step limit of put-next-to episodes."
    )

    def horizon(self, category: Category) -> int:
        """The step limit of an episode whose goal is of ``category``."""
        return {
            Category.GO_TO: self.go_to_horizon,
            Category.PICK_UP: self.pick_up_horizon,
            Category.OPEN: self.open_horizon,
            Category.PUT_NEXT: self.put_next_horizon,
        }[category]

    @field_validator("goals")
    @classmethod
    def _canonical_goals(cls, goals: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if goals is None:
            return None
        if not goals:
            raise ValueError("goals, when given, must not be empty")
        try:
            return tuple(dict.fromkeys(canonical_goal(g) for g in goals))
        except GoalError as err:
            raise ValueError(err.reason) from None

    @field_validator("categories")
    @classmethod
    def _some_categories(cls, categories: tuple[Category, ...]) -> tuple[Category, ...]:
        if not categories:
            raise ValueError("categories must name at least one goal family")
        return tuple(dict.fromkeys(categories))

    @field_validator("agent_view_size")
    @classmethod
    def _odd_view(cls, size: int) -> int:
        if size % 2 == 0:
            raise ValueError("agent_view_size must be odd: the agent sits in the middle column")
        return size

    @model_validator(mode="after")
    def _room_fits_objects(self) -> BabyAIConfig:
        """At most half the free floor holds objects, so rooms stay passable and quick to draw."""
        free = (self.room_size - 2) ** 2 - _BLOCKED_CELLS
        if 2 * (self.num_distractors + 2) > free:
            most = free // 2 - 2
            raise ValueError(
                f"{self.num_distractors} distractors do not fit a room of size "
                f"{self.room_size}; at most {most}"
            )
        return self
