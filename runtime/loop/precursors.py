"""Precursor goals: an episode of a hard goal that starts by pursuing goals it affords.

A goal at the end of a long chain (feed a grown plant to an animal) is never reached by
a policy that has not learnt it, and a policy that has learnt the first links under
their own goals (grow the plant, grasp it) does not use them under the new goal's text.
So some episodes act, for their first steps, as if they pursued other goals: those that
a recent episode of the same goal achieved on the way, in the order it achieved them
(the scenes of this goal afford them, in that order). Each is pursued until achieved (or
its step allowance is spent), then the next, then the episode's own goal. The episode is
stored under its own goal with its own rewards: only the behaviour changes, which an
off-policy learner accepts, and hindsight relabels what the chain reached. No category,
grammar or feasibility answer is used: what a goal affords is learnt from the
``achieved`` lists of its episodes.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Behaviour:
    """The goals an episode acts under before its own, and what it has achieved so far."""

    chain: list[str]
    steps_left: int
    reached: list[str] = field(default_factory=list)
    """Goals this episode achieved, each once, in the order first achieved."""

    def goal(self, own: str) -> str:
        """The goal the policy is shown now: the current precursor, else ``own``."""
        return self.chain[0] if self.chain else own

    def advance(self, achieved: Sequence[str], allowance: int) -> None:
        """After a step: note what it achieved; drop the current precursor once achieved
        or out of steps."""
        now = set(achieved)
        self.reached += [g for g in achieved if g not in self.reached]
        if not self.chain:
            return
        self.steps_left -= 1
        if self.chain[0] in now or self.steps_left <= 0:
            self.chain.pop(0)
            self.steps_left = allowance


@dataclass
class Precursors:
    """The order in which each goal's recent episodes achieved other goals, and chains
    that replay one of those orders."""

    share: float
    """Fraction of episodes that start with precursors (0: none, and no random draw)."""
    length: int = 3
    """Precursors per chain, at most: the last ones of the order replayed."""
    allowance: int = 6
    """Steps a precursor is pursued before the next one (or the own goal) takes over."""
    memory: int = 64
    """Orders kept per goal (the most recent episodes')."""
    _orders: dict[str, deque[tuple[str, ...]]] = field(default_factory=dict)

    def observe(self, goal: str, reached: Sequence[str]) -> None:
        """Record the order in which an episode of ``goal`` achieved other goals."""
        order = tuple(g for g in reached if g != goal)
        if order:
            self._orders.setdefault(goal, deque(maxlen=self.memory)).append(order)

    def afforded(self, goal: str) -> list[str]:
        """The goals that recent episodes of ``goal`` achieved, first seen first."""
        seen: dict[str, None] = {}
        for order in self._orders.get(goal, ()):
            seen.update(dict.fromkeys(order))
        return list(seen)

    def plan(self, goal: str, rng: np.random.Generator) -> Behaviour:
        """A behaviour for a new episode of ``goal``: with probability ``share``, the last
        ``length`` goals of a recent episode's order, an order of n goals drawn with
        weight n squared (the episodes that got furthest are replayed most)."""
        orders = self._orders.get(goal)
        if self.share <= 0.0 or not orders or rng.random() >= self.share:
            return Behaviour([], 0)
        weights = np.array([len(o) ** 2 for o in orders], dtype=np.float64)
        order = orders[int(rng.choice(len(orders), p=weights / weights.sum()))]
        return Behaviour(list(order[-self.length :]), self.allowance)
