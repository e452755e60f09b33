"""Held-out goals never train: known and served when injected, never in the training pool."""

from __future__ import annotations

from collections import Counter
from typing import Any, Literal

import pytest

from autotelic.core import Split
from autotelic.envs.playground import PlaygroundGoalSpace
from autotelic.goals import (
    CurriculumConfig,
    EpisodeOutcome,
    GoalDaemon,
    NoGoalsError,
    SamplerConfig,
)
from autotelic.goals.splits import HeldOutGoals
from tests.goals_fixtures import PLAYGROUND, Reports

TRAIN = ["Grasp door", "Grasp cow", "Grow carrot"]
HELD_OUT = ["Grasp tiger", "Grow lettuce"]
"""Playground-Text's test split holds the last three objects of each category."""


def daemon_for(balance: Literal["goal", "category"] = "goal", **kwargs: Any) -> GoalDaemon:
    sampler = SamplerConfig(balance=balance)
    config = CurriculumConfig(configured_goals=TRAIN, sampler=sampler)
    return GoalDaemon(config, goal_space=PLAYGROUND, **kwargs)


def drawn(daemon: GoalDaemon, n: int = 2000) -> Counter[str]:
    return Counter(a.goal for a in daemon.next_goals(n))


@pytest.mark.parametrize("balance", ["goal", "category"])
def test_a_discovered_held_out_goal_is_known_but_never_drawn(
    balance: Literal["goal", "category"],
) -> None:
    daemon = daemon_for(balance)
    achieved = ["Grasp cow", "Grasp tiger", "Grow lettuce", "Grasp lion"]
    new = daemon.report(EpisodeOutcome("Grasp cow", "configured", None, True, 2, achieved, 1))
    assert {r.text for r in new} == {"Grasp tiger", "Grow lettuce", "Grasp lion"}
    assert set(HELD_OUT) <= {r.text for r in daemon.goals()}
    # The training goal discovered with them joins the pool; the held-out ones do not.
    assert daemon.training_goals() == [*TRAIN, "Grasp lion"]
    assert set(daemon.probabilities()) == {*TRAIN, "Grasp lion"}
    counts = drawn(daemon)
    assert not set(HELD_OUT) & set(counts)
    assert counts["Grasp lion"] > 0


def test_an_injected_held_out_goal_runs_its_episodes_is_reported_and_never_trains() -> None:
    reports = Reports()
    daemon = daemon_for(on_report=reports)
    injection = daemon.inject("grow  Lettuce", episodes=3)
    assignments = daemon.next_goals(5)
    assert [a.goal for a in assignments[:3]] == ["Grow lettuce"] * 3
    assert {a.injection_id for a in assignments[:3]} == {injection.id}
    assert all(a.goal in TRAIN for a in assignments[3:])
    for i, assignment in enumerate(assignments[:3]):
        outcome = assignment.outcome(
            success=True, steps=4, achieved_goals=["Grow lettuce"], episode_id=i
        )
        daemon.report(outcome)
    mine = reports.of(injection.id)
    assert [r.status for r in mine] == ["episode"] * 3 + ["completed"]
    assert mine[-1].successes == 3 and [r.episode_id for r in mine[:3]] == [0, 1, 2]
    # Reported in the stats, with its attempts; never drawn again.
    row = next(g for g in daemon.stats(detail=True).goals or [] if g.goal == "Grow lettuce")
    assert row.held_out and row.source == "injected" and row.probability == 0.0
    assert (row.attempts, row.successes) == (3, 3)
    assert "Grow lettuce" not in drawn(daemon)
    # Its successes steer nothing: the estimator and the training success windows never saw them.
    assert daemon.estimator.competence(["Grow lettuce"])[0] == 0.0
    grow = daemon.stats().categories["grow_plant"]
    assert grow.episodes == 0 and grow.goals == 1  # Grow carrot: the category's training goals


def test_held_out_outcomes_do_not_move_a_category_estimator() -> None:
    daemon = GoalDaemon(
        CurriculumConfig(configured_goals=TRAIN, estimator="bucket"), goal_space=PLAYGROUND
    )
    daemon.inject("Grow lettuce", episodes=4)
    for assignment in daemon.next_goals(4):
        daemon.report(assignment.outcome(success=True, steps=4, achieved_goals=[assignment.goal]))
    assert daemon.estimator.competence(["Grow carrot"])[0] == 0.0  # same bucket, untouched


def test_a_pool_of_held_out_goals_only_has_nothing_to_draw() -> None:
    config = CurriculumConfig(configured_goals=HELD_OUT, discover=False)
    daemon = GoalDaemon(config, goal_space=PLAYGROUND)
    assert {r.text for r in daemon.goals()} == set(HELD_OUT)
    with pytest.raises(NoGoalsError, match="held-out"):
        daemon.next_goals(1)
    injection = daemon.inject("Grasp tiger", episodes=1)
    assert [a.injection_id for a in daemon.next_goals(1)] == [injection.id]


def test_a_goal_space_split_method_wins_over_the_test_list() -> None:
    class DoorsHeldOut(PlaygroundGoalSpace):
        """Holds out a goal its ``goals("test")`` does not list."""

        def split(self, goal: str) -> Split:
            return "test" if goal == "Grasp door" else "train"

    space = DoorsHeldOut()
    assert HeldOutGoals(space)("Grasp door") and not HeldOutGoals(space)("Grasp tiger")
    assert HeldOutGoals(PLAYGROUND)("Grasp tiger") and not HeldOutGoals(PLAYGROUND)("Grasp door")
    daemon = GoalDaemon(CurriculumConfig(configured_goals=TRAIN), goal_space=space)
    assert "Grasp door" not in drawn(daemon, 500)


def test_a_held_out_goal_restored_from_an_older_state_stays_out_of_the_pool() -> None:
    old = daemon_for()
    old.registry.add("Grasp tiger", "discovered", time=0.0)  # as a version before the split
    restored = daemon_for()
    restored.load_state_dict(old.state_dict())
    assert "Grasp tiger" in {r.text for r in restored.goals()}
    assert "Grasp tiger" not in drawn(restored, 500)
