"""Assembling an episode step by step, as the collector sees it.

The collector knows a transition only when the env returns the next state, so
the builder takes each step together with the state it led to; the last of
those becomes the episode's final state. Bad input (an action index outside the
admissible actions, a step after the episode ended) fails at the call that
caused it, where the collector can still say which env misbehaved.
"""

from __future__ import annotations

import math
import operator
import time
from collections.abc import Mapping, Sequence
from typing import Any, get_args

from autotelic.storage.records import Episode, GoalSource


class EpisodeBuilder:
    """Collects one episode: construct at reset, ``add_step`` per step, then ``build``."""

    def __init__(
        self,
        *,
        goal: str,
        goal_category: str,
        goal_source: GoalSource,
        env_id: str,
        scene_seed: int,
        observation: str,
        admissible_actions: Sequence[str],
        injection_id: str | None = None,
        started_at: float | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        if goal_source not in get_args(GoalSource):
            raise ValueError(
                f"goal_source {goal_source!r} must be one of {', '.join(get_args(GoalSource))}"
            )
        self._meta: dict[str, Any] = {
            "goal": goal,
            "goal_category": str(goal_category),
            "goal_source": goal_source,
            "injection_id": injection_id,
            "env_id": env_id,
            "scene_seed": operator.index(scene_seed),
            "started_at": time.time() if started_at is None else float(started_at),
            "extra": dict(extra or {}),
        }
        self._observation = str(observation)
        self._admissible = [str(a) for a in admissible_actions]
        self._steps: list[dict[str, Any]] = []
        self._done = False

    @property
    def length(self) -> int:
        """Steps added so far."""
        return len(self._steps)

    @property
    def done(self) -> bool:
        """Whether a step terminated or truncated the episode (no more steps accepted)."""
        return self._done

    def add_step(
        self,
        action_index: int,
        reward: float,
        terminated: bool,
        truncated: bool,
        achieved_goals: Sequence[str],
        policy_version: int,
        next_observation: str,
        next_admissible: Sequence[str],
    ) -> None:
        """Record the action taken in the current state and the state it led to."""
        if self._done:
            raise ValueError(
                f"episode for goal {self._meta['goal']!r} already ended after "
                f"{len(self._steps)} steps; start a new builder"
            )
        index = operator.index(action_index)
        if not 0 <= index < len(self._admissible):
            raise ValueError(
                f"step {len(self._steps)}: action index {index} is outside the "
                f"{len(self._admissible)} admissible actions {self._admissible}"
            )
        value = float(reward)
        if not math.isfinite(value):
            raise ValueError(f"step {len(self._steps)}: reward {value} is not finite")
        self._steps.append(
            {
                "observation": self._observation,
                "admissible_actions": self._admissible,
                "action": index,
                "reward": value,
                "terminated": bool(terminated),
                "truncated": bool(truncated),
                "achieved_goals": [str(g) for g in achieved_goals],
                "policy_version": operator.index(policy_version),
            }
        )
        self._observation = str(next_observation)
        self._admissible = [str(a) for a in next_admissible]
        self._done = bool(terminated) or bool(truncated)

    def build(self, *, ended_at: float | None = None) -> Episode:
        """The validated episode (at least one step; it need not have ended)."""
        if not self._steps:
            raise ValueError(
                f"episode for goal {self._meta['goal']!r} has no steps: nothing to store"
            )
        started = self._meta["started_at"]
        # The wall clock may step back between reset and now; an explicit time is kept as given.
        end = max(time.time(), started) if ended_at is None else float(ended_at)
        return Episode.model_validate(
            {
                **self._meta,
                "ended_at": end,
                "steps": self._steps,
                "final_observation": self._observation,
                "final_admissible_actions": self._admissible,
            }
        )
