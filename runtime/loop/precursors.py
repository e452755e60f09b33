"""Precursor goals: an episode of a hard goal that starts by pursuing goals it affords.

A goal at the end of a long chain (feed a grown plant to an animal) is never reached by
a policy that has not learnt it, and a policy that has learnt the first links under
their own goals (grow the plant, grasp it) does not use them under the new goal's text.
So some episodes act, for their first steps, as if they pursued another goal: one that
earlier episodes of the same goal achieved on the way, which therefore the scenes of this
goal afford. Once it is achieved (or its step allowance is spent) the next precursor or
the episode's own goal takes over. The episode is stored under its own goal with its
own rewards: only the behaviour changes, which an off-policy learner accepts, and
hindsight relabels what the chain reached. No category, grammar or feasibility answer is
used: what a goal affords is learnt from the ``achieved`` lists of its episodes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Behaviour:
    """The goals an episode acts under before its own, and the steps the current one has."""

    chain: list[str]
    steps_left: int

    def goal(self, own: str) -> str:
        """The goal the policy is shown now: the current precursor, else ``own``."""
        return self.chain[0] if self.chain else own

    def advance(self, achieved: Iterable[str], allowance: int) -> None:
        """After a step: drop the current precursor once achieved or out of steps."""
        if not self.chain:
            return
        self.steps_left -= 1
        if self.chain[0] in set(achieved) or self.steps_left <= 0:
            self.chain.pop(0)
            self.steps_left = allowance


@dataclass
class Precursors:
    """What each goal's episodes achieved on the way, and chains drawn from it."""

    share: float
    """Fraction of episodes that start with precursors (0: none, and no random draw)."""
    length: int = 2
    """Precursors per chain, at most (fewer when the goal affords fewer)."""
    allowance: int = 6
    """Steps a precursor is pursued before the next one (or the own goal) takes over."""
    _afforded: dict[str, dict[str, None]] = field(default_factory=lambda: defaultdict(dict))
    """Per goal, the other goals its episodes achieved, in first-seen order."""

    def observe(self, goal: str, achieved: Iterable[str]) -> None:
        """Record what a step of an episode of ``goal`` achieved."""
        seen = self._afforded[goal]
        for other in achieved:
            if other != goal:
                seen.setdefault(other, None)

    def afforded(self, goal: str) -> list[str]:
        """The goals that episodes of ``goal`` have achieved, first seen first."""
        return list(self._afforded.get(goal, {}))

    def plan(self, goal: str, rng: np.random.Generator) -> Behaviour:
        """A behaviour for a new episode of ``goal``: a chain with probability ``share``."""
        if self.share <= 0.0:
            return Behaviour([], 0)
        options = self.afforded(goal)
        if not options or rng.random() >= self.share:
            return Behaviour([], 0)
        count = min(self.length, len(options))
        picked = rng.choice(len(options), size=count, replace=False)
        return Behaviour([options[int(i)] for i in picked], self.allowance)
