"""What the goal daemon hands the collector, and what the collector reports back."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from autotelic.goals.registry import Source


@dataclass(frozen=True, slots=True)
class GoalAssignment:
    """A goal to pursue in one episode.

    ``injection_id`` is set exactly when the episode serves an injection (its
    ``source`` is then ``injected``). For self-chosen episodes ``source`` is
    where the goal first came from, so a goal once injected and now practised
    by the curriculum keeps ``injected`` with no injection id.
    """

    goal: str
    category: str
    source: Source
    injection_id: str | None = None

    def outcome(
        self,
        *,
        success: bool,
        steps: int,
        achieved_goals: Sequence[str] = (),
        episode_id: int | None = None,
    ) -> EpisodeOutcome:
        """The outcome of the episode run for this assignment."""
        return EpisodeOutcome(
            goal=self.goal,
            source=self.source,
            injection_id=self.injection_id,
            success=success,
            steps=steps,
            achieved_goals=list(achieved_goals),
            episode_id=episode_id,
        )


@dataclass(frozen=True, slots=True)
class EpisodeOutcome:
    """One finished episode. ``achieved_goals`` is the union over its steps."""

    goal: str
    source: Source
    injection_id: str | None
    success: bool
    steps: int
    achieved_goals: list[str] = field(default_factory=list)
    episode_id: int | None = None
