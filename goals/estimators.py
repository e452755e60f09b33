"""Competence and learning-progress (LP) estimators over windows of outcomes.

LP is the absolute change in competence: |mean of the recent half - mean of the
older half| of a sliding window of successes. Absolute, because a goal the agent
is forgetting deserves practice as much as one it is learning. Two granularities
share the code: one window per goal, and one per goal category (bucket), which
pools evidence when goals are many and each is rarely tried.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


@runtime_checkable
class CompetenceEstimator(Protocol):
    """What the sampler needs: per-goal LP and competence, updated from outcomes."""

    kind: str
    """A short name saved with the state, so a state of another kind is not loaded by mistake."""

    def update(self, goal: str, success: bool) -> None:
        """Account for one episode pursuing ``goal``."""
        ...

    def lp(self, goals: Sequence[str]) -> FloatArray:
        """Learning progress of each goal, >= 0, aligned with ``goals``."""
        ...

    def competence(self, goals: Sequence[str]) -> FloatArray:
        """Estimated success probability of each goal, in [0, 1]."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """Msgpack- and JSON-able state."""
        ...

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        ...


def absolute_lp(outcomes: Sequence[float]) -> float:
    """|mean(recent half) - mean(older half)|; 0 with fewer than two outcomes.

    With an odd count the middle outcome belongs to neither half, so both halves
    weigh the same number of episodes.
    """
    n = len(outcomes)
    if n < 2:
        return 0.0
    half = n // 2
    values = np.asarray(outcomes, dtype=np.float64)
    return float(abs(values[n - half :].mean() - values[:half].mean()))


class WindowedLP:
    """One sliding window of outcomes per key; ``key_of`` maps a goal to its key."""

    kind = "windowed"

    def __init__(self, window: int, key_of: Callable[[str], str] | None = None) -> None:
        if window < 2:
            raise ValueError(f"window must be at least 2 outcomes, got {window}")
        self.window = window
        self.key_of = key_of if key_of is not None else _identity
        self._outcomes: dict[str, deque[float]] = {}
        self._attempts: dict[str, int] = {}

    def update(self, goal: str, success: bool) -> None:
        key = self.key_of(goal)
        outcomes = self._outcomes.get(key)
        if outcomes is None:
            outcomes = self._outcomes[key] = deque(maxlen=self.window)
        outcomes.append(1.0 if success else 0.0)
        self._attempts[key] = self._attempts.get(key, 0) + 1

    def lp(self, goals: Sequence[str]) -> FloatArray:
        return self._per_goal(goals, absolute_lp)

    def competence(self, goals: Sequence[str]) -> FloatArray:
        return self._per_goal(goals, lambda o: float(np.mean(o)) if o else 0.0)

    def keys(self) -> list[str]:
        """Keys with at least one outcome, in the order they were first seen."""
        return list(self._outcomes)

    def attempts(self, goals: Sequence[str]) -> npt.NDArray[np.int64]:
        """Episodes counted for each goal's key since the start (not only the window)."""
        return np.array([self._attempts.get(self.key_of(g), 0) for g in goals], dtype=np.int64)

    def _per_goal(
        self, goals: Sequence[str], stat: Callable[[Sequence[float]], float]
    ) -> FloatArray:
        cache: dict[str, float] = {}
        values = np.empty(len(goals), dtype=np.float64)
        for i, goal in enumerate(goals):
            key = self.key_of(goal)
            if key not in cache:
                cache[key] = stat(self._outcomes.get(key, ()))
            values[i] = cache[key]
        return values

    def state_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "window": self.window,
            "outcomes": {k: [int(x) for x in v] for k, v in self._outcomes.items()},
            "attempts": dict(self._attempts),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        _check_kind(self.kind, state)
        outcomes = {
            str(k): deque((float(x) for x in v), maxlen=self.window)
            for k, v in state["outcomes"].items()
        }
        attempts = {str(k): int(v) for k, v in state["attempts"].items()}
        self._outcomes, self._attempts = outcomes, attempts


class GoalLP(WindowedLP):
    """Absolute LP with one window per goal: precise, but every goal must be tried often."""

    kind = "goal"

    def __init__(self, window: int = 20) -> None:
        super().__init__(window)


class BucketLP(WindowedLP):
    """Absolute LP with one window per category: every goal of a bucket shares its LP."""

    kind = "bucket"

    def __init__(self, category_of: Callable[[str], str], window: int = 100) -> None:
        super().__init__(window, key_of=category_of)


def _identity(goal: str) -> str:
    return goal


def _check_kind(kind: str, state: dict[str, Any]) -> None:
    saved = state.get("kind")
    if saved != kind:
        raise ValueError(f"state of a {saved!r} estimator cannot be loaded into a {kind!r} one")
