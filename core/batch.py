"""The typed batch the replay sampler produces and an off-policy learner consumes.

Plain Python and NumPy, so storage needs no torch and names no learner; the
learner builds its prompts from ``goals`` and the observations and moves the
numbers to its device.

One row is an n-step transition ``(s_t, a_t, R, s_{t+k})`` under a goal that may
be a hindsight relabel of the one the episode pursued:

* ``rewards[i]``  = sum_{j<k} gamma^j r_{t+j}, computed after relabeling;
* ``discounts[i]`` = gamma^k, where k <= n is the number of steps actually
  summed (fewer than n when the episode ends sooner);
* ``terminated[i]`` is true when the goal held within those k steps, or when
  the window reached the episode's time limit and the run counts the limit as
  terminal (``run.time_limit`` ``terminal`` or ``observed``): the target then
  does not bootstrap. Under ``bootstrap`` a cut episode's last row bootstraps
  from the state where it was cut.

The SAC target is ``y = rewards + discounts * (1 - terminated) * V(next)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class TransitionBatch:
    """A batch of B n-step transitions."""

    goals: list[str]
    """The goal each row is trained on (the relabeled one where relabeled)."""
    observations: list[str]
    """s_t: the observation each row acted in."""
    candidates: list[list[str]]
    """A(s_t): the admissible actions of each row's state (counts differ by row)."""
    actions: npt.NDArray[np.int64]
    """[B] index of the action taken into ``candidates[i]``."""
    rewards: npt.NDArray[np.float32]
    """[B] discounted n-step reward sum, after relabeling."""
    discounts: npt.NDArray[np.float32]
    """[B] gamma^k for the k steps summed into ``rewards``."""
    next_observations: list[str]
    """s_{t+k}: the state the target bootstraps from (same goal)."""
    next_candidates: list[list[str]]
    """A(s_{t+k}); may be empty only on terminated rows, which never bootstrap."""
    terminated: npt.NDArray[np.bool_]
    """[B] true when the goal was achieved within the k steps (no bootstrap)."""
    relabeled: npt.NDArray[np.bool_] = field(default_factory=lambda: np.zeros(0, dtype=np.bool_))
    """[B] whether the row's goal is a hindsight relabel."""
    policy_versions: npt.NDArray[np.int64] = field(
        default_factory=lambda: np.zeros(0, dtype=np.int64)
    )
    """[B] policy version that chose ``actions[i]`` (for lag metrics)."""

    def __post_init__(self) -> None:
        check_rows(
            "batch",
            self.observations,
            self.candidates,
            self.actions,
            {
                "goals": len(self.goals),
                "rewards": len(self.rewards),
                "discounts": len(self.discounts),
                "next_observations": len(self.next_observations),
                "next_candidates": len(self.next_candidates),
                "terminated": len(self.terminated),
            },
        )

    def __len__(self) -> int:
        return len(self.observations)


def check_rows(
    kind: str,
    states: Sequence[str],
    candidates: Sequence[Sequence[str]],
    actions: npt.NDArray[np.int64],
    other_sizes: dict[str, int],
) -> None:
    """Every field has one entry per state and each action indexes its own candidates.

    Shared by the replayed batch and the on-policy trajectory, which a bad producer
    could otherwise misalign silently; the error names the fields or the row.
    """
    n = len(states)
    sizes = {"candidates": len(candidates), "actions": len(actions), **other_sizes}
    wrong = {k: v for k, v in sizes.items() if v != n}
    if wrong:
        raise ValueError(f"{kind} of {n} states has mismatched fields: {wrong}")
    for i, (cands, a) in enumerate(zip(candidates, actions, strict=True)):
        if not 0 <= int(a) < len(cands):
            raise ValueError(f"row {i}: action {int(a)} outside its {len(cands)} candidates")
