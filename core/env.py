"""A batch of text environments: the contract the collector and evaluation drive.

Each of N environments pursues one goal per episode. Observations, actions and
goals are text; each state offers its own short list of admissible actions,
and an action is chosen by its index in that list. The batch never starts an
episode by itself: :meth:`TextEnvBatch.step` reports that an env's episode
ended, and the caller (the collector, which asks the curriculum) decides the
next goal and calls :meth:`TextEnvBatch.reset` for that env. Stepping an env
whose episode ended raises :class:`EpisodeOverError`.

Two kinds of seed: :meth:`TextEnvBatch.seed` seeds each env's random stream
(what a run's seed controls), and every state carries its *episode* seed:
resetting with that seed and the same goal (and configuration) regenerates the
episode's start, so a stored episode can be replayed in the environment.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from autotelic.core.goals import GoalSpace


class EnvConfig(BaseModel):
    """Settings every environment has; each registered env subclasses it with its own.

    The configuration's ``env`` section is validated into the subclass that the
    registry holds for its ``id`` (a union discriminated by ``id``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(description="Registered environment id (`autotelic envs` lists them).")
    num_envs: int = Field(8, ge=1, le=4096, description="Environments stepped together.")


@dataclass(frozen=True, slots=True)
class TextState:
    """What the policy sees of one environment now."""

    observation: str
    actions: list[str]
    """Admissible actions of this state, in the order indices refer to."""
    goal: str
    """The episode's goal, canonical."""
    episode_seed: int
    """Regenerates this episode's start with :meth:`TextEnvBatch.reset`."""
    steps: int = 0
    """Steps taken in this episode so far."""
    horizon: int = 0
    """The episode's time limit in steps (0 when it has none)."""


@dataclass(frozen=True, slots=True)
class EnvStep:
    """One env's step: the state it reached and how the step ended."""

    state: TextState
    """The state reached; when the episode ended, its final state."""
    reward: float
    terminated: bool
    """The goal holds (or the state is absorbing): no value after it."""
    truncated: bool
    """The time limit cut the episode."""
    achieved: list[str]
    """Every goal this step made true, canonical: what hindsight relabeling uses."""

    @property
    def done(self) -> bool:
        return self.terminated or self.truncated


class EpisodeOverError(RuntimeError):
    """An env was stepped after its episode ended; reset it first."""


class InadmissibleActionError(ValueError):
    """An action that is not admissible in the env's current state."""

    def __init__(self, action: object, admissible: Sequence[str]) -> None:
        self.action = action
        self.admissible = list(admissible)
        listed = "; ".join(f"{i}: {a}" for i, a in enumerate(admissible))
        super().__init__(f"inadmissible action {action!r}; admissible actions are [{listed}]")


@runtime_checkable
class TextEnvBatch(Protocol):
    """N text environments stepped together (see the module docstring)."""

    @property
    def num_envs(self) -> int: ...

    @property
    def goal_space(self) -> GoalSpace:
        """The goals these environments understand."""
        ...

    def seed(self, seed: int) -> None:
        """Seed env i's random stream with ``seed + i`` for the episodes that follow."""
        ...

    def reset(
        self,
        envs: Sequence[int],
        goals: Sequence[str | None],
        seeds: Sequence[int | None] | None = None,
    ) -> list[TextState]:
        """Start a new episode in each of ``envs`` with its goal (None: the env samples one).

        An episode seed regenerates the episode an earlier state reported as
        ``episode_seed``; None draws the episode from the env's own random stream.
        """
        ...

    def step(self, envs: Sequence[int], actions: Sequence[int]) -> list[EnvStep]:
        """Step each of ``envs`` with the index of its action; results align with ``envs``.

        Every action is validated before any env moves, so an inadmissible one
        (:class:`InadmissibleActionError`) leaves the whole batch unchanged.
        """
        ...
