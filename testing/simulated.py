"""A simulated learner whose goals have known difficulty: the curriculum's test bench.

Real training is too slow to compare curricula over thousands of episodes, so
this learner replaces the agent: each goal's success probability follows a
logistic curve in the amount of practice it received. Some goals are mastered
from the start, some are learnable at different speeds, some are impossible.
Practice on a goal also transfers a little to the goals of its group, as real
policies generalise across similar goals. A good curriculum spends its episodes
on the goals that are being learned and reaches a higher total competence than
uniform sampling after the same number of episodes.

A test double: it names Playground-Text, which the curriculum itself never
does, because its goals need categories with known difficulties.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from autotelic.envs.playground import GoalCategory, all_goals, parse_goal
from autotelic.envs.playground.objects import Split
from autotelic.goals.config import CurriculumConfig, EpsilonSchedule, SamplerConfig
from autotelic.goals.daemon import GoalDaemon

Difficulty = Literal["mastered", "learnable", "impossible"]


@dataclass(frozen=True, slots=True)
class SimGoal:
    """A goal and its learning curve: competence = ceiling * sigmoid((practice - mid) / width)."""

    text: str
    difficulty: Difficulty
    group: str
    ceiling: float = 0.98
    mid: float = 0.0
    width: float = 1.0

    def competence(self, practice: float) -> float:
        """Success probability after ``practice`` (effective) episodes."""
        if self.difficulty == "impossible":
            return 0.0
        if self.difficulty == "mastered":
            return self.ceiling
        return self.ceiling / (1.0 + math.exp(-(practice - self.mid) / self.width))


class SimulatedLearner:
    """Goals whose competence grows with practice; successes drawn from a seeded generator."""

    def __init__(self, goals: Sequence[SimGoal], *, transfer: float = 0.1, seed: int = 0) -> None:
        if not 0.0 <= transfer <= 1.0:
            raise ValueError(f"transfer must be in [0, 1], got {transfer}")
        self.goals = {g.text: g for g in goals}
        self.transfer = transfer
        self.practice = dict.fromkeys(self.goals, 0.0)
        # A stream of its own: a curriculum seeded alike must not draw the same numbers.
        self.rng = np.random.default_rng([seed, 0x5EED])
        self._groups: dict[str, list[str]] = {}
        for g in goals:
            self._groups.setdefault(g.group, []).append(g.text)

    def competence(self, goal: str) -> float:
        """Current success probability of ``goal``."""
        return self.goals[goal].competence(self.practice[goal])

    def total_competence(self) -> float:
        """Mean success probability over every goal (impossible ones included)."""
        return float(np.mean([self.competence(g) for g in self.goals]))

    def attempt(self, goal: str) -> bool:
        """Run one episode of ``goal``: draw its success, then count the practice."""
        success = bool(self.rng.random() < self.competence(goal))
        self.practice[goal] += 1.0
        for other in self._groups[self.goals[goal].group]:
            if other != goal:
                self.practice[other] += self.transfer
        return success


_LEARNABLE_MID = {
    GoalCategory.GROW_PLANT: 15.0,
    GoalCategory.GROW_HERBIVORE: 40.0,
    GoalCategory.GROW_CARNIVORE: 90.0,
}


def playground_sim_goals(split: Split = "train") -> list[SimGoal]:
    """Playground-Text goals with difficulties that follow their category.

    Grasp goals are mastered, growing a plant is learnt fast, a herbivore more
    slowly, a carnivore slowest, and growing furniture is impossible. Similar
    texts thus have similar difficulty, which is what embedding LP exploits.
    """
    out: list[SimGoal] = []
    for text in all_goals(split, include_impossible=True):
        category = parse_goal(text).category
        if category is GoalCategory.GRASP:
            out.append(SimGoal(text, "mastered", category.value))
        elif category is GoalCategory.GROW_FURNITURE:
            out.append(SimGoal(text, "impossible", category.value))
        else:
            mid = _LEARNABLE_MID[category]
            out.append(SimGoal(text, "learnable", category.value, mid=mid, width=mid / 5.0))
    return out


@dataclass(frozen=True, slots=True)
class SimulationTrace:
    """What a curriculum did with the simulated learner."""

    episodes: list[int]
    """Episode counts at which ``total_competence`` was measured."""
    total_competence: list[float]
    samples: dict[str, int]
    """Episodes spent on each goal."""

    def share(self, predicate: Callable[[str], bool]) -> float:
        """Fraction of episodes spent on the goals ``predicate`` selects."""
        total = sum(self.samples.values())
        return sum(n for g, n in self.samples.items() if predicate(g)) / max(total, 1)

    def per_goal_share(self, kinds: Mapping[str, str], kind: str) -> float:
        """Share of episodes per goal of one kind (so group sizes do not matter).

        ``kinds`` maps every goal text to its kind (e.g. its difficulty).
        """
        size = sum(k == kind for k in kinds.values())
        return self.share(lambda g: kinds[g] == kind) / size


def uniform_config(goals: list[str] | None = None, *, seed: int = 0) -> CurriculumConfig:
    """A curriculum that samples every goal uniformly (epsilon constant at 1, one pool of
    goals rather than categories first), the baseline to beat."""
    sampler = SamplerConfig(
        epsilon=EpsilonSchedule(kind="constant", start=1.0), unsolved_share=0.0, balance="goal"
    )
    return CurriculumConfig(configured_goals=goals, sampler=sampler, seed=seed)


def simulate(
    daemon: GoalDaemon,
    learner: SimulatedLearner,
    *,
    episodes: int,
    batch: int = 8,
    measure_every: int = 100,
) -> SimulationTrace:
    """Drive ``daemon`` with ``learner`` for ``episodes`` episodes, ``batch`` goals at a time."""
    samples = dict.fromkeys(learner.goals, 0)
    xs: list[int] = [0]
    ys: list[float] = [learner.total_competence()]
    done = 0
    while done < episodes:
        for assignment in daemon.next_goals(min(batch, episodes - done)):
            success = learner.attempt(assignment.goal)
            samples[assignment.goal] = samples.get(assignment.goal, 0) + 1
            achieved = [assignment.goal] if success else []
            daemon.report(assignment.outcome(success=success, steps=1, achieved_goals=achieved))
            done += 1
            if done % measure_every == 0:
                xs.append(done)
                ys.append(learner.total_competence())
    return SimulationTrace(xs, ys, samples)
