"""On-policy rollouts: what the collector records for an on-policy learner.

A :class:`Trajectory` is consecutive steps of one environment, with the prompt
each step acted on (built by the learner's :meth:`~autotelic.core.learner.Learner.prompt`),
the action, its log-probability under the acting policy, the reward and how the
step ended. A step cut by the time limit carries the prompt of the state it was
cut in, and a trajectory whose last step ended no episode carries the prompt of
the state it is in now, so the learner can bootstrap both.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from autotelic.core.batch import check_rows


def _array(values: Any, dtype: type) -> np.ndarray:
    return np.asarray(values, dtype=dtype)


@dataclass(frozen=True)
class Trajectory:
    """Consecutive steps of one environment (see the module docstring)."""

    prompts: list[str]
    candidates: list[list[str]]
    actions: npt.NDArray[np.int64]
    log_probs: npt.NDArray[np.float32]
    """log pi_old(a_t|s_t) recorded when acting."""
    rewards: npt.NDArray[np.float32]
    terminated: npt.NDArray[np.bool_]
    truncated: npt.NDArray[np.bool_]
    final_prompts: list[str | None] = field(default_factory=list)
    """Per step: the cut state's prompt where ``truncated`` (and not terminated), else None.
    May be left empty when no step is truncated."""
    bootstrap_prompt: str | None = None
    """Prompt of the current state when the last step ended no episode."""
    policy_versions: npt.NDArray[np.int64] = field(
        default_factory=lambda: np.zeros(0, dtype=np.int64)
    )

    def __post_init__(self) -> None:
        sizes = {
            "log_probs": len(self.log_probs),
            "rewards": len(self.rewards),
            "terminated": len(self.terminated),
            "truncated": len(self.truncated),
        }
        if self.final_prompts:
            sizes["final_prompts"] = len(self.final_prompts)
        check_rows("trajectory", self.prompts, self.candidates, self.actions, sizes)
        if not self.prompts:
            raise ValueError("empty trajectory")
        for cut in np.flatnonzero(self.cut).tolist():
            if not self.final_prompts or self.final_prompts[cut] is None:
                raise ValueError(f"step {cut} is truncated but has no final_prompts entry")
        if not self.done[-1] and self.bootstrap_prompt is None:
            raise ValueError("the last step ended no episode: bootstrap_prompt is required")

    def __len__(self) -> int:
        return len(self.prompts)

    @property
    def done(self) -> npt.NDArray[np.bool_]:
        done: npt.NDArray[np.bool_] = _array(self.terminated, bool) | _array(self.truncated, bool)
        return done

    @property
    def cut(self) -> npt.NDArray[np.bool_]:
        """Steps that ended by the time limit (a step both terminated and truncated counts
        as terminated: the goal held)."""
        cut: npt.NDArray[np.bool_] = _array(self.truncated, bool) & ~_array(self.terminated, bool)
        return cut


@dataclass(frozen=True)
class Rollout:
    """One rollout: a trajectory per environment."""

    trajectories: list[Trajectory]

    def __post_init__(self) -> None:
        if not self.trajectories:
            raise ValueError("rollout without trajectories")

    @property
    def num_steps(self) -> int:
        return sum(len(t) for t in self.trajectories)
