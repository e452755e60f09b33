"""Measuring the policy without learning: success per goal category, greedy and sampled.

Evaluation runs its own batch of environments (nothing is stored, the
curriculum is not told), working through a fixed list of episodes so every
category gets the same number of episodes on every call, from the same scenes.
It works for any registered environment: goals, their categories and the
held-out split come from the environment's goal space.

- :func:`evaluate` runs every goal of a split (``autotelic eval``, experiments).
- :func:`plan_episodes` draws a fixed, seeded set of episodes per goal category
  (goal and episode seed), the same on every call: what the service's periodic
  evaluation (:mod:`autotelic.runtime.evaluation.periodic`) runs.
- :class:`EpisodeRunner` runs such a list step by step, so a caller can bound
  how many env steps it spends between two of its own.
"""

from __future__ import annotations

import zlib
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from autotelic.core import (
    EnvConfig,
    EnvSpec,
    Generator,
    GoalSpace,
    Learner,
    Lock,
    Split,
    TextEnvBatch,
    TextState,
)
from autotelic.core.time_limit import DEFAULT_TIME_LIMIT, TimeLimit, time_limited

Acting = Literal["greedy", "sampled"]
"""How the policy picks actions: its most likely action, or a sample from it."""
SPLITS: tuple[Split, ...] = ("train", "test")
ACTING: tuple[Acting, ...] = ("greedy", "sampled")


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
    steps: dict[str, int] = field(default_factory=dict)
    """Env steps per category (the sum of its episodes' lengths)."""
    per_goal: dict[str, float] = field(default_factory=dict)
    """Success per goal text (what a curriculum's predicted competence is compared with)."""

    @property
    def overall(self) -> float:
        return float(np.mean(list(self.success.values()))) if self.success else 0.0

    @property
    def acting(self) -> Acting:
        return "greedy" if self.greedy else "sampled"

    @property
    def env_steps(self) -> int:
        """Env steps this evaluation took."""
        return sum(self.steps.values())


@dataclass(frozen=True)
class EvalEpisode:
    """One planned evaluation episode."""

    goal: str
    """Canonical goal text."""
    category: str
    seed: int | None = None
    """Episode seed (regenerates the same start every time); None: drawn from the env's
    own stream."""


def stable_hash(text: str) -> int:
    """A hash of ``text`` that is the same in every process (for seeding)."""
    return zlib.crc32(text.encode("utf-8"))


def check_split(split: object) -> Split:
    """``split`` if it is one of :data:`SPLITS`, else a ValueError that lists them."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    return split


def feasible_goals(space: GoalSpace, split: Split) -> list[str]:
    """The goals of ``split`` an episode can achieve: a goal space that lists impossible
    goals (for a curriculum to find out about) has nothing to measure on them."""
    return [g for g in space.goals(split) if space.feasible(g) is not False]


def plan_episodes(
    space: GoalSpace, split: Split, per_category: int, seed: int
) -> list[EvalEpisode]:
    """``per_category`` episodes of each category that has goals in ``split``.

    Goals are taken in a seeded random order of the category's goals (cycling
    when more episodes than goals are asked for), each with its own episode
    seed. The plan depends only on the goal space, ``split``, ``per_category``
    and ``seed``: every evaluation with them runs the same episodes. Categories
    without a goal in ``split`` get no episode.
    """
    check_split(split)
    if per_category < 1:
        raise ValueError(f"per_category must be >= 1, got {per_category}")
    pools: dict[str, list[str]] = {}
    for goal in feasible_goals(space, split):
        parsed = space.parse(goal)
        pools.setdefault(parsed.category, []).append(parsed.text)
    known = list(space.categories())
    order = [c for c in known if c in pools] + sorted(c for c in pools if c not in known)
    plan = []
    for category in order:
        pool = pools[category]
        rng = np.random.default_rng([seed, stable_hash(split), stable_hash(category)])
        picks = rng.permutation(len(pool))
        for k in range(per_category):
            goal = pool[int(picks[k % len(pool)])]
            plan.append(EvalEpisode(goal, category, int(rng.integers(2**31 - 1))))
    return plan


class EpisodeRunner:
    """Runs a fixed list of episodes on a batch of envs with one way of acting.

    Episodes are handed to envs in order as envs become free, so the result
    does not depend on how long each episode takes when every episode has its
    seed. :meth:`step` advances every running env by one step; ``pending``
    says how many env steps the next call takes.
    """

    def __init__(
        self,
        learner: Learner,
        envs: TextEnvBatch,
        space: GoalSpace,
        episodes: Sequence[EvalEpisode],
        *,
        greedy: bool,
        generator: Generator,
        lock: Lock | None = None,
    ) -> None:
        if not episodes:
            raise ValueError("nothing to evaluate: the episode list is empty")
        self.learner = learner
        self.envs = envs
        self.space = space
        self.greedy = greedy
        self.generator = generator
        self.lock = lock
        self._queue = list(reversed(episodes))
        self._running: dict[int, EvalEpisode] = {}
        self._states: dict[int, TextState] = {}
        self._wins: dict[str, list[float]] = defaultdict(list)
        self._lengths: dict[str, list[int]] = defaultdict(list)
        self._goal_wins: dict[str, list[float]] = defaultdict(list)
        self.total = len(episodes)
        self.env_steps = 0
        self._start(list(range(min(envs.num_envs, len(episodes)))))

    def _start(self, envs: list[int]) -> None:
        chosen = [self._queue.pop() for _ in envs]
        states = self.envs.reset(envs, [e.goal for e in chosen], [e.seed for e in chosen])
        for i, episode, state in zip(envs, chosen, states, strict=True):
            self._running[i] = episode
            self._states[i] = state

    @property
    def pending(self) -> int:
        """Env steps the next :meth:`step` takes (0 once every episode has ended)."""
        return len(self._running)

    @property
    def done(self) -> bool:
        return not self._running

    @property
    def finished(self) -> int:
        """Episodes that have ended so far (``total`` once done)."""
        return sum(len(v) for v in self._wins.values())

    def step(self) -> int:
        """One step of every running env; returns the env steps taken."""
        live = sorted(self._running)
        if not live:
            return 0
        prompts = [
            self.learner.prompt(s.goal, s.observation, s.actions)
            for s in (self._states[i] for i in live)
        ]
        candidates = [list(self._states[i].actions) for i in live]
        chosen = self.learner.act(
            prompts, candidates, greedy=self.greedy, generator=self.generator, lock=self.lock
        )
        results = self.envs.step(live, [int(a) for a in chosen.actions])
        ended = []
        for i, result in zip(live, results, strict=True):
            self._states[i] = result.state
            if result.done:
                episode = self._running.pop(i)
                category = episode.category
                self._wins[category].append(float(result.terminated))
                self._goal_wins[episode.goal].append(float(result.terminated))
                self._lengths[category].append(result.state.steps)
                ended.append(i)
        restart = ended[: len(self._queue)]  # envs take the next episode, in order, or go idle
        if restart:
            self._start(restart)
        self.env_steps += len(live)
        return len(live)

    def result(self, split: str) -> EvalResult:
        """Success per category of the episodes that ended (all of them once done)."""
        return EvalResult(
            split=split,
            greedy=self.greedy,
            episodes=sum(len(v) for v in self._wins.values()),
            success={c: float(np.mean(v)) for c, v in sorted(self._wins.items())},
            mean_steps={c: float(np.mean(v)) for c, v in sorted(self._lengths.items())},
            counts={c: len(v) for c, v in sorted(self._wins.items())},
            steps={c: int(sum(v)) for c, v in sorted(self._lengths.items())},
            per_goal={g: float(np.mean(v)) for g, v in sorted(self._goal_wins.items())},
        )


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
    time_limit: TimeLimit = DEFAULT_TIME_LIMIT,
    progress: Callable[[int], None] | None = None,
) -> EvalResult:
    """Run ``episodes_per_goal`` episodes of every goal (default: the goal space's goals of
    ``split``) and report success per category. Scenes depend only on ``seed``.

    ``time_limit`` must be the run's ``run.time_limit``: in the ``observed`` mode the
    policy reads the steps left, as it did in training. ``progress`` hears the number of
    episodes finished after every batched step (an evaluation of a pretrained model on a
    CPU takes minutes: a command shows how far it is)."""
    check_split(split)
    space = spec.goal_space(config)
    todo = [
        EvalEpisode(parsed.text, parsed.category)
        for parsed in (space.parse(g) for g in (goals or feasible_goals(space, split)))
        for _ in range(episodes_per_goal)
    ]
    if not todo:
        raise ValueError(f"no goal to evaluate in split {split!r} of {spec.id}")
    envs = time_limited(
        spec.make_batch(config, num_envs=min(num_envs, len(todo)), split=split), time_limit
    )
    envs.seed(seed)
    runner = EpisodeRunner(
        learner,
        envs,
        space,
        todo,
        greedy=greedy,
        generator=np.random.default_rng(seed),
        lock=lock,
    )
    while not runner.done:
        runner.step()
        if progress is not None:
            progress(runner.finished)
    result = runner.result(split)
    return EvalResult(
        split=result.split,
        greedy=result.greedy,
        episodes=len(todo),
        success=result.success,
        mean_steps=result.mean_steps,
        counts=result.counts,
        steps=result.steps,
        per_goal=result.per_goal,
    )
