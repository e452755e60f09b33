"""Measuring the policy without learning: success per goal category, greedy and sampled.

Evaluation runs its own batch of environments (nothing is stored, the
curriculum is not told), cycling through a fixed goal list so every category
gets the same number of episodes on every call, from the same scenes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from autotelic.envs.playground import (
    PlaygroundBatch,
    PlaygroundConfig,
    all_goals,
    parse_goal,
)
from autotelic.envs.playground.objects import Split
from autotelic.learners.base import Lock
from autotelic.learners.prompt import build_prompt
from autotelic.learners.protocol import Learner


@dataclass(frozen=True)
class EvalResult:
    """Success rate per goal category for one split and one way of acting."""

    split: str
    greedy: bool
    episodes: int
    success: dict[str, float]
    mean_steps: dict[str, float]
    counts: dict[str, int]
    """Episodes per category."""

    @property
    def overall(self) -> float:
        return float(np.mean(list(self.success.values()))) if self.success else 0.0


def evaluate(
    learner: Learner[Any],
    *,
    split: Split,
    greedy: bool,
    episodes_per_goal: int = 1,
    goals: Sequence[str] | None = None,
    num_envs: int = 16,
    seed: int = 12345,
    lock: Lock | None = None,
    n_objects: int = 4,
) -> EvalResult:
    """Run ``episodes_per_goal`` episodes of every goal (default: all feasible ones of the
    split) and report success per category. Scenes depend only on ``seed``."""
    todo = [g for g in (goals or all_goals(split)) for _ in range(episodes_per_goal)]
    envs = PlaygroundBatch(
        min(num_envs, len(todo)), PlaygroundConfig(split=split, n_objects=n_objects)
    )
    rng = np.random.default_rng(seed)
    wins: dict[str, list[float]] = defaultdict(list)
    lengths: dict[str, list[int]] = defaultdict(list)
    queue = list(reversed(todo))
    observations, infos = envs.reset(seed=seed, goals=[queue.pop() for _ in range(envs.num_envs)])
    active = [True] * envs.num_envs

    def next_goal(i: int) -> str | None:
        """Envs that finish take the next goal, or go idle when none is left."""
        if queue:
            return queue.pop()
        active[i] = False
        return None

    envs.goal_source = next_goal
    while any(active):
        live = [i for i in range(envs.num_envs) if active[i]]
        prompts = [build_prompt(infos[i]["goal"], observations[i]) for i in live]
        candidates = [list(infos[i]["admissible_actions"]) for i in live]
        chosen = learner.act(prompts, candidates, greedy=greedy, generator=rng, lock=lock)
        actions: list[str | int] = [0] * envs.num_envs  # idle envs step on; ignored
        for i, a in zip(live, chosen.actions, strict=True):
            actions[i] = int(a)
        step = envs.step(actions)
        for i in live:
            if step.done[i]:
                final = step.infos[i]["final_info"]
                category = parse_goal(final["goal"]).category.value
                wins[category].append(float(step.terminated[i]))
                lengths[category].append(int(final["steps"]))
        observations, infos = step.observations, step.infos
    return EvalResult(
        split=split,
        greedy=greedy,
        episodes=len(todo),
        success={c: float(np.mean(v)) for c, v in sorted(wins.items())},
        mean_steps={c: float(np.mean(v)) for c, v in sorted(lengths.items())},
        counts={c: len(v) for c, v in sorted(wins.items())},
    )
