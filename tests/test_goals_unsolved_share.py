"""The curriculum's reserve for unsolved goals (``curriculum.sampler.unsolved_share``).

A goal never achieved when pursued has learning progress exactly 0, so LP
sampling gives it only the floor and the decaying exploration: it starves while
it is the goal that most needs practice. The reserve tops the unsolved goals up
to a configured share. Measured here with the simulated learner
(``autotelic.testing.simulated``, as in bench/curriculum.py): the unsolved goals
keep that share at every draw, the learnable goals still get more than a uniform
share, and goals that need long practice before a first success get learnt
instead of starved.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autotelic.goals import (
    CurriculumConfig,
    EpisodeOutcome,
    EpsilonSchedule,
    GoalDaemon,
    SamplerConfig,
    lp_probabilities,
)
from autotelic.testing.simulated import SimGoal, SimulatedLearner, playground_sim_goals
from tests.goals_fixtures import PLAYGROUND

SHARE = SamplerConfig().unsolved_share

# -- the formula -------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    data=st.data(),
    n=st.integers(1, 30),
    epsilon=st.floats(0.0, 1.0),
    floor=st.floats(0.0, 0.9),
    share=st.floats(0.0, 1.0),
)
def test_the_reserve_tops_up_unsolved_goals_and_keeps_every_floor(data, n, epsilon, floor, share):
    lp = data.draw(st.lists(st.floats(0.0, 1.0), min_size=n, max_size=n))
    unsolved = np.array(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    base = lp_probabilities(lp, epsilon, floor)
    probs = lp_probabilities(lp, epsilon, floor, unsolved, share)
    assert probs.sum() == pytest.approx(1.0)
    assert np.all(probs >= floor / n - 1e-12)  # the floor still holds for every goal
    m = int(unsolved.sum())
    if m == 0 or base[unsolved].sum() >= share - 1e-12:
        np.testing.assert_allclose(probs, base, atol=1e-12)  # nothing to top up
        return
    # The least that reaches the share (all but the others' floor when it cannot).
    most = 1.0 - floor * (n - m) / n
    assert probs[unsolved].sum() == pytest.approx(min(share, most), abs=1e-9)
    # Taken from the solved goals only, never raising one; unsolved goals only gain.
    assert np.all(probs[~unsolved] <= base[~unsolved] + 1e-12)
    assert np.all(probs[unsolved] >= base[unsolved] - 1e-12)
    # More LP never means less probability among the solved goals.
    solved_lp, solved_p = np.asarray(lp)[~unsolved], probs[~unsolved]
    order = np.argsort(solved_lp, kind="stable")
    assert np.all(np.diff(solved_p[order]) >= -1e-12)


def test_a_hand_computed_top_up():
    # LP only on goal 0, no exploration, floor 0.1: the LP part gives goal 0 everything.
    probs = lp_probabilities([0.5, 0.0, 0.0, 0.0], 0.0, 0.1, [False, True, True, False], 0.3)
    # unsolved after the floor: 0.9 * moved + 0.1 * 2/4 = 0.3  =>  moved = 0.25 / 0.9,
    # taken from goal 0 (the only solved goal with mass) and split evenly.
    moved = 0.25 / 0.9
    expected = 0.9 * np.array([1 - moved, moved / 2, moved / 2, 0.0]) + 0.025
    np.testing.assert_allclose(probs, expected)
    assert probs[1] + probs[2] == pytest.approx(0.3)
    with pytest.raises(ValueError, match="2 unsolved flags for 4 goals"):
        lp_probabilities([0.5, 0.0, 0.0, 0.0], 0.0, 0.1, [True, False], 0.3)


# -- the daemon's unsolved goals ---------------------------------------------------------------


def test_untried_and_failed_goals_are_unsolved_until_achieved_and_impossible_ones_never():
    sampler = SamplerConfig(  # per goal: the reserve these tests measure, one pool
        epsilon=EpsilonSchedule(kind="constant", start=0.0),
        floor=0.0,
        unsolved_share=0.4,
        balance="goal",
    )
    goals = ["Grasp cow", "Grasp lion", "Grow carrot", "Grow door"]
    daemon = GoalDaemon(
        CurriculumConfig(configured_goals=goals, sampler=sampler), goal_space=PLAYGROUND
    )
    for success in (False, False, True, True):  # LP on Grasp cow only
        daemon.report(EpisodeOutcome("Grasp cow", "configured", None, success, 2))
    daemon.report(EpisodeOutcome("Grow carrot", "configured", None, False, 6))  # tried, failed
    probs = daemon.probabilities()
    # Grasp lion (untried) and Grow carrot (never achieved) share the reserve; growing
    # a door is impossible for the goal space, so it takes none of it.
    assert probs["Grasp lion"] == pytest.approx(0.2) and probs["Grow carrot"] == pytest.approx(0.2)
    assert probs["Grow door"] == 0.0 and probs["Grasp cow"] == pytest.approx(0.6)
    daemon.report(EpisodeOutcome("Grow carrot", "configured", None, True, 5))
    probs = daemon.probabilities()
    assert probs["Grasp lion"] == pytest.approx(0.4)  # now the only unsolved goal
    stats = daemon.stats()
    assert stats.categories["grasp"].sample_share == pytest.approx(
        probs["Grasp cow"] + probs["Grasp lion"]
    )


# -- measured on the simulated learner ---------------------------------------------------------


@dataclass
class Run:
    """What one curriculum did: the unsolved goals' probability at each draw, where the
    episodes went, and the competence reached."""

    unsolved_mass: list[float]
    """Probability of drawing an unsolved goal, at each batch that had one."""
    unsolved_drawn: float
    """Share of the episodes drawn, at those batches, that went to an unsolved goal."""
    samples: dict[str, int]
    competence: dict[str, float]

    def per_goal_share(self, goals: list[SimGoal], kind: str) -> float:
        chosen = [g.text for g in goals if g.difficulty == kind]
        return sum(self.samples[g] for g in chosen) / sum(self.samples.values()) / len(chosen)

    def category_share(self, goals: list[SimGoal], group: str) -> float:
        chosen = [g.text for g in goals if g.group == group]
        return sum(self.samples[g] for g in chosen) / sum(self.samples.values())

    def mean_competence(self, goals: list[SimGoal], group: str) -> float:
        return float(np.mean([self.competence[g.text] for g in goals if g.group == group]))


def drive(goals: list[SimGoal], share: float, seed: int, episodes: int = 3000) -> Run:
    """The real daemon with the simulated learner, 8 goals per draw (as the collector)."""
    config = CurriculumConfig(
        configured_goals=[g.text for g in goals],
        seed=seed,
        sampler=SamplerConfig(unsolved_share=share, balance="goal"),  # one pool
    )
    daemon = GoalDaemon(config, goal_space=PLAYGROUND)
    learner = SimulatedLearner(goals, seed=seed)
    masses, drawn, hits, done = [], 0, 0, 0
    samples = dict.fromkeys(learner.goals, 0)
    while done < episodes:
        rows = daemon.stats(detail=True).goals or []
        unsolved = {r.goal for r in rows if r.successes == 0 and PLAYGROUND.feasible(r.goal)}
        if unsolved:
            masses.append(sum(r.probability for r in rows if r.goal in unsolved))
        for assignment in daemon.next_goals(8):
            if unsolved:
                drawn += 1
                hits += assignment.goal in unsolved
            samples[assignment.goal] += 1
            success = learner.attempt(assignment.goal)
            achieved = [assignment.goal] if success else []
            daemon.report(assignment.outcome(success=success, steps=1, achieved_goals=achieved))
            done += 1
    competence = {g: learner.competence(g) for g in learner.goals}
    return Run(masses, hits / max(drawn, 1), samples, competence)


def test_unsolved_goals_keep_their_share_and_learnable_goals_still_get_more_than_uniform():
    goals = playground_sim_goals()
    runs = [drive(goals, SHARE, seed) for seed in (0, 1)]
    for run in runs:
        assert run.unsolved_mass and min(run.unsolved_mass) >= SHARE - 1e-9
    drawn = np.mean([r.unsolved_drawn for r in runs])
    assert drawn >= SHARE - 0.03  # realised, not only promised (2 x ~1500 draws)
    uniform = 1 / len(goals)
    for run in runs:
        assert run.per_goal_share(goals, "learnable") > 1.2 * uniform
        assert run.per_goal_share(goals, "learnable") > 2 * run.per_goal_share(goals, "impossible")
    # Without the reserve (the sampling before it) the same goals get much less.
    before = [drive(goals, 0.0, seed) for seed in (0, 1)]
    assert min(min(r.unsolved_mass) for r in before) < 0.05
    assert np.mean([r.unsolved_drawn for r in before]) < SHARE - 0.05


def test_goals_that_need_long_practice_are_learnt_instead_of_starved():
    """Carnivores made hard (success below 1% until ~80 episodes of practice each): LP alone
    leaves them at the floor and exploration and they stay unlearnt after 3000 episodes;
    the reserve gives them the practice."""
    goals = [
        SimGoal(g.text, g.difficulty, g.group, mid=150.0, width=15.0)
        if g.group == "grow_carnivore"
        else g
        for g in playground_sim_goals()
    ]
    with_reserve = drive(goals, SHARE, seed=0)
    without = drive(goals, 0.0, seed=0)
    assert min(with_reserve.unsolved_mass) >= SHARE - 1e-9
    # Where the episodes went: the carnivores, unsolved most of the run, keep the reserve;
    # without it they get less than a uniform share (6 of 48 goals) though nothing needs
    # practice more (measured: 0.25 and 0.09).
    uniform = sum(g.group == "grow_carnivore" for g in goals) / len(goals)
    assert with_reserve.category_share(goals, "grow_carnivore") > SHARE
    assert without.category_share(goals, "grow_carnivore") < uniform
    assert without.mean_competence(goals, "grow_carnivore") < 0.05
    assert with_reserve.mean_competence(goals, "grow_carnivore") > 0.5
    total = {
        name: np.mean(list(r.competence.values()))
        for name, r in (("with", with_reserve), ("without", without))
    }
    assert total["with"] > total["without"] + 0.05
