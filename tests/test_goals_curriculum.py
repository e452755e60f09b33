"""LP curricula against uniform sampling, on the simulated learner of known difficulty.

Everything is measured in the test: the same learner, seed and episode budget
for each curriculum; nothing is compared to a stored number.
"""

from __future__ import annotations

import pytest

from autotelic.goals import CurriculumConfig, GoalDaemon, SamplerConfig
from autotelic.testing.simulated import (
    SimGoal,
    SimulatedLearner,
    SimulationTrace,
    playground_sim_goals,
    simulate,
    uniform_config,
)
from tests.goals_fixtures import PLAYGROUND

SIM = playground_sim_goals()
TEXTS = [g.text for g in SIM]
KIND = {g.text: g.difficulty for g in SIM}
EPISODES = 3000


def run(config: CurriculumConfig, seed: int) -> SimulationTrace:
    daemon = GoalDaemon(config.model_copy(update={"seed": seed}), goal_space=PLAYGROUND)
    return simulate(daemon, SimulatedLearner(SIM, seed=seed), episodes=EPISODES)


def test_the_simulated_goals_span_every_difficulty() -> None:
    kinds = set(KIND.values())
    assert kinds == {"mastered", "learnable", "impossible"}
    learner = SimulatedLearner(SIM, seed=0)
    assert learner.competence("Grasp cow") > 0.9
    assert learner.competence("Grow sofa") == 0.0
    assert learner.competence("Grow carrot") < 0.05
    for _ in range(30):
        learner.attempt("Grow carrot")
    assert learner.competence("Grow carrot") > 0.9  # learnt with practice
    assert 0 < learner.practice["Grow potato"] < 30  # and a little transfer to its group
    assert learner.practice["Grow cow"] == 0


def test_learner_rejects_bad_transfer() -> None:
    with pytest.raises(ValueError, match="transfer"):
        SimulatedLearner([SimGoal("Grow carrot", "learnable", "plant")], transfer=2.0)


@pytest.mark.parametrize("estimator", ["goal", "bucket"])
def test_lp_sampling_favours_learnable_goals_and_beats_uniform(estimator: str) -> None:
    """Pooled over three seeds (per-goal LP also wins on each seed alone; buckets are noisier)."""
    per_goal = SamplerConfig(balance="goal")  # LP over the one pool, against uniform
    lp_config = CurriculumConfig(configured_goals=TEXTS, estimator=estimator, sampler=per_goal)
    seeds = (0, 1, 2)
    lp = [run(lp_config, seed) for seed in seeds]
    uniform = [run(uniform_config(TEXTS), seed) for seed in seeds]
    learnable = sum(t.per_goal_share(KIND, "learnable") for t in lp)
    assert learnable > 1.3 * sum(t.per_goal_share(KIND, "mastered") for t in lp)
    assert learnable > 2.0 * sum(t.per_goal_share(KIND, "impossible") for t in lp)
    # Uniform spreads evenly, which is what LP improves on.
    for trace in uniform:
        assert trace.per_goal_share(KIND, "learnable") == pytest.approx(1 / len(TEXTS), rel=0.15)
    lp_final = [t.total_competence[-1] for t in lp]
    uniform_final = [t.total_competence[-1] for t in uniform]
    assert sum(lp_final) / 3 > sum(uniform_final) / 3 + 0.015, (lp_final, uniform_final)
    if estimator == "goal":
        assert all(a > b for a, b in zip(lp_final, uniform_final, strict=True))
