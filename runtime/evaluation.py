"""Measuring the policy without learning: success per goal category, greedy and sampled.

Evaluation runs its own batch of environments (nothing is stored, the
curriculum is not told), working through a fixed goal list so every category
gets the same number of episodes on every call, from the same scenes. It works
for any registered environment: goals, their categories and the held-out split
come from the environment's goal space.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from autotelic.core import EnvConfig, EnvSpec, Learner, Lock, Split, TextState


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
    learner: Learner,
    spec: EnvSpec,
    config: EnvConfig,
    *,
    split: Split,
    greedy: bool,
    episodes_per_goal: int = 1,
    goals: Sequence[str] | None = None,
    num_envs: int = 16,
    seed: int = 12345,
    lock: Lock | None = None,
) -> EvalResult:
    """Run ``episodes_per_goal`` episodes of every goal (default: the goal space's goals of
    ``split``) and report success per category. Scenes depend only on ``seed``."""
    space = spec.goal_space(config)
    todo = [g for g in (goals or space.goals(split)) for _ in range(episodes_per_goal)]
    envs = spec.make_batch(config, num_envs=min(num_envs, len(todo)), split=split)
    rng = np.random.default_rng(seed)
    wins: dict[str, list[float]] = defaultdict(list)
    lengths: dict[str, list[int]] = defaultdict(list)
    queue = list(reversed(todo))
    first = [queue.pop() for _ in range(envs.num_envs)]
    live = list(range(envs.num_envs))
    envs.seed(seed)
    states: dict[int, TextState] = dict(zip(live, envs.reset(live, first), strict=True))
    while live:
        prompts = [learner.prompt(states[i].goal, states[i].observation) for i in live]
        candidates = [list(states[i].actions) for i in live]
        chosen = learner.act(prompts, candidates, greedy=greedy, generator=rng, lock=lock)
        results = envs.step(live, [int(a) for a in chosen.actions])
        ended = []
        for i, result in zip(live, results, strict=True):
            states[i] = result.state
            if result.done:
                category = space.parse(result.state.goal).category
                wins[category].append(float(result.terminated))
                lengths[category].append(result.state.steps)
                ended.append(i)
        restart = ended[: len(queue)]  # envs take the next goal, in order, or go idle
        if restart:
            goals_next: list[str | None] = [queue.pop() for _ in restart]
            states.update(zip(restart, envs.reset(restart, goals_next), strict=True))
        live = [i for i in live if i not in ended or i in restart]
    return EvalResult(
        split=split,
        greedy=greedy,
        episodes=len(todo),
        success={c: float(np.mean(v)) for c, v in sorted(wins.items())},
        mean_steps={c: float(np.mean(v)) for c, v in sorted(lengths.items())},
        counts={c: len(v) for c, v in sorted(wins.items())},
    )
