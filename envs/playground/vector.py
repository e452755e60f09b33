"""N Playground-Text environments stepped together: what the collector drives.

Auto-reset is *same-step*: when an environment's episode ends in ``step``, the
returned observation and info already belong to its next episode, and the
ending is described by ``info["final_observation"]``, ``info["final_info"]``
(the last step's info: achieved goals, admissible actions of the final state),
plus the returned reward/terminated/truncated of the last step. The next
episode's goal comes from ``goal_source(env_index)`` at that moment, so a
curriculum can choose it with the freshest statistics; ``None`` lets the env
sample one. This mirrors gymnasium's ``AutoresetMode.SAME_STEP``; the envs stay
plain Python objects because observations are text and action sets vary by
state, which a fixed ``VectorEnv`` space describes poorly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from autotelic.envs.playground.config import PlaygroundConfig
from autotelic.envs.playground.env import Info, PlaygroundTextEnv

GoalSource = Callable[[int], str | None]


@dataclass(frozen=True)
class BatchStep:
    """What one ``step`` of the batch returns, aligned by env index."""

    observations: list[str]
    rewards: npt.NDArray[np.float32]
    terminated: npt.NDArray[np.bool_]
    truncated: npt.NDArray[np.bool_]
    infos: list[Info]

    @property
    def done(self) -> npt.NDArray[np.bool_]:
        return self.terminated | self.truncated


class PlaygroundBatch:
    """A batch of independent Playground-Text environments with same-step auto-reset."""

    def __init__(
        self,
        num_envs: int,
        config: PlaygroundConfig | None = None,
        goal_source: GoalSource | None = None,
    ) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        self.envs = [PlaygroundTextEnv(config) for _ in range(num_envs)]
        self.goal_source: GoalSource = goal_source or (lambda _i: None)
        self._infos: list[Info] = []

    @property
    def num_envs(self) -> int:
        return len(self.envs)

    @property
    def infos(self) -> list[Info]:
        """The latest info of each environment (its current episode)."""
        return self._infos

    def reset(
        self, seed: int | None = None, goals: Sequence[str | None] | None = None
    ) -> tuple[list[str], list[Info]]:
        """Start an episode in every env; ``seed`` seeds env i with ``seed + i``."""
        if goals is not None and len(goals) != self.num_envs:
            raise ValueError(f"{len(goals)} goals for {self.num_envs} envs")
        observations: list[str] = []
        infos: list[Info] = []
        for i, env in enumerate(self.envs):
            goal = goals[i] if goals is not None else self.goal_source(i)
            obs, info = env.reset(
                seed=None if seed is None else seed + i, options=self._options(goal)
            )
            observations.append(obs)
            infos.append(info)
        self._infos = infos
        return observations, infos

    def step(self, actions: Sequence[str | int]) -> BatchStep:
        """Step every env with its action; ended episodes restart in the same call.

        Actions are validated for every env before any env moves, so an
        inadmissible action leaves the whole batch unchanged.
        """
        if len(actions) != self.num_envs:
            raise ValueError(f"{len(actions)} actions for {self.num_envs} envs")
        for env, action in zip(self.envs, actions, strict=True):
            env._resolve(action, env.scene)  # raises before anything changes
        observations: list[str] = []
        rewards = np.zeros(self.num_envs, dtype=np.float32)
        terminated = np.zeros(self.num_envs, dtype=np.bool_)
        truncated = np.zeros(self.num_envs, dtype=np.bool_)
        infos: list[Info] = []
        for i, (env, action) in enumerate(zip(self.envs, actions, strict=True)):
            obs, r, term, trunc, info = env.step(action)
            rewards[i], terminated[i], truncated[i] = r, term, trunc
            if term or trunc:
                final_obs, final_info = obs, info
                obs, info = env.reset(options=self._options(self.goal_source(i)))
                info = {**info, "final_observation": final_obs, "final_info": final_info}
            observations.append(obs)
            infos.append(info)
        self._infos = infos
        return BatchStep(observations, rewards, terminated, truncated, infos)

    @staticmethod
    def _options(goal: str | None) -> dict[str, Any]:
        return {} if goal is None else {"goal": goal}
