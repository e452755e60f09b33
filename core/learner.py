"""What the runtime drives: a policy that acts on text and learns, of one of two kinds.

An *off-policy* learner (SAC-GLAM) learns from replayed transition batches: the
runtime samples them from the episode store at an update-to-data ratio. An
*on-policy* learner (PPO-GLAM) learns from the rollouts just collected: the
runtime records them as it steps and hands them over every
``steps_per_update`` env steps. The runtime tells the two apart by the kind an
algorithm registered with, and never by its class or name.

The collector acts through :meth:`Learner.act` while a learner thread may call
``update``; both pass the same lock, and parameters change only under it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from autotelic.core.batch import TransitionBatch
from autotelic.core.rollout import Rollout

if TYPE_CHECKING:
    import torch

    Generator = np.random.Generator | torch.Generator
else:
    Generator = Any

Lock = contextlib.AbstractContextManager[object]
LearnerKind = Literal["off_policy", "on_policy"]


@contextlib.contextmanager
def held(lock: Lock | None) -> Iterator[None]:
    """Enter ``lock`` if one is given."""
    if lock is None:
        yield
    else:
        with lock:
            yield


@dataclass(frozen=True)
class ActResult:
    """The policy's choice for each state of a batch."""

    actions: npt.NDArray[np.int64]
    """[B] index of the chosen action in each state's candidate list."""
    log_probs: npt.NDArray[np.float32]
    """[B] log pi(chosen action | state)."""
    entropies: npt.NDArray[np.float32]
    """[B] entropy of each state's policy (nats)."""
    probs: list[npt.NDArray[np.float32]]
    """pi(.|s) over each state's candidates."""
    policy_version: int
    """Version of the weights that produced these probabilities."""


class AlgorithmConfig(BaseModel):
    """Settings every algorithm has; each registered one subclasses it with its own.

    The configuration's ``algorithm`` section is validated into the subclass the
    registry holds for its ``name``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="Registered algorithm (`autotelic algorithms` lists them).")


class OffPolicyConfig(AlgorithmConfig):
    """What the runtime needs to feed an off-policy learner from replay."""

    gamma: float = Field(
        default=0.99,
        gt=0.0,
        le=1.0,
        description=(
            "Discount per environment step. The replay sampler folds it into each row's "
            "discount (gamma^k); the learner reads the batch's discounts."
        ),
    )
    n_step: int = Field(
        default=3, ge=1, description="Steps summed into each replayed reward (sampler setting)."
    )
    batch_size: int = Field(
        default=256, ge=1, description="Transitions per update (what the runtime samples)."
    )
    learning_starts: int = Field(
        default=256, ge=0, description="Transitions stored before the first update."
    )
    update_every: int = Field(
        default=64, ge=1, description="Environment steps (over all envs) per gradient update."
    )


class OnPolicyConfig(AlgorithmConfig):
    """What the runtime needs to feed an on-policy learner with rollouts."""

    steps_per_update: int = Field(
        default=1024,
        ge=1,
        description="Environment steps (over all envs) collected per rollout (runtime setting).",
    )


@runtime_checkable
class Learner(Protocol):
    """A text policy that acts, is saved and restored; the two kinds add ``update``."""

    policy_version: int
    """Increments whenever the weights used for acting change."""
    num_updates: int
    """Completed calls of ``update``."""

    def prompt(self, goal: str, observation: str, actions: Sequence[str]) -> str:
        """The text this policy reads for ``goal`` in ``observation`` whose admissible
        actions are ``actions`` (a policy may list them or not): prompts are built where
        the policy lives, so acting, replay and evaluation agree."""
        ...

    def act(
        self,
        prompts: Sequence[str],
        candidates: Sequence[Sequence[str]],
        *,
        greedy: bool = False,
        generator: Generator | None = None,
        lock: Lock | None = None,
    ) -> ActResult:
        """One action per state: sampled for training, greedy for evaluation."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """A self-contained snapshot (CPU tensors and plain values) to resume from."""
        ...

    def load_state_dict(self, state: Mapping[str, Any], *, write_lock: Lock | None = None) -> None:
        """Restore a snapshot taken by ``state_dict``."""
        ...


@runtime_checkable
class OffPolicyLearner(Learner, Protocol):
    """Learns from replayed transitions (prompts built from the batch's goals and
    observations with :meth:`Learner.prompt`)."""

    def update(self, batch: TransitionBatch, *, write_lock: Lock | None = None) -> dict[str, float]:
        """One learning step; parameters change only under ``write_lock``."""
        ...


@runtime_checkable
class ProgressReporting(OffPolicyLearner, Protocol):
    """An off-policy learner whose update says how far through its batch it is, so that
    a long update credits the collector as it goes (runtime/loop/coordination.py). A
    learner opts in by setting ``reports_progress = True`` and taking ``progress``."""

    reports_progress: Literal[True]

    def update(
        self,
        batch: TransitionBatch,
        *,
        write_lock: Lock | None = None,
        progress: Callable[[float], None] | None = None,
    ) -> dict[str, float]:
        """One learning step; ``progress`` hears the share of the batch done after each
        part of it."""
        ...


@runtime_checkable
class OnPolicyLearner(Learner, Protocol):
    """Learns from the rollouts the current policy just collected."""

    def update(self, rollout: Rollout, *, write_lock: Lock | None = None) -> dict[str, float]:
        """One learning step (all its epochs); parameters change only under ``write_lock``."""
        ...
