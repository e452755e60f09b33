"""SAC-GLAM: targets by hand, a two-state toy problem, warm-up, checkpoints, concurrency."""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest
import torch

from autotelic.core import OffPolicyLearner, TransitionBatch
from autotelic.learners import sac_math
from autotelic.learners.base import CheckpointError
from autotelic.learners.layout import CandidateLayout
from autotelic.learners.models import ModelConfig, load_model
from autotelic.learners.ppo import PPOLearner
from autotelic.learners.prompt import build_prompt
from autotelic.learners.sac import SACConfig, SACLearner
from autotelic.learners.scorer import Scorer
from tests.learners_fixtures import (
    RecordingLock,
    one_torch_thread,
    perturb_adapters,
    playground_observations,
    playground_states,
    tiny,
    transition_batch,
)

__all__ = ["one_torch_thread"]

GAMMA = 0.99
GOAL = "Grasp carrot"
OBS_A = "You see: carrot, water\nYou are standing on: nothing"
OBS_B = "You see: water\nYou are standing on: nothing\nInventory (1/2): carrot"
A = "Goal: Grasp carrot\nYou see: carrot, water\nYou are standing on: nothing\nAction:"
B = "Goal: Grasp carrot\nYou see: water\nYou are standing on: nothing\nInventory (1/2): carrot\nAction:"
CA = ["Go to carrot", "Go to water"]
CB = ["Release carrot", "Release water"]


def small(**overrides) -> SACConfig:
    base = {"critic_hidden": (64, 64), "critic_warmup_updates": 0}
    return SACConfig(**(base | overrides))


def toy_batch() -> TransitionBatch:
    """A: 'Go to carrot' leads to B (reward 0); 'Go to water' ends with 0.
    B: 'Release carrot' ends with reward 1, 'Release water' with 0."""
    return transition_batch(
        [GOAL] * 4,
        [OBS_A, OBS_A, OBS_B, OBS_B],
        [CA, CA, CB, CB],
        [0, 1, 0, 1],
        [0, 0, 1, 0],
        [GAMMA] * 4,
        [OBS_B, OBS_A, OBS_A, OBS_A],
        [CB, [], [], []],
        [False, True, True, True],
    )


# ---------------------------------------------------------------- formulas by hand


def test_a_learner_told_to_list_actions_shows_each_states_own_actions_when_acting_and_replaying():
    listing = SACLearner(tiny(list_actions=True), small())
    plain = SACLearner(tiny(), small())
    assert listing.prompt(GOAL, OBS_A, CA) == (
        "Goal: Grasp carrot\nYou see: carrot, water\nYou are standing on: nothing\n"
        "Possible actions: Go to carrot, Go to water\nAction:"
    )
    assert plain.prompt(GOAL, OBS_A, CA) == A
    # Replay builds the prompts of s_t and s_t+k from each row's own candidate lists.
    batch = toy_batch()
    assert sac_prompts(listing, batch) == [
        (listing.prompt(GOAL, o, c), listing.prompt(GOAL, n, nc))
        for o, c, n, nc in zip(
            batch.observations, batch.candidates, batch.next_observations,
            batch.next_candidates, strict=True,
        )
    ]  # fmt: skip
    assert "Possible actions: Release carrot, Release water" in sac_prompts(listing, batch)[0][1]
    # Same weights, different text: the listed prompts give different targets.
    assert not torch.allclose(listing.compute_targets(batch), plain.compute_targets(batch))


def sac_prompts(learner: SACLearner, batch: TransitionBatch) -> list[tuple[str, str]]:
    from autotelic.learners.sac import _Rows

    rows = _Rows.of(batch, range(len(batch)), learner.device, learner.prompt)
    return list(zip(rows.prompts, rows.next_prompts, strict=True))


def test_the_learner_reads_each_row_as_the_prompt_of_its_goal_and_observation():
    learner = SACLearner(tiny(), small())
    assert isinstance(learner, OffPolicyLearner)
    assert learner.prompt(GOAL, OBS_A, ["Grasp"]) == build_prompt(GOAL, OBS_A) == A
    assert learner.prompt(GOAL, OBS_B, ["Grasp"]) == B


def test_soft_value_uses_min_of_twin_heads_and_entropy():
    layout = CandidateLayout.of([2, 3])
    pi = torch.tensor([0.25, 0.75, 0.2, 0.3, 0.5])
    q = torch.tensor([[1.0, 2.0, 0.0, 4.0, 1.0], [3.0, 0.5, 2.0, 1.0, 1.0]])
    alpha = 0.1
    values = sac_math.soft_values(layout, pi.log(), q, alpha)
    mins = [1.0, 0.5, 0.0, 1.0, 1.0]
    by_hand = [
        sum(p * (m - alpha * math.log(p)) for p, m in zip(pi[:2].tolist(), mins[:2], strict=True)),
        sum(p * (m - alpha * math.log(p)) for p, m in zip(pi[2:].tolist(), mins[2:], strict=True)),
    ]
    assert values.tolist() == pytest.approx(by_hand, abs=1e-6)
    # Taking the max (or either head alone) would give something else.
    assert sac_math.soft_values(
        layout, pi.log(), q.max(0, keepdim=True).values, alpha
    ).tolist() != pytest.approx(by_hand)


def test_td_targets_terminated_truncated_and_n_step():
    rewards = torch.tensor([1.0, 0.5, 0.0, 0.25])
    discounts = torch.tensor([GAMMA, GAMMA**3, GAMMA**2, GAMMA])
    terminated = torch.tensor([True, False, False, True])
    next_values = torch.tensor([5.0, 2.0, 3.0, float("nan")])
    y = sac_math.td_targets(rewards, discounts, terminated, next_values)
    assert y.tolist() == pytest.approx([1.0, 0.5 + GAMMA**3 * 2.0, GAMMA**2 * 3.0, 0.25])


def test_actor_and_alpha_losses_by_hand():
    layout = CandidateLayout.of([2])
    log_pi = torch.tensor([0.2, 0.8]).log()
    q = torch.tensor([[1.0, 0.0], [0.5, 2.0]])
    loss = sac_math.actor_loss(layout, log_pi, q, alpha=0.5)
    by_hand = 0.2 * (0.5 * math.log(0.2) - 0.5) + 0.8 * (0.5 * math.log(0.8) - 0.0)
    assert float(loss) == pytest.approx(by_hand, abs=1e-6)
    assert sac_math.target_entropy([1, 2, 4], 0.5, "cpu").tolist() == pytest.approx(
        [0.0, 0.5 * math.log(2), 0.5 * math.log(4)]
    )
    log_alpha = torch.tensor(-1.0, requires_grad=True)
    loss = sac_math.alpha_loss(log_alpha, torch.tensor([0.1, 0.2]), torch.tensor([0.5, 0.5]))
    loss.backward()  # type: ignore[no-untyped-call]
    assert log_alpha.grad is not None
    assert float(log_alpha.grad) == pytest.approx(
        -0.35
    )  # entropy below target: descent raises alpha


def test_learner_targets_match_a_manual_computation():
    """Terminated rows do not bootstrap, truncated ones do (with their own gamma^k), target
    features come from the target adapter, and the min of the two target heads is used."""
    model = tiny("tiny-causal")
    learner = SACLearner(model, small())
    perturb_adapters(model, seed=1)  # online adapter now differs from the target copy
    goals, observations, cands = playground_observations(4, seed=11)
    _, next_observations, next_cands = playground_observations(4, seed=12)
    next_cands[0] = []
    batch = transition_batch(
        goals,
        observations,
        cands,
        [0, 1, 0, 0],
        [1.0, 0.0, 0.5, 0.0],
        [GAMMA, GAMMA, GAMMA**3, GAMMA**2],
        next_observations,
        next_cands,
        [True, False, False, False],
    )
    y = learner.compute_targets(batch)
    # Each next state is read under its own row's goal.
    next_prompts = [build_prompt(g, o) for g, o in zip(goals, next_observations, strict=True)]
    with torch.no_grad():
        scorer = Scorer(model)
        online = scorer.score(next_prompts[1:], next_cands[1:])
        target_feats = scorer.score(next_prompts[1:], next_cands[1:], module=learner.twin).features
        q = learner.critic_target(target_feats)
        q_online_feats = learner.critic_target(online.features)
    assert not torch.allclose(q, q_online_feats), "the target adapter must matter here"
    assert not torch.allclose(q[0], q[1]), "the two target heads must differ"
    pi = online.log_pi.exp()
    min_q = torch.minimum(q[0], q[1])
    values = [float(v) for v in online.layout.sum(pi * (min_q - learner.alpha * online.log_pi))]
    expected = [1.0, 0.0 + GAMMA * values[0], 0.5 + GAMMA**3 * values[1], GAMMA**2 * values[2]]
    assert y.tolist() == pytest.approx(expected, abs=1e-5)


def test_batch_errors_are_clear():
    learner = SACLearner(tiny(), small())
    stuck = transition_batch([GOAL], [OBS_A], [CA], [0], [0.0], [GAMMA], [OBS_B], [[]], [False])
    with pytest.raises(ValueError, match="not terminated but their next state has no candidate"):
        learner.update(stuck)
    bad = transition_batch([GOAL], [OBS_A], [CA], [0], [0.0], [1.5], [OBS_B], [CB], [False])
    with pytest.raises(ValueError, match=r"discounts must lie in \[0, 1\]"):
        learner.update(bad)


# ---------------------------------------------------------------- two-state toy problem


def test_toy_critic_converges_then_actor_prefers_the_better_actions():
    learner = SACLearner(
        tiny("tiny-causal"),
        small(critic_lr=3e-3, actor_lr=3e-3, tau=0.05, critic_warmup_updates=200),
    )
    batch = toy_batch()
    p_a = learner.act([A], [CA], greedy=True).probs[0]
    p_b = learner.act([B], [CB], greedy=True).probs[0]
    assert 0.05 < p_b[0] < 0.95, "B's policy must not be degenerate for this check"
    for _ in range(200):
        learner.update(batch)
    assert learner.policy_version == 0, "warm-up must not move the policy"
    alpha = learner.alpha
    v_b = sum(p * (q - alpha * math.log(p)) for p, q in zip(p_b.tolist(), [1.0, 0.0], strict=True))
    expected = torch.tensor([GAMMA * v_b, 0.0, 1.0, 0.0])
    q = learner.q_values([A, B], [CA, CB])
    assert (q - expected).abs().max() < 0.02, (q, expected)

    for _ in range(30):
        stats = learner.update(batch)
    assert stats["warmup"] == 0.0 and learner.policy_version == 30
    new_a = learner.act([A], [CA], greedy=True).probs[0]
    new_b = learner.act([B], [CB], greedy=True).probs[0]
    assert new_a[0] > p_a[0] + 0.1
    assert new_b[0] > p_b[0] + 0.1


@pytest.mark.parametrize(("kappa", "direction"), [(1.0, 1.0), (0.0, -1.0)])
def test_alpha_rises_below_target_entropy_and_falls_above(kappa, direction):
    learner = SACLearner(tiny("tiny-causal"), small(target_entropy_ratio=kappa))
    start = float(learner.log_alpha.detach())
    stats = learner.update(toy_batch())
    # kappa = 1: the target is the uniform policy's entropy, above any non-uniform one.
    assert (stats["entropy"] < stats["target_entropy"]) == (direction > 0)
    after_one = float(learner.log_alpha.detach())
    assert (after_one - start) * direction > 0
    for _ in range(3):
        learner.update(toy_batch())
    assert (float(learner.log_alpha.detach()) - after_one) * direction > 0


def test_warmup_trains_heads_only_then_llm_and_target_adapter_follow():
    model = tiny("tiny-causal")
    learner = SACLearner(model, small(critic_warmup_updates=2, tau=0.5))
    llm_before = [p.detach().clone() for p in learner.llm_params]
    heads_before = [p.detach().clone() for p in learner.critic.parameters()]
    alpha_before = float(learner.log_alpha.detach())
    for _ in range(2):
        stats = learner.update(toy_batch())
        assert stats["warmup"] == 1.0 and stats["llm_grad_norm"] == 0.0
    assert all(torch.equal(a, p) for a, p in zip(llm_before, learner.llm_params, strict=True))
    assert any(
        not torch.equal(a, p)
        for a, p in zip(heads_before, learner.critic.parameters(), strict=True)
    )
    assert float(learner.log_alpha.detach()) == alpha_before and learner.policy_version == 0

    online, twin = learner.llm_params, learner._twin_params
    twin_before = [t.detach().clone() for t in twin]
    stats = learner.update(toy_batch())
    assert stats["warmup"] == 0.0 and stats["llm_grad_norm"] > 0 and learner.policy_version == 1
    for old, new_twin, new_online in zip(twin_before, twin, online, strict=True):
        assert torch.allclose(new_twin, 0.5 * old + 0.5 * new_online, atol=1e-6)
    # The twin shares the frozen base weights (no second copy of the model).
    shared = {id(p) for p in model.module.parameters() if not p.requires_grad}
    assert learner.twin is not None
    assert shared and shared <= {id(p) for p in learner.twin.parameters()}


def test_micro_batches_accumulate_to_the_same_update():
    goals, observations, cands = playground_observations(5, seed=21)
    _, nxt, nxt_c = playground_observations(5, seed=22)
    batch = transition_batch(
        goals,
        observations,
        cands,
        [0] * 5,
        [0, 1, 0, 0, 1],
        [GAMMA] * 5,
        nxt,
        nxt_c,
        [False, True, False, False, True],
    )
    whole = SACLearner(tiny(), small())
    parts = SACLearner(tiny(), small(micro_batch_size=2))
    a, b = whole.update(batch), parts.update(batch)
    for key in ("critic_loss", "actor_loss", "entropy", "target_mean"):
        assert a[key] == pytest.approx(b[key], abs=1e-5)
    for p, r in zip(
        whole.llm_params + list(whole.critic.parameters()),
        parts.llm_params + list(parts.critic.parameters()),
        strict=True,
    ):
        assert torch.allclose(p, r, atol=1e-6)


def test_seq2seq_and_full_finetuning_learn_too():
    for config in (
        ModelConfig(path="tiny-seq2seq"),
        ModelConfig(path="tiny-gpt2", finetune="full"),
    ):
        learner = SACLearner(load_model(config), small())
        assert learner.twin is not None, "both fine-tuning modes keep a target copy"
        before = [p.detach().clone() for p in learner.llm_params]
        stats = learner.update(toy_batch())
        assert math.isfinite(stats["critic_loss"]) and stats["llm_grad_norm"] > 0
        assert any(not torch.equal(a, p) for a, p in zip(before, learner.llm_params, strict=True))


# ---------------------------------------------------------------- checkpoints


def _everything(learner: SACLearner) -> list[torch.Tensor]:
    tensors = [p.detach() for p in learner.llm_params]
    tensors += [p.detach() for p in learner.critic.parameters()]
    tensors += [p.detach() for p in learner.critic_target.parameters()]
    tensors += [p.detach() for p in learner._twin_params]
    return [*tensors, learner.log_alpha.detach()]


def test_save_load_continue_is_exact(tmp_path):
    config = small(critic_warmup_updates=1, actor_lr=1e-3)
    first = SACLearner(tiny(), config)
    batch = toy_batch()
    for _ in range(3):
        first.update(batch)
    path = tmp_path / "sac.pt"
    torch.save(first.state_dict(), path)
    frozen_copy = torch.load(path, weights_only=False)

    second = SACLearner(tiny(), config.model_copy(update={"seed": 99}))
    assert any(
        not torch.equal(a, b) for a, b in zip(_everything(first), _everything(second), strict=True)
    )
    second.load_state_dict(torch.load(path, weights_only=False))
    assert (second.policy_version, second.num_updates) == (first.policy_version, first.num_updates)
    for a, b in zip(_everything(first), _everything(second), strict=True):
        assert torch.equal(a, b)
    prompts, cands = playground_states(3, seed=5)
    r1, r2 = first.act(prompts, cands, greedy=True), second.act(prompts, cands, greedy=True)
    for p1, p2 in zip(r1.probs, r2.probs, strict=True):
        assert np.array_equal(p1, p2)
    assert torch.equal(first.q_values(prompts, cands), second.q_values(prompts, cands))

    s1, s2 = first.update(batch), second.update(batch)
    for key in s1:
        if key != "update_seconds":
            assert s1[key] == s2[key], key
    for a, b in zip(_everything(first), _everything(second), strict=True):
        assert torch.equal(a, b)
    # A snapshot does not follow later updates of the learner it came from.
    saved = torch.load(path, weights_only=False)
    for name, tensor in frozen_copy["llm"].items():
        assert torch.equal(saved["llm"][name], tensor)
    assert any(not torch.equal(first.state_dict()["llm"][n], t) for n, t in saved["llm"].items())


def test_mismatched_checkpoints_are_refused():
    learner = SACLearner(tiny(), small())
    state = learner.state_dict()
    with pytest.raises(CheckpointError, match="other frozen base weights"):
        SACLearner(tiny(seed=1), small()).load_state_dict(state)
    with pytest.raises(CheckpointError, match="fine-tuning mode"):
        SACLearner(tiny(lora_r=4), small()).load_state_dict(state)
    with pytest.raises(CheckpointError, match="critic heads"):
        SACLearner(tiny(), small(critic_hidden=(32,))).load_state_dict(state)
    with pytest.raises(CheckpointError, match="is for 'ppo'"):
        learner.load_state_dict(PPOLearner(tiny()).state_dict())


# ---------------------------------------------------------------- concurrency contract


def test_parameters_change_only_under_the_write_lock_while_acting_concurrently():
    learner = SACLearner(tiny(), small())
    assert isinstance(learner, OffPolicyLearner)
    watched = [
        *learner.llm_params,
        *learner.critic.parameters(),
        *learner.critic_target.parameters(),
        learner.log_alpha,
    ]
    lock = RecordingLock(watched)
    prompts, cands = playground_states(4, seed=8)
    seen_versions: list[int] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def collector() -> None:
        try:
            while not stop.is_set():
                result = learner.act(prompts, cands, generator=np.random.default_rng(0), lock=lock)
                assert all(0 <= a < len(c) for a, c in zip(result.actions, cands, strict=True))
                seen_versions.append(result.policy_version)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    thread = threading.Thread(target=collector)
    thread.start()
    try:
        for _ in range(4):
            before = lock.checksum()
            learner.update(toy_batch(), write_lock=lock)
            after = lock.checksum()
            assert before != after
    finally:
        stop.set()
        thread.join()
    assert not errors, errors
    assert seen_versions and seen_versions == sorted(seen_versions)
    # Between one exit and the next enter nothing may change.
    for (kind_a, sum_a), (kind_b, sum_b) in zip(lock.events, lock.events[1:], strict=False):
        if kind_a == "exit" and kind_b == "enter":
            assert sum_a == sum_b
    updates_inside = sum(
        1
        for (ka, a), (kb, b) in zip(lock.events, lock.events[1:], strict=False)
        if ka == "enter" and kb == "exit" and a != b
    )
    assert updates_inside == 4
