"""Acting: greedy and sampled choices, generators, versions, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from autotelic.core import RegistryError, algorithm_spec
from autotelic.learners.encoding import ScoringInputError
from autotelic.learners.models import ModelConfig
from autotelic.learners.policy import choose
from autotelic.learners.ppo import PPOConfig, PPOLearner
from autotelic.learners.sac import SACConfig, SACLearner
from tests.learners_fixtures import one_torch_thread, playground_states

__all__ = ["one_torch_thread"]


def test_choose_greedy_and_sampled():
    probs = [np.array([0.1, 0.7, 0.2]), np.array([0.5, 0.5]), np.array([1.0])]
    assert choose(probs, greedy=True, generator=None).tolist() == [1, 0, 0]
    draws = np.array(
        [choose(probs, greedy=False, generator=np.random.default_rng(s)) for s in range(400)]
    )
    assert abs((draws[:, 0] == 1).mean() - 0.7) < 0.08
    assert abs((draws[:, 1] == 0).mean() - 0.5) < 0.08
    assert (draws[:, 2] == 0).all()
    a = choose(probs, greedy=False, generator=torch.Generator().manual_seed(3))
    b = choose(probs, greedy=False, generator=torch.Generator().manual_seed(3))
    assert np.array_equal(a, b)


def test_act_returns_consistent_probabilities():
    spec = algorithm_spec("sac")
    assert spec.kind == "off_policy"
    learner = spec.build(ModelConfig(path="tiny-causal"), SACConfig(critic_hidden=(16,)))
    assert isinstance(learner, SACLearner)
    prompts, cands = playground_states(5, seed=51)
    result = learner.act(prompts, cands, greedy=False, generator=np.random.default_rng(0))
    again = learner.act(prompts, cands, greedy=False, generator=np.random.default_rng(0))
    assert np.array_equal(result.actions, again.actions)
    greedy = learner.act(prompts, cands, greedy=True)
    for p, c, a, lp, h, g in zip(
        result.probs,
        cands,
        result.actions,
        result.log_probs,
        result.entropies,
        greedy.actions,
        strict=True,
    ):
        assert len(p) == len(c) and abs(p.sum() - 1) < 1e-5
        assert lp == pytest.approx(np.log(p[a]), abs=1e-4)
        assert h == pytest.approx(-(p * np.log(np.clip(p, 1e-30, None))).sum(), abs=1e-4)
        assert g == int(np.argmax(p))
    assert result.policy_version == 0
    with torch.no_grad():
        scores = learner.scorer.score(prompts, cands)
    for p, lp in zip(result.probs, scores.split(scores.log_pi), strict=True):
        assert np.allclose(p, lp.exp().numpy(), atol=1e-6)


def test_act_refuses_states_without_actions():
    spec = algorithm_spec("ppo")
    assert spec.kind == "on_policy"
    learner = spec.build(ModelConfig(path="tiny-seq2seq"), PPOConfig(value_hidden=(16,)))
    assert isinstance(learner, PPOLearner)
    with pytest.raises(ScoringInputError, match="state 1 has no candidate actions"):
        learner.act(["Goal: a\nAction:", "Goal: b\nAction:"], [["Grasp"], []])
    with pytest.raises(RegistryError, match="unknown algorithm 'dqn'; registered: ") as err:
        algorithm_spec("dqn")
    assert {"ppo", "sac"} <= set(str(err.value).split(": ")[-1].split(", "))
