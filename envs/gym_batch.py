"""A :class:`~autotelic.core.env.TextEnvBatch` over N gymnasium text environments.

Any gymnasium env can join the runtime through this adapter if it follows one
convention: ``reset(seed=..., options={"goal": goal, "episode_seed": e})``
starts an episode for a goal (``None``: one it samples); gymnasium's ``seed``
seeds the env's random stream, and ``episode_seed``, when given, regenerates the
episode that reported it. ``step`` takes the index of an admissible action, and
``info`` carries ``goal`` (canonical), ``admissible_actions``, ``achieved_goals``
(what the step made true), ``episode_seed``, ``steps`` and ``horizon``; and, for
gymnasium's own tools, ``action_mask`` (:func:`action_mask`), so that
``action_space.sample(mask=info["action_mask"])`` draws only admissible actions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import numpy.typing as npt

from autotelic.core import (
    EnvStep,
    EpisodeOverError,
    GoalSpace,
    InadmissibleActionError,
    TextState,
)


def action_mask(size: int, admissible: int) -> npt.NDArray[np.int8]:
    """1 for the first ``admissible`` of ``size`` discrete actions (action i is the i-th
    admissible action), 0 for the rest."""
    mask = np.zeros(size, dtype=np.int8)
    mask[:admissible] = 1
    return mask


def text_state(observation: str, info: dict[str, Any]) -> TextState:
    """The contract's view of a gymnasium (observation, info) pair."""
    return TextState(
        observation=observation,
        actions=list(info["admissible_actions"]),
        goal=info["goal"],
        episode_seed=int(info["episode_seed"]),
        steps=int(info.get("steps", 0)),
        horizon=int(info.get("horizon", 0)),
    )


class GymTextBatch:
    """N gymnasium text envs behind the batch contract; the caller resets finished ones."""

    def __init__(self, envs: Sequence[gym.Env[Any, Any]], goal_space: GoalSpace) -> None:
        if not envs:
            raise ValueError("a batch needs at least one environment")
        self.envs = list(envs)
        self._goal_space = goal_space
        self._states: list[TextState | None] = [None] * len(self.envs)
        self._stream_seeds: list[int | None] = [None] * len(self.envs)

    @property
    def num_envs(self) -> int:
        return len(self.envs)

    @property
    def goal_space(self) -> GoalSpace:
        return self._goal_space

    def seed(self, seed: int) -> None:
        """Env i's next reset seeds its stream with ``seed + i`` (gymnasium seeds on reset)."""
        self._stream_seeds = [seed + i for i in range(self.num_envs)]

    def reset(
        self,
        envs: Sequence[int],
        goals: Sequence[str | None],
        seeds: Sequence[int | None] | None = None,
    ) -> list[TextState]:
        if len(goals) != len(envs) or (seeds is not None and len(seeds) != len(envs)):
            raise ValueError(f"{len(envs)} envs need as many goals (and seeds)")
        states = []
        for k, i in enumerate(envs):
            options: dict[str, Any] = {} if goals[k] is None else {"goal": goals[k]}
            if seeds is not None and seeds[k] is not None:
                options["episode_seed"] = seeds[k]
            stream, self._stream_seeds[i] = self._stream_seeds[i], None
            observation, info = self.envs[i].reset(seed=stream, options=options)
            state = text_state(observation, info)
            self._states[i] = state
            states.append(state)
        return states

    def step(self, envs: Sequence[int], actions: Sequence[int]) -> list[EnvStep]:
        if len(actions) != len(envs):
            raise ValueError(f"{len(actions)} actions for {len(envs)} envs")
        for i, action in zip(envs, actions, strict=True):
            self._check(i, action)
        results = []
        for i, action in zip(envs, actions, strict=True):
            observation, reward, terminated, truncated, info = self.envs[i].step(int(action))
            state = text_state(observation, info)
            ended = bool(terminated or truncated)
            self._states[i] = None if ended else state
            results.append(
                EnvStep(
                    state=state,
                    reward=float(reward),
                    terminated=bool(terminated),
                    truncated=bool(truncated),
                    achieved=list(info["achieved_goals"]),
                )
            )
        return results

    def _check(self, i: int, action: int) -> None:
        if not 0 <= i < self.num_envs:
            raise IndexError(f"env {i} outside a batch of {self.num_envs}")
        state = self._states[i]
        if state is None:
            raise EpisodeOverError(f"env {i} has no running episode: reset it first")
        if isinstance(action, bool) or not 0 <= int(action) < len(state.actions):
            raise InadmissibleActionError(action, state.actions)
