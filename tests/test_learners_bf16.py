"""Mixed precision (``model.autocast``): bfloat16 products, float32 results, clean fallback.

Tolerances, stated once and checked here on the tiny models (the same checks on
the packaged SmolLM2 are in the ``slow`` tests at the end, with the looser
bounds measured there, see docs/performance.md):

* log pi (over a state's candidates) within 0.03 nats of float32 on the tiny
  decoder-only models, 0.1 on the tiny T5 (its encoder and decoder both round);
  measured 0.006, 0.002 and 0.03;
* candidate features (what the Q heads read) within 2% relative (measured <1%);
* one SAC update: critic and actor losses, targets and entropy within 1%
  relative (+1e-4), and its gradients point the way float32's do (cosine >
  0.99; measured 0.9995).
"""

from __future__ import annotations

import logging

import pytest
import torch
from torch import nn

from autotelic.core import TransitionBatch
from autotelic.learners import models
from autotelic.learners.models import ModelConfig, load_model, resolve_autocast
from autotelic.learners.prompt import build_prompts
from autotelic.learners.sac import SACConfig, SACLearner
from autotelic.learners.scorer import Scorer, lm_log_probs, pack_states, run_packed
from autotelic.learners.scorer import _gather as gather_rows
from tests.learners_fixtures import one_torch_thread, perturb_adapters, transition_batch

__all__ = ["one_torch_thread"]

LOG_PI_ATOL = {"tiny-causal": 0.03, "tiny-gpt2": 0.03, "tiny-seq2seq": 0.1}
FEATURE_RTOL = 0.02


THINGS = ["carrot", "water", "cow", "door", "lion", "tomato seed", "sofa", "berry seed", "wolf"]


def scenes(num: int) -> tuple[list[str], list[str], list[list[str]]]:
    """Goals, observations and candidates of ``num`` fixed Playground-like states (the same
    in every process, so the measured differences are too)."""
    goals, observations, candidates = [], [], []
    for i in range(num):
        seen = [THINGS[(i + 2 * k) % len(THINGS)] for k in range(4)]
        held = "empty" if i % 3 else f"{THINGS[(i + 1) % len(THINGS)]}"
        observations.append(
            f"You see: {', '.join(seen)}\nYou are standing on: "
            f"{seen[i % 4] if i % 2 else 'nothing'}\nInventory ({int(i % 3 == 0)}/2): {held}"
        )
        goals.append(f"{'Grasp' if i % 2 else 'Grow'} {seen[(i + 1) % 4]}")
        candidates.append([f"Go to {x}" for x in seen[: 2 + i % 3]] + ["Grasp"] * (i % 2))
    return goals, observations, candidates


def states(num: int) -> tuple[list[str], list[list[str]]]:
    goals, observations, candidates = scenes(num)
    return build_prompts(goals, observations), candidates


def pair(name: str, **overrides: object) -> tuple[models.PolicyModel, models.PolicyModel]:
    """The same model (same seed, same adapters) in float32 and under bf16 autocast."""
    fp32 = load_model(ModelConfig(path=name, autocast="off", **overrides))
    bf16 = load_model(ModelConfig(path=name, autocast="bfloat16", **overrides))
    if overrides.get("finetune", "lora") == "lora":
        perturb_adapters(fp32, scale=0.05, seed=1)
        perturb_adapters(bf16, scale=0.05, seed=1)
    return fp32, bf16


def relative_rows(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(((a - b).norm(dim=1) / a.norm(dim=1).clamp_min(1e-6)).max())


@pytest.mark.parametrize("name", ["tiny-causal", "tiny-gpt2", "tiny-seq2seq"])
def test_bf16_scores_match_float32_within_the_stated_tolerance(name: str) -> None:
    fp32, bf16 = pair(name)
    assert bf16.autocast_dtype == torch.bfloat16 and fp32.autocast_dtype is None
    prompts, candidates = states(16)
    with torch.no_grad():
        a = Scorer(fp32).score(prompts, candidates)
        b = Scorer(bf16).score(prompts, candidates)
    for out in (b.logprobs, b.log_pi, b.features, b.state_features):
        assert out.dtype == torch.float32 and torch.isfinite(out).all()
    assert float((a.log_pi - b.log_pi).abs().max()) <= LOG_PI_ATOL[name]
    assert relative_rows(a.features, b.features) <= FEATURE_RTOL
    # Not bitwise equal: the bf16 path really computed in bfloat16.
    assert not torch.equal(a.features, b.features)


def test_trained_weights_and_embeddings_stay_float32_frozen_linears_are_bf16() -> None:
    _, lora = pair("tiny-causal")
    dtypes = {n: p.dtype for n, p in lora.module.named_parameters()}
    trained = [n for n, p in lora.module.named_parameters() if p.requires_grad]
    assert trained and all(dtypes[n] == torch.float32 for n in trained)
    frozen_linear = [
        n
        for n, m in lora.module.named_modules()
        if isinstance(m, nn.Linear) and not m.weight.requires_grad and "lm_head" not in n
    ]
    assert frozen_linear
    assert all(dtypes[f"{n}.weight"] == torch.bfloat16 for n in frozen_linear)
    assert lora.hf.get_input_embeddings().weight.dtype == torch.float32
    head = lora.hf.get_output_embeddings()  # type: ignore[no-untyped-call]
    assert head.weight.dtype == torch.float32
    # Under full fine-tuning every weight trains, so every weight keeps its float32 master.
    _, full = pair("tiny-causal", finetune="full")
    assert {p.dtype for p in full.module.parameters()} == {torch.float32}


def test_the_lm_head_runs_in_float32_on_the_bf16_body() -> None:
    """The log-softmax over the vocabulary sees float32 logits: equal to the float32 head
    applied by hand to the same hidden rows, not to a bfloat16 rounding of them."""
    _, bf16 = pair("tiny-causal")
    prompts, candidates = states(6)
    scorer = Scorer(bf16)
    packed = pack_states(scorer.encode(prompts, candidates), "right", scorer.pad_id)
    with torch.no_grad(), bf16.compute():
        hidden = run_packed(bf16.hf, packed)
        rows = gather_rows(hidden, packed.rows.lm_rows)
        got = lm_log_probs(bf16.hf, rows)
    head = bf16.hf.get_output_embeddings().weight  # type: ignore[no-untyped-call]
    expected = torch.log_softmax(rows.float() @ head.T, dim=-1)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    rounded = torch.log_softmax((rows.bfloat16() @ head.bfloat16().T).float(), dim=-1)
    assert float((got - rounded).abs().max()) > 1e-4  # what a bf16 head would have given


def sac_batch() -> TransitionBatch:
    """Eight fixed transitions, three of them terminal."""
    goals, observations, candidates = scenes(10)
    terminated = [False, True, False, False, True, False, True, False]
    return transition_batch(
        goals[:8],
        observations[:8],
        candidates[:8],
        [i % len(candidates[i]) for i in range(8)],
        [float(t) for t in terminated],
        [0.99] * 8,
        observations[2:10],
        [[] if t else c for t, c in zip(terminated, candidates[2:10], strict=True)],
        terminated,
    )


def gradients(learner: SACLearner) -> torch.Tensor:
    params = [*learner.llm_params, *learner.critic.parameters()]
    return torch.cat([p.grad.flatten() for p in params if p.grad is not None])


def test_one_sac_update_in_bf16_matches_float32() -> None:
    """Same model, same heads, same batch: the losses agree, the gradients point the same
    way, and the update leaves the trained weights in float32."""
    fp32, bf16 = pair("tiny-causal")
    config = SACConfig(critic_hidden=(64, 64), critic_warmup_updates=0)
    learners = [SACLearner(fp32, config), SACLearner(bf16, config)]
    batch = sac_batch()
    stats = [learner.compute_gradients(batch) for learner in learners]
    for key in ("critic_loss", "actor_loss", "target_mean", "entropy"):
        assert stats[1][key] == pytest.approx(stats[0][key], rel=0.01, abs=1e-4), key
    grads = [gradients(learner) for learner in learners]
    assert float(grads[0].norm()) > 0
    assert float(torch.cosine_similarity(grads[0], grads[1], dim=0)) > 0.99
    for learner in learners:
        learner.zero_grad()
    learners[1].update(batch)
    assert all(p.dtype == torch.float32 for p in learners[1].llm_params)
    assert learners[1].policy_version == 1


def test_a_bf16_checkpoint_resumes_in_float32_and_back() -> None:
    """Precision is a property of the run, not of the checkpoint: the base-weight checksum
    is taken before weights are stored in bfloat16."""
    fp32, bf16 = pair("tiny-causal")
    config = SACConfig(critic_hidden=(64, 64), critic_warmup_updates=0)
    trained = SACLearner(bf16, config)
    trained.update(sac_batch())
    state = trained.state_dict()
    resumed = SACLearner(fp32, config)
    resumed.load_state_dict(state)
    for a, b in zip(trained.llm_params, resumed.llm_params, strict=True):
        assert torch.equal(a, b)
    SACLearner(pair("tiny-causal")[1], config).load_state_dict(resumed.state_dict())


# ---------------------------------------------------------------- fallback


def test_auto_falls_back_to_float32_without_native_bf16(monkeypatch, caplog) -> None:
    big = models.AUTO_AUTOCAST_MIN_PARAMETERS
    cpu = torch.device("cpu")
    monkeypatch.setattr(models, "cpu_has_native_bf16", lambda: True)
    assert resolve_autocast(ModelConfig(), cpu, big)[0] == torch.bfloat16
    assert resolve_autocast(ModelConfig(), cpu, big - 1)[0] is None  # tiny: float32
    assert resolve_autocast(ModelConfig(autocast="off"), cpu, big)[0] is None
    assert resolve_autocast(ModelConfig(dtype="bfloat16"), cpu, big)[0] is None
    # CUDA: "auto" leaves it off (TF32 there) without touching a device.
    assert resolve_autocast(ModelConfig(), torch.device("cuda"), big)[0] is None

    monkeypatch.setattr(models, "cpu_has_native_bf16", lambda: False)
    dtype, why = resolve_autocast(ModelConfig(), cpu, big)
    assert dtype is None and "no native bfloat16" in why
    with caplog.at_level(logging.WARNING, logger=models.__name__):
        dtype, _ = resolve_autocast(ModelConfig(autocast="bfloat16"), cpu, big)
    assert dtype == torch.bfloat16, "an explicit request is honoured"
    assert "emulated" in caplog.text


def test_auto_on_a_tiny_model_is_exactly_the_float32_path(monkeypatch) -> None:
    monkeypatch.setattr(models, "cpu_has_native_bf16", lambda: True)
    auto = load_model(ModelConfig(path="tiny-causal"))
    off = load_model(ModelConfig(path="tiny-causal", autocast="off"))
    assert auto.autocast_dtype is None
    assert {p.dtype for p in auto.module.parameters()} == {torch.float32}
    prompts, candidates = states(8)
    with torch.no_grad():
        a, b = Scorer(auto).score(prompts, candidates), Scorer(off).score(prompts, candidates)
    assert torch.equal(a.logprobs, b.logprobs) and torch.equal(a.features, b.features)


def test_cpu_flags_are_read_per_architecture(tmp_path) -> None:
    """The detection reads the flags cpuinfo lists (x86: avx512_bf16 or amx_bf16, Arm:
    bf16) and says no where it cannot read them."""
    texts = {
        "x86": "processor: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16\n",
        "x86-amx": "processor: 0\nflags\t\t: fpu avx2 amx_bf16 amx_tile\n",
        "x86-old": "processor: 0\nflags\t\t: fpu avx2 avx512f avx512bw\n",
        "arm": "processor: 0\nFeatures\t: fp asimd bf16 i8mm\n",
    }
    for kind, text in texts.items():
        (tmp_path / kind).write_text(text)
    for kind, machine, expected in [
        ("x86", "x86_64", True),
        ("x86-amx", "x86_64", True),
        ("x86-old", "x86_64", False),
        ("arm", "aarch64", True),
        ("x86", "aarch64", False),
        ("missing", "x86_64", False),
    ]:
        assert models.cpuinfo_has_bf16(machine, tmp_path / kind) is expected, (kind, machine)


# ---------------------------------------------------------------- the packaged model


@pytest.mark.slow
def test_smollm2_bf16_matches_float32_and_auto_picks_it_on_a_bf16_cpu() -> None:
    """SmolLM2-135M, the tolerances of docs/performance.md: scoring in bf16, log pi within
    0.4 nats (mean 0.15) and pi within 0.07 of float32; one update's losses within 0.05;
    and the update learns the same thing: its adapters, read in float32, give log pi
    within 0.05 nats of the float32-trained ones."""
    fp32 = load_model(ModelConfig(autocast="off", frozen_layers=0))  # every layer trains
    bf16 = load_model(ModelConfig(autocast="bfloat16", frozen_layers=0))
    if models.cpu_has_native_bf16():
        assert load_model(ModelConfig()).autocast_dtype == torch.bfloat16
    prompts, candidates = states(24)
    with torch.no_grad():
        a = Scorer(fp32).score(prompts, candidates)
        b = Scorer(bf16).score(prompts, candidates)
    diff = (a.log_pi - b.log_pi).abs()
    assert float(diff.max()) <= 0.4 and float(diff.mean()) <= 0.15
    assert float((a.log_pi.exp() - b.log_pi.exp()).abs().max()) <= 0.07
    assert relative_rows(a.features, b.features) <= 0.05
    config = SACConfig(critic_warmup_updates=0)
    learners = [SACLearner(m, config) for m in (fp32, bf16)]
    stats = [learner.update(sac_batch()) for learner in learners]
    for key in ("critic_loss", "actor_loss", "target_mean"):
        assert abs(stats[1][key] - stats[0][key]) <= 0.05, key
    reader = load_model(ModelConfig(autocast="off", frozen_layers=0))
    with torch.no_grad():
        for (_, param), trained in zip(
            reader.trainable_parameters(), learners[1].llm_params, strict=True
        ):
            param.copy_(trained)
        moved = Scorer(fp32).score(prompts, candidates)
        same = Scorer(reader).score(prompts, candidates)
    moved_by = float((moved.log_pi - a.log_pi).abs().max())
    assert moved_by > 1e-3  # the update did move the policy...
    assert float((moved.log_pi - same.log_pi).abs().max()) <= 0.05  # ...the same way
