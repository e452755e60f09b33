"""What the runtime calls on a learner, whichever algorithm it is.

The runtime's collector acts through :meth:`Learner.act` while its learner loop
calls :meth:`Learner.update` in another thread; both pass the same lock (see
:mod:`autotelic.learners.base` for the contract). ``algorithm`` tells the runtime
what ``update`` consumes: ``"sac"`` takes a replayed
:class:`~autotelic.learners.batch.TransitionBatch`, ``"ppo"`` an on-policy
:class:`~autotelic.learners.ppo.PPORollout`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, TypeVar, runtime_checkable

from autotelic.learners.base import Lock
from autotelic.learners.policy import ActResult, Generator

DataT_contra = TypeVar("DataT_contra", contravariant=True)


@runtime_checkable
class Learner(Protocol[DataT_contra]):
    """A policy that acts and learns; SACLearner and PPOLearner implement it."""

    algorithm: str
    policy_version: int
    """Increments whenever the weights used for acting change."""
    num_updates: int
    """Completed calls of ``update``."""

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

    def update(self, data: DataT_contra, *, write_lock: Lock | None = None) -> dict[str, float]:
        """One learning step on ``data``; parameters change only under ``write_lock``."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """A self-contained snapshot (CPU tensors and plain values) to resume from."""
        ...

    def load_state_dict(self, state: Mapping[str, Any], *, write_lock: Lock | None = None) -> None:
        """Restore a snapshot taken by ``state_dict``."""
        ...
