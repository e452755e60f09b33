"""The same code on a CUDA device: run where a GPU exists (skipped elsewhere).

CI has no GPU, so every path here also runs on the CPU in the other tests; this
module checks that nothing assumes the CPU (tensors left behind, dtype mixes).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from autotelic.learners.models import ModelConfig, load_model
from autotelic.learners.prompt import build_prompts
from autotelic.learners.sac import SACConfig, SACLearner
from autotelic.learners.scorer import Scorer
from autotelic.testing.naive_scorer import naive_score
from tests.learners_fixtures import playground_observations, playground_states, transition_batch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


@pytest.mark.parametrize("name", ["tiny-causal", "tiny-seq2seq"])
def test_one_pass_matches_naive_on_cuda(name: str) -> None:
    model = load_model(ModelConfig(path=name, device="cuda", finetune="frozen"))
    prompts, candidates = playground_states(6, seed=3)
    fast = Scorer(model).score(prompts, candidates)
    slow = naive_score(model, prompts, candidates)
    assert fast.logprobs.device.type == "cuda"
    torch.testing.assert_close(fast.logprobs.cpu(), slow.logprobs.cpu(), atol=1e-4, rtol=0)
    torch.testing.assert_close(fast.log_pi.cpu(), slow.log_pi.cpu(), atol=1e-4, rtol=0)


def test_sac_update_on_cuda_changes_the_policy() -> None:
    model = load_model(ModelConfig(path="tiny-causal", device="cuda"))
    learner = SACLearner(model, SACConfig(critic_hidden=(64, 64), critic_warmup_updates=0))
    goals, observations, candidates = playground_observations(8, seed=1)
    prompts = build_prompts(goals, observations)
    batch = transition_batch(
        goals,
        observations,
        candidates,
        [0] * 8,
        [1.0] * 8,
        [0.99] * 8,
        observations,
        candidates,
        [False] * 8,
    )
    before = learner.act(prompts, candidates, greedy=True).probs
    for _ in range(3):
        stats = learner.update(batch)
    after = learner.act(prompts, candidates, greedy=True).probs
    assert all(np.isfinite(v) for v in stats.values())
    assert learner.policy_version == 3
    assert any(not np.allclose(a, b) for a, b in zip(before, after, strict=True))


def test_serial_agent_on_cuda(tmp_path: Path) -> None:
    from autotelic.runtime.config import load_settings
    from autotelic.runtime.evaluation.evaluate import evaluate
    from autotelic.runtime.loop.agent import Agent

    settings = load_settings(
        None,
        run={"dir": str(tmp_path / "run"), "mode": "serial", "max_env_steps": 256},
        model={"path": "tiny-causal", "device": "cuda"},
        env={"num_envs": 8},
        algorithm={
            "name": "sac",
            "batch_size": 32,
            "learning_starts": 64,
            "update_every": 16,
            "critic_hidden": [64, 64],
        },
        replay={"capacity_transitions": 10000},
    )
    agent = Agent(settings)
    agent.run_serial()
    assert agent.learner.num_updates > 0
    result = evaluate(
        agent.learner, agent.env_spec, settings.env, split="test", greedy=True, num_envs=8
    )
    assert set(result.success) == {"grasp", "grow_carnivore", "grow_herbivore", "grow_plant"}
    agent.close()
    resumed = Agent(settings)  # a CUDA checkpoint loads back (tensors were saved on the CPU)
    assert resumed.learner.num_updates == agent.learner.num_updates
    resumed.close()
