"""Category-balanced sampling: each category an equal share, LP and reserve within it."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autotelic.goals import CurriculumConfig, EpisodeOutcome, GoalDaemon, SamplerConfig
from autotelic.goals.sampler import balanced_probabilities, lp_probabilities
from tests.goals_fixtures import PLAYGROUND

GRASP = [f"Grasp {o}" for o in ("door", "chair", "desk", "sofa", "carrot", "potato", "cow", "lion")]
GROW = ["Grow carrot", "Grow potato"]
"""Eight Grasp goals and two Grow-plant ones: per-goal sampling gives Grow a fifth."""


def balanced_daemon(**sampler: object) -> GoalDaemon:
    config = CurriculumConfig(
        configured_goals=GRASP + GROW,
        discover=False,
        sampler=SamplerConfig(balance="category", **sampler),
    )
    return GoalDaemon(config, goal_space=PLAYGROUND)


def report(daemon: GoalDaemon, goal: str, successes: list[bool]) -> None:
    for success in successes:
        achieved = [goal] if success else []
        daemon.report(EpisodeOutcome(goal, "configured", None, success, 3, achieved))


def test_each_category_gets_an_equal_share_of_the_drawn_goals() -> None:
    daemon = balanced_daemon()
    n = 4000
    drawn = Counter(a.category for a in daemon.next_goals(n))
    # Binomial(4000, 0.5): sd 0.0079, so 0.04 is five of them; per-goal sampling gives 0.2.
    assert abs(drawn["grow_plant"] / n - 0.5) < 0.04
    assert drawn["grasp"] + drawn["grow_plant"] == n
    per_goal = GoalDaemon(
        CurriculumConfig(
            configured_goals=GRASP + GROW, discover=False, sampler=SamplerConfig(balance="goal")
        ),
        goal_space=PLAYGROUND,
    )
    assert sum(per_goal.probabilities()[g] for g in GROW) == pytest.approx(0.2)
    default = GoalDaemon(
        CurriculumConfig(configured_goals=GRASP + GROW, discover=False), goal_space=PLAYGROUND
    )
    assert sum(default.probabilities()[g] for g in GROW) == pytest.approx(0.5)  # the default


def test_learning_progress_orders_goals_within_their_category_only() -> None:
    daemon = balanced_daemon(unsolved_share=0.0, epsilon={"kind": "constant", "start": 0.2})
    report(daemon, "Grow carrot", [False] * 10 + [True] * 10)  # LP 1.0
    report(daemon, "Grasp door", [False] * 10 + [True] * 10)  # LP 1.0 too
    probs = daemon.probabilities()
    assert sum(probs[g] for g in GROW) == pytest.approx(0.5)
    assert sum(probs[g] for g in GRASP) == pytest.approx(0.5)
    # Within Grow plant, the goal with LP takes most of it; within Grasp likewise.
    assert probs["Grow carrot"] > 3 * probs["Grow potato"]
    assert probs["Grasp door"] > 5 * max(probs[g] for g in GRASP[1:])
    counts = Counter(a.goal for a in daemon.next_goals(3000))
    assert counts["Grow carrot"] > 2 * counts["Grow potato"]


def test_the_unsolved_reserve_is_per_category() -> None:
    # Grasp: every goal solved except one. Grow: both solved. A shared reserve would
    # count the Grasp goal against the whole pool; here it gets its category's share.
    daemon = balanced_daemon(unsolved_share=0.3, epsilon={"kind": "constant", "start": 0.0})
    for goal in [*GRASP[1:], *GROW]:
        report(daemon, goal, [False, True] * 5)
    report(daemon, "Grasp door", [False] * 4)
    probs = daemon.probabilities()
    assert probs["Grasp door"] == pytest.approx(0.3 * 0.5)
    assert sum(probs[g] for g in GROW) == pytest.approx(0.5)


def test_a_category_no_episode_can_achieve_keeps_only_the_floor() -> None:
    config = CurriculumConfig(
        configured_goals=["Grasp door", "Grow carrot", "Grow sofa", "Grow bed"],
        discover=False,
        sampler=SamplerConfig(balance="category", floor=0.1),
    )
    probs = GoalDaemon(config, goal_space=PLAYGROUND).probabilities()
    assert probs["Grow sofa"] == probs["Grow bed"] == pytest.approx(0.1 / 4)
    assert probs["Grasp door"] == pytest.approx(0.475) and probs["Grow carrot"] == pytest.approx(
        0.475
    )


def test_hand_computed_balanced_probabilities() -> None:
    probs = balanced_probabilities([0.1, 0.3, 0.0, 0.5], ["a", "a", "b", "b"], 0.0, 0.0)
    np.testing.assert_allclose(probs, [0.125, 0.375, 0.0, 0.5])
    uniform = balanced_probabilities([0.0] * 4, ["a", "a", "a", "b"], 0.0, 0.0)
    np.testing.assert_allclose(uniform, [1 / 6, 1 / 6, 1 / 6, 0.5])
    with pytest.raises(ValueError, match="categories"):
        balanced_probabilities([0.0, 0.0], ["a"], 0.0, 0.0)


goal_rows = st.lists(
    st.tuples(
        st.sampled_from("abc"),
        st.floats(min_value=0.0, max_value=1.0, allow_nan=False),
        st.booleans(),
    ),
    min_size=1,
    max_size=30,
)


@settings(max_examples=150, deadline=None)
@given(
    goal_rows,
    st.floats(min_value=0.0, max_value=1.0),
    st.floats(min_value=0.0, max_value=0.95),
    st.floats(min_value=0.0, max_value=1.0),
)
def test_every_category_gets_one_kth_with_its_own_reserve_and_floor(
    rows: list[tuple[str, float, bool]], epsilon: float, floor: float, share: float
) -> None:
    categories = [r[0] for r in rows]
    lp = np.array([r[1] for r in rows])
    unsolved = np.array([r[2] for r in rows])
    probs = balanced_probabilities(lp, categories, epsilon, floor, unsolved, share)
    names = set(categories)
    assert probs.sum() == pytest.approx(1.0)
    for name in names:
        mask = np.array([c == name for c in categories])
        inner = lp_probabilities(lp[mask], epsilon, floor, unsolved[mask], share)
        # The category's goals are distributed exactly as if they were alone, scaled.
        np.testing.assert_allclose(probs[mask], inner / len(names), atol=1e-12)
        assert probs[mask].sum() == pytest.approx(1 / len(names))
        assert np.all(probs[mask] >= floor / mask.sum() / len(names) - 1e-12)
