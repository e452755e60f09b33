"""Read-only views of the curriculum for metrics (per category) and status (per goal).

Metrics never carry goal text (labels stay bounded), so the per-category view
is separate from the per-goal detail that only the status command shows.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class CategoryStats:
    """One goal category; the windowed figures cover its last ``stats_window`` episodes."""

    category: str
    goals: int
    """Training goals of this category (held-out ones are known but only listed per goal)."""
    episodes: int
    """Episodes in the window."""
    success_rate: float
    """Success rate over the window (0 with no episode)."""
    lp: float
    """Absolute learning progress over the window (recent half vs older half)."""
    mean_goal_lp: float
    """Mean LP the active estimator gives this category's known goals."""
    competence: float
    """Mean competence the active estimator gives this category's known goals."""
    sample_share: float
    """Probability that the next self-chosen goal is of this category."""


@dataclass(frozen=True, slots=True)
class GoalStats:
    """One known goal, for the status command."""

    goal: str
    category: str
    source: str
    lp: float
    competence: float
    probability: float
    attempts: int
    successes: int
    held_out: bool = False
    """In the goal space's test split: known and reported, never practised (probability 0)."""


@dataclass(frozen=True, slots=True)
class CurriculumStats:
    """A snapshot of the curriculum."""

    episodes: int
    """Episodes reported since the first start (restored across restarts)."""
    epsilon: float
    """Current share of uniform exploration."""
    estimator: str
    goals_by_source: dict[str, int]
    injections_active: int
    injected_episodes_pending: int
    categories: dict[str, CategoryStats]
    goals: list[GoalStats] | None = None
    """Per-goal detail, only when asked for (``stats(detail=True)``)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (for the status message)."""
        return asdict(self)
