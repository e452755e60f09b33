"""PPO-GLAM: GAE and clipped losses by hand, rollout checks, learning a bandit, checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from autotelic.core import OnPolicyLearner, Rollout, Trajectory
from autotelic.learners.base import CheckpointError
from autotelic.learners.ppo import (
    PPOConfig,
    PPOLearner,
    gae,
    ppo_policy_loss,
    ppo_value_loss,
)
from autotelic.learners.sac import SACLearner
from tests.learners_fixtures import RecordingLock, one_torch_thread, playground_states, tiny

__all__ = ["one_torch_thread"]

A = "Goal: Grasp carrot\nYou see: carrot, water\nYou are standing on: nothing\nAction:"
CA = ["Go to carrot", "Go to water"]


def small(**overrides) -> PPOConfig:
    return PPOConfig(**({"value_hidden": (32,), "minibatch_size": 4} | overrides))


def trajectory(
    learner: PPOLearner,
    prompts,
    cands,
    rewards,
    terminated,
    truncated,
    final=None,
    bootstrap=None,
    greedy=False,
    seed=0,
):
    acted = learner.act(prompts, cands, greedy=greedy, generator=np.random.default_rng(seed))
    return Trajectory(
        prompts=prompts,
        candidates=cands,
        actions=acted.actions,
        log_probs=acted.log_probs,
        rewards=np.array(rewards, dtype=np.float32),
        terminated=np.array(terminated),
        truncated=np.array(truncated),
        final_prompts=final or [],
        bootstrap_prompt=bootstrap,
    )


def test_gae_by_hand():
    gamma, lam = 0.9, 0.8
    rewards = np.array([0.0, 1.0, 0.0, 0.5])
    values = np.array([0.5, 0.6, 0.2, 0.3])
    # Step 1 terminates (next value 0), step 3 is cut with V(cut state) = 0.4.
    next_values = np.array([0.6, 0.0, 0.3, 0.4])
    done = np.array([False, True, False, True])
    adv = gae(rewards, values, next_values, done, gamma, lam)
    d = rewards + gamma * next_values - values
    a3 = d[3]
    a2 = d[2] + gamma * lam * a3
    a1 = d[1]
    a0 = d[0] + gamma * lam * a1
    assert adv.tolist() == pytest.approx([a0, a1, a2, a3])


def test_clipped_losses_by_hand():
    old = torch.zeros(3)
    log_probs = torch.log(torch.tensor([1.5, 0.5, 1.05])).requires_grad_(True)
    adv = torch.tensor([1.0, -1.0, 2.0])
    loss, fraction = ppo_policy_loss(log_probs, old, adv, clip=0.2)
    # ratios 1.5 (clipped to 1.2 for A>0), 0.5 (clipped to 0.8 for A<0), 1.05 (inside).
    assert float(loss.detach()) == pytest.approx(-(1.2 * 1.0 + 0.8 * -1.0 + 1.05 * 2.0) / 3)
    assert float(fraction) == pytest.approx(2 / 3)
    loss.backward()  # type: ignore[no-untyped-call]
    assert log_probs.grad is not None
    assert log_probs.grad[0] == 0 and log_probs.grad[1] == 0 and log_probs.grad[2] != 0
    values = torch.tensor([1.0, 0.0])
    old_values = torch.tensor([0.5, 0.0])
    returns = torch.tensor([0.0, 1.0])
    # Clip 0.2: the first value may only move to 0.7; the pessimistic error is max(1, 0.49).
    # A value moving away from its return beyond the clip is charged the clipped error.
    assert float(ppo_value_loss(values, old_values, returns, 0.2)) == pytest.approx(
        0.5 * (1.0 + 1.0) / 2
    )
    assert float(ppo_value_loss(values, old_values, returns, None)) == pytest.approx(
        0.5 * (1.0 + 1.0) / 2
    )
    assert float(
        ppo_value_loss(torch.tensor([0.2]), torch.tensor([0.5]), torch.tensor([0.0]), 0.2)
    ) == pytest.approx(0.5 * 0.3**2)


def test_trajectory_validation():
    learner = PPOLearner(tiny(), small())
    with pytest.raises(ValueError, match="truncated but has no final_prompts"):
        trajectory(learner, [A], [CA], [0.0], [False], [True])
    with pytest.raises(ValueError, match="bootstrap_prompt is required"):
        trajectory(learner, [A], [CA], [0.0], [False], [False])
    with pytest.raises(ValueError, match="outside its 2 candidates"):
        Trajectory(
            [A],
            [CA],
            np.array([2]),
            np.zeros(1, np.float32),
            np.zeros(1, np.float32),
            np.array([True]),
            np.array([False]),
        )
    with pytest.raises(ValueError, match="without trajectories"):
        Rollout([])


def test_prepare_bootstraps_truncation_and_unfinished_ends_but_not_termination():
    learner = PPOLearner(tiny(), small(gamma=0.9, gae_lambda=0.8))
    prompts, cands = playground_states(4, seed=31)
    final_state, now_state = playground_states(2, seed=32)[0]
    traj = trajectory(
        learner,
        prompts,
        cands,
        [0.0, 1.0, 0.0, 0.5],
        [False, True, False, False],
        [False, False, True, False],
        final=[None, None, final_state, None],
        bootstrap=now_state,
    )
    steps = learner.prepare(Rollout([traj]))
    v = learner.values([*prompts, final_state, now_state]).double().numpy()
    next_values = np.array([v[1], 0.0, v[4], v[5]])
    done = np.array([False, True, True, False])
    expected = gae(np.array([0.0, 1.0, 0.0, 0.5]), v[:4], next_values, done, 0.9, 0.8)
    assert steps.advantages.double().numpy() == pytest.approx(expected, abs=1e-5)
    assert steps.returns.double().numpy() == pytest.approx(expected + v[:4], abs=1e-5)
    assert steps.old_log_probs.tolist() == pytest.approx(traj.log_probs.tolist())


def test_ppo_learns_a_one_step_bandit_and_respects_the_write_lock():
    learner = PPOLearner(tiny(), small(lr=3e-3, value_lr=3e-3, epochs=2))
    assert isinstance(learner, OnPolicyLearner)
    start = learner.act([A], [CA], greedy=True).probs[0][0]
    lock = RecordingLock([*learner.llm_params, *learner.value_head.parameters()])
    for round_ in range(6):
        trajs = []
        for env in range(4):
            acted = learner.act(
                [A] * 4, [CA] * 4, generator=np.random.default_rng(100 * round_ + env)
            )
            rewards = (acted.actions == 0).astype(np.float32)
            trajs.append(
                Trajectory(
                    [A] * 4,
                    [CA] * 4,
                    acted.actions,
                    acted.log_probs,
                    rewards,
                    np.ones(4, bool),
                    np.zeros(4, bool),
                )
            )
        stats = learner.update(Rollout(trajs), write_lock=lock)
        assert np.isfinite(list(stats.values())).all()
    end = learner.act([A], [CA], greedy=True).probs[0][0]
    assert end > start + 0.1, (start, end)
    assert learner.policy_version == 6 * 2 * 4  # epochs x minibatches per rollout
    for (ka, a), (kb, b) in zip(lock.events, lock.events[1:], strict=False):
        if ka == "exit" and kb == "enter":
            assert a == b, "parameters changed outside the write lock"


def test_save_load_continue_is_exact(tmp_path):
    prompts, cands = playground_states(6, seed=41)
    first = PPOLearner(tiny("tiny-seq2seq"), small(lr=1e-3))

    def rollout(learner: PPOLearner, seed: int) -> Rollout:
        t = trajectory(
            learner,
            prompts,
            cands,
            [0, 0, 1, 0, 0, 1],
            [False, False, True, False, False, True],
            [False] * 6,
            seed=seed,
        )
        return Rollout([t])

    first.update(rollout(first, 0))
    torch.save(first.state_dict(), tmp_path / "ppo.pt")
    second = PPOLearner(tiny("tiny-seq2seq"), small(lr=1e-3, seed=7))
    second.load_state_dict(torch.load(tmp_path / "ppo.pt", weights_only=False))
    r1, r2 = rollout(first, 1), rollout(second, 1)
    assert np.array_equal(r1.trajectories[0].log_probs, r2.trajectories[0].log_probs)
    s1, s2 = first.update(r1), second.update(r2)
    for key in s1:
        if key != "update_seconds":
            assert s1[key] == s2[key], key
    for a, b in zip(
        [*first.llm_params, *first.value_head.parameters()],
        [*second.llm_params, *second.value_head.parameters()],
        strict=True,
    ):
        assert torch.equal(a, b)
    with pytest.raises(CheckpointError, match="is for 'sac'"):
        first.load_state_dict(SACLearner(tiny("tiny-seq2seq")).state_dict())
