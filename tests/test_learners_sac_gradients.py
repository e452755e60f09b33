"""SAC-GLAM's LLM gradient, target body and temperature (issue 21, items 3, 4 and 6).

* per-loss clipping: a large critic gradient no longer shrinks the actor's part of
  the LLM's step, as one clip of their sum does; ``critic_body_grad_scale`` weighs
  the critic's part;
* under ``finetune: full`` the target heads read a Polyak-averaged copy of the body;
* log alpha moves by a measurable amount every update.
"""

from __future__ import annotations

import math

import pytest
import torch

from autotelic.core import TransitionBatch
from autotelic.learners import sac_math
from autotelic.learners.sac import SACConfig, SACLearner
from tests.learners_fixtures import (
    one_torch_thread,
    playground_observations,
    tiny,
    transition_batch,
)

__all__ = ["one_torch_thread"]

GAMMA = 0.99


def config(**overrides: object) -> SACConfig:
    base: dict[str, object] = {"critic_hidden": (64, 64), "critic_warmup_updates": 0}
    return SACConfig(**(base | overrides))


def real_batch(reward: float, seed: int = 31) -> TransitionBatch:
    """Six real Playground states; ``reward`` on every row sets the critic's TD error."""
    goals, observations, cands = playground_observations(6, seed=seed)
    _, nxt, nxt_c = playground_observations(6, seed=seed + 1)
    return transition_batch(
        goals,
        observations,
        cands,
        [0] * 6,
        [reward] * 6,
        [GAMMA] * 6,
        nxt,
        nxt_c,
        [False, True, False, True, False, False],
    )


def llm_gradient(finetune: str, batch: TransitionBatch, **overrides: object) -> list[torch.Tensor]:
    """The gradient the LLM's optimizer applied in the first update of a fresh learner (the
    same weights every call), after whatever clipping ``overrides`` ask for: Adam's first
    moment after one step is (1 - beta1) times it."""
    learner = SACLearner(tiny(finetune=finetune), config(**overrides))
    learner.update(batch)
    assert learner.actor_opt is not None
    beta1 = learner.actor_opt.param_groups[0]["betas"][0]
    state = learner.actor_opt.state
    return [
        state[p]["exp_avg"] / (1 - beta1) if p in state else torch.zeros_like(p)
        for p in learner.llm_params
    ]


def norm(grads: list[torch.Tensor]) -> float:
    return math.sqrt(sum(float((g.double() ** 2).sum()) for g in grads))


def minus(a: list[torch.Tensor], b: list[torch.Tensor], k: float = 1.0) -> list[torch.Tensor]:
    return [x - k * y for x, y in zip(a, b, strict=True)]


# ---------------------------------------------------------------- item 3: clipping


def test_combining_clips_each_gradient_on_its_own_and_scales_the_critics():
    actor = [torch.tensor([0.3, 0.0]), None, torch.tensor([0.4])]  # norm 0.5
    critic = [torch.tensor([6.0, 0.0]), torch.tensor([8.0]), None]  # norm 10
    out = sac_math.combine_gradients(actor, critic, max_norm=1.0, critic_scale=0.5)
    k = 0.5 * 1.0 / (10.0 + 1e-6)
    assert out.actor_norm == pytest.approx(0.5) and out.critic_norm == pytest.approx(10.0)
    assert out.cosine == pytest.approx(0.3 * 6.0 / (0.5 * 10.0))
    assert out.actor_share == pytest.approx(0.5 / (0.5 + 0.5), rel=1e-5)
    g0, g1, g2 = out.grads
    assert g0 is not None and g1 is not None and g2 is not None
    assert g0.tolist() == pytest.approx([0.3 + 6.0 * k, 0.0])
    assert g1.tolist() == pytest.approx([8.0 * k])
    assert g2.tolist() == pytest.approx([0.4])  # the actor's part untouched
    both_none = sac_math.combine_gradients([None], [None], max_norm=1.0, critic_scale=1.0)
    assert both_none.grads == [None] and both_none.actor_share == 0.0
    dropped = sac_math.combine_gradients([None], [torch.ones(2)], max_norm=None, critic_scale=0.0)
    assert dropped.grads == [None]


@pytest.mark.parametrize("finetune", ["full", "lora"])
def test_a_large_critic_gradient_leaves_the_actors_part_of_the_step_intact(finetune):
    """Rewards of 30 give the critic a huge TD error. Clipped jointly, the sum shrinks to
    norm 1 and the actor's part with it; clipped per loss, the actor's gradient enters the
    step whole and the critic's adds exactly ``scale * max_grad_norm``."""
    batch = real_batch(reward=30.0)
    unclipped = {"max_grad_norm": None, "grad_clip": "joint", "critic_body_grad_scale": 1.0}
    actor = llm_gradient(finetune, batch, critic_trains_llm=False, **unclipped)
    both = llm_gradient(finetune, batch, **unclipped)
    critic = minus(both, actor)
    assert 0.0 < norm(actor) < 1.0, norm(actor)
    assert norm(critic) > 10.0, norm(critic)

    joint = llm_gradient(finetune, batch, grad_clip="joint", critic_body_grad_scale=1.0)
    shrink = 1.0 / (norm(both) + 1e-6)
    for j, b in zip(joint, both, strict=True):
        torch.testing.assert_close(j, b * shrink, rtol=1e-4, atol=1e-9)
    assert shrink < 0.1, "under one clip the actor gets a tenth of its gradient or less"

    scale = 0.5
    per_loss = llm_gradient(finetune, batch, grad_clip="per_loss", critic_body_grad_scale=scale)
    critic_part = minus(per_loss, actor)
    assert norm(critic_part) == pytest.approx(scale * 1.0, rel=1e-4)
    k = scale / (norm(critic) + 1e-6)
    for c_part, c in zip(critic_part, critic, strict=True):
        torch.testing.assert_close(c_part, c * k, rtol=1e-3, atol=1e-7)


def test_under_joint_clipping_the_scale_weighs_the_critics_gradient_before_the_clip():
    batch = real_batch(reward=1.0)
    unclipped = {"max_grad_norm": None, "grad_clip": "joint", "critic_body_grad_scale": 1.0}
    actor = llm_gradient("full", batch, critic_trains_llm=False, **unclipped)
    critic = minus(llm_gradient("full", batch, **unclipped), actor)
    quarter = llm_gradient("full", batch, **(unclipped | {"critic_body_grad_scale": 0.25}))
    # critic is a difference of two float32 gradients: allow a float32 rounding there.
    for q, a, c in zip(quarter, actor, critic, strict=True):
        torch.testing.assert_close(q, a + 0.25 * c, rtol=1e-4, atol=1e-7)
    # Scale 0 is the critic kept out of the LLM, per loss or joint alike.
    none = llm_gradient("full", batch, critic_body_grad_scale=0.0)
    for n, a in zip(none, actor, strict=True):
        torch.testing.assert_close(n, a, rtol=1e-5, atol=1e-9)


def test_micro_batches_give_the_same_per_loss_gradient_and_statistics():
    batch = real_batch(reward=5.0)
    learners = [
        SACLearner(tiny(finetune="full"), config(critic_body_grad_scale=0.5, micro_batch_size=m))
        for m in (None, 4)
    ]
    stats = [learner.compute_gradients(batch) for learner in learners]
    for key in ("actor_llm_grad_norm", "critic_llm_grad_norm", "llm_grad_cosine"):
        assert stats[1][key] == pytest.approx(stats[0][key], rel=1e-4, abs=1e-6), key
    assert -1.0 <= stats[0]["llm_grad_cosine"] <= 1.0
    assert 0.0 < stats[0]["actor_llm_share"] < 1.0
    for a, b in zip(learners[0].llm_params, learners[1].llm_params, strict=True):
        assert a.grad is not None and b.grad is not None
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-7)


# ---------------------------------------------------------------- item 4: target body


def test_the_full_fine_tuning_target_body_lags_the_online_one_by_tau():
    tau = 0.3
    learner = SACLearner(tiny(finetune="full"), config(tau=tau))
    twin = learner._twin_params
    assert learner.twin is not None and len(twin) == len(learner.llm_params) > 0
    assert all(torch.equal(t, p) for t, p in zip(twin, learner.llm_params, strict=True))
    assert not {t.data_ptr() for t in twin} & {p.data_ptr() for p in learner.llm_params}
    old_twin = [t.detach().clone() for t in twin]
    learner.update(real_batch(reward=1.0))
    moved = 0
    for old, new_twin, online in zip(old_twin, twin, learner.llm_params, strict=True):
        assert torch.equal(new_twin, torch.lerp(old, online.detach(), tau))
        moved += int(not torch.equal(new_twin, online))
    assert moved > len(twin) // 2, "the target must lag, not follow"
    # Without it (the earlier behaviour) the target heads read the online body.
    assert SACLearner(tiny(finetune="full"), config(target_llm=False)).twin is None


def test_the_full_fine_tuning_targets_read_the_lagged_body():
    learner = SACLearner(tiny(finetune="full"), config())
    batch = real_batch(reward=0.0)
    before = learner.compute_targets(batch)
    with torch.no_grad():
        for p in learner.llm_params:
            p.add_(0.05 * torch.randn_like(p))
    after = learner.compute_targets(batch)
    frozen_twin = SACLearner(tiny(finetune="full"), config(target_llm=False))
    frozen_twin._copy_named(frozen_twin.llm_params, learner._named(learner.llm_params))
    frozen_twin.critic_target.load_state_dict(learner.critic_target.state_dict())
    online_read = frozen_twin.compute_targets(batch)
    # pi(a'|s') moved with the online body, the target features did not.
    assert not torch.allclose(after, before, atol=1e-4)
    assert not torch.allclose(after, online_read, atol=1e-4)


def test_a_full_fine_tuning_checkpoint_without_a_target_body_still_loads():
    old = SACLearner(tiny(finetune="full"), config(target_llm=False))
    old.update(real_batch(reward=1.0))
    state = old.state_dict()
    assert state["target_llm"] is None
    new = SACLearner(tiny(finetune="full"), config())
    new.load_state_dict(state)
    for t, p in zip(new._twin_params, new.llm_params, strict=True):
        assert torch.equal(t, p)


# ---------------------------------------------------------------- item 6: alpha


def log_alpha_steps(learner: SACLearner, updates: int) -> tuple[list[float], list[float]]:
    """log alpha's change at each of ``updates`` updates on one batch, and each entropy gap."""
    batch = real_batch(reward=0.0)
    moves, gaps = [], []
    for _ in range(updates):
        before = float(learner.log_alpha.detach())
        stats = learner.update(batch)
        moves.append(float(learner.log_alpha.detach()) - before)
        gaps.append(stats["entropy"] - stats["target_entropy"])
    return moves, gaps


def test_log_alpha_moves_a_hundredth_per_update_by_default_ten_times_the_earlier_rate():
    default = SACLearner(tiny(), config())
    moves, gaps = log_alpha_steps(default, 5)
    assert gaps[0] > 0, "this batch's policy is above its target entropy: alpha must fall"
    assert moves[0] == pytest.approx(-1e-2, rel=1e-3)  # Adam's first step: lr, downhill
    assert all(m < -0.005 for m in moves), moves
    earlier = SACLearner(tiny(), config(alpha_lr=1e-3))
    old_moves, _ = log_alpha_steps(earlier, 5)
    assert sum(old_moves) == pytest.approx(sum(moves) / 10, rel=0.05)


def test_the_sgd_alpha_moves_by_the_learning_rate_times_the_entropy_gap():
    learner = SACLearner(tiny(), config(alpha_optimizer="sgd", alpha_lr=0.05))
    moves, gaps = log_alpha_steps(learner, 2)
    for move, gap in zip(moves, gaps, strict=True):
        assert move == pytest.approx(-0.05 * gap, rel=1e-4)
    assert math.copysign(1.0, moves[0]) == -math.copysign(1.0, gaps[0])


def test_a_fixed_alpha_stays_at_its_initial_value_while_the_policy_learns():
    learner = SACLearner(tiny(), config(alpha_optimizer="fixed", initial_log_alpha=-6.0))
    before = [p.detach().clone() for p in learner.llm_params]
    moves, gaps = log_alpha_steps(learner, 3)
    assert moves == [0.0, 0.0, 0.0] and any(g != 0 for g in gaps)
    assert learner.alpha == pytest.approx(math.exp(-6.0))
    assert any(not torch.equal(b, p) for b, p in zip(before, learner.llm_params, strict=True))


def test_a_checkpoint_of_another_alpha_optimizer_restores_log_alpha_and_starts_it_afresh():
    adam = SACLearner(tiny(), config())
    log_alpha_steps(adam, 2)
    sgd = SACLearner(tiny(), config(alpha_optimizer="sgd", alpha_lr=0.05))
    sgd.load_state_dict(adam.state_dict())
    assert float(sgd.log_alpha.detach()) == float(adam.log_alpha.detach()) != -3.0
    assert isinstance(sgd.alpha_opt, torch.optim.SGD)
    moves, gaps = log_alpha_steps(sgd, 1)
    assert moves[0] == pytest.approx(-0.05 * gaps[0], rel=1e-4)
