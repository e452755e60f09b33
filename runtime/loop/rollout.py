"""On-policy rollouts, recorded by the collector as it steps, for an on-policy learner.

Each env's steps are kept in order with what the learner needs: the prompt, the
candidates, the action and its log-probability under the acting policy, the
reward and how the step ended. :meth:`RolloutRecorder.take` hands over one
trajectory per env; an env whose last step ended no episode bootstraps from
the prompt of the state it is in now.

A step cut by the time limit is recorded as the time-limit mode says (the same
mode the replay sampler applies, docs/learning.md): in ``bootstrap`` it stays a
truncation and carries the cut state's prompt, which the learner bootstraps
from; in ``terminal`` and ``observed`` it is recorded as terminated (and still
truncated), with no final prompt: the learner values nothing after it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from autotelic.core import Rollout, Trajectory
from autotelic.core.time_limit import DEFAULT_TIME_LIMIT, TIME_LIMITS, TimeLimit


@dataclass
class _Steps:
    prompts: list[str] = field(default_factory=list)
    candidates: list[list[str]] = field(default_factory=list)
    actions: list[int] = field(default_factory=list)
    log_probs: list[float] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)
    terminated: list[bool] = field(default_factory=list)
    truncated: list[bool] = field(default_factory=list)
    final_prompts: list[str | None] = field(default_factory=list)
    versions: list[int] = field(default_factory=list)


class RolloutRecorder:
    """Per-env step lists that become a :class:`Rollout`; ``time_limit`` as in the module
    docstring."""

    def __init__(self, num_envs: int, *, time_limit: TimeLimit = DEFAULT_TIME_LIMIT) -> None:
        if time_limit not in TIME_LIMITS:
            raise ValueError(
                f"unknown time-limit mode {time_limit!r}; use one of {', '.join(TIME_LIMITS)}"
            )
        self.time_limit: TimeLimit = time_limit
        self._envs = [_Steps() for _ in range(num_envs)]

    @property
    def bootstraps_cuts(self) -> bool:
        """Whether a time-limit cut is bootstrapped (and so needs the cut state's prompt)."""
        return self.time_limit == "bootstrap"

    @property
    def num_steps(self) -> int:
        return sum(len(e.prompts) for e in self._envs)

    def record(
        self,
        env: int,
        *,
        prompt: str,
        candidates: list[str],
        action: int,
        log_prob: float,
        reward: float,
        terminated: bool,
        truncated: bool,
        final_prompt: str | None,
        policy_version: int,
    ) -> None:
        """Append one step; ``final_prompt`` is the state a time-limit cut left, else None
        (ignored, and not needed, when the mode counts the cut as terminal)."""
        if truncated and not terminated and not self.bootstraps_cuts:
            terminated, final_prompt = True, None
        steps = self._envs[env]
        steps.prompts.append(prompt)
        steps.candidates.append(candidates)
        steps.actions.append(action)
        steps.log_probs.append(log_prob)
        steps.rewards.append(reward)
        steps.terminated.append(terminated)
        steps.truncated.append(truncated)
        steps.final_prompts.append(final_prompt)
        steps.versions.append(policy_version)

    def take(self, current_prompts: list[str]) -> Rollout:
        """The rollout so far (then cleared); ``current_prompts`` are each env's state now."""
        trajectories = []
        for steps, now in zip(self._envs, current_prompts, strict=True):
            if not steps.prompts:
                continue
            ended = steps.terminated[-1] or steps.truncated[-1]
            trajectories.append(
                Trajectory(
                    prompts=steps.prompts,
                    candidates=steps.candidates,
                    actions=np.asarray(steps.actions, dtype=np.int64),
                    log_probs=np.asarray(steps.log_probs, dtype=np.float32),
                    rewards=np.asarray(steps.rewards, dtype=np.float32),
                    terminated=np.asarray(steps.terminated, dtype=np.bool_),
                    truncated=np.asarray(steps.truncated, dtype=np.bool_),
                    final_prompts=steps.final_prompts,
                    bootstrap_prompt=None if ended else now,
                    policy_versions=np.asarray(steps.versions, dtype=np.int64),
                )
            )
        self._envs = [_Steps() for _ in self._envs]
        return Rollout(trajectories)
