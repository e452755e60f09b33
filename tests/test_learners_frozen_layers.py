"""``model.frozen_layers``: only the top layers train, the lower ones run apart and cached.

The cheap path must compute what the model's own forward computes: the split forward
(lower layers, then upper layers and norm) is checked against ``Scorer.split_frozen =
False`` (the model's forward over every layer, the full recomputation) on the same
weights, with and without cached activations, through whole SAC updates, across a
restart (the cache is not kept: it is rebuilt), and through the service's checkpoint
and export. The tiny models share the code path with SmolLM2 (a Llama of 2 layers);
the SmolLM2 check is ``slow``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from autotelic.core import TransitionBatch
from autotelic.core.errors import CheckpointError
from autotelic.learners import models
from autotelic.learners.base import LLMLearner
from autotelic.learners.model_config import ModelConfig
from autotelic.learners.models import ModelError, PolicyModel
from autotelic.learners.sac import SACConfig, SACLearner
from autotelic.learners.scorer import Scorer, Scores
from autotelic.learners.split import ActivationCache
from autotelic.learners.tiny import tiny_model
from autotelic.runtime.commands.cli import app
from autotelic.runtime.commands.offline import checkpoint_learner
from autotelic.runtime.config import deep_merge, load_settings
from autotelic.runtime.loop.agent import Agent
from tests.learners_fixtures import (
    one_torch_thread,
    playground_observations,
    playground_states,
    tiny,
    transition_batch,
)
from tests.runtime_fixtures import TINY_SERVICE
from tests.test_runtime_throughput import bench_module

__all__ = ["one_torch_thread"]

ATOL = 1e-5
"""Cached rows computed in another batch (acting on a few states, an update on many)
differ from a recomputation in the last bits of float32 at most; measured 0 to 6e-7."""


def config(**overrides: object) -> SACConfig:
    base: dict[str, object] = {"critic_hidden": (32, 32), "critic_warmup_updates": 0}
    return SACConfig.model_validate(base | overrides)


def perturb(model: PolicyModel, seed: int = 0) -> None:
    """Move every trained weight (LoRA B starts at zero), so the top layers matter."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, param in model.trainable_parameters():
            param.add_(torch.randn(param.shape, generator=gen) * 0.1)


def both_ways(
    scorer: Scorer, prompts: list[str], candidates: list[list[str]]
) -> tuple[Scores, Scores]:
    """The split (cached where the cache holds the state) and the model's own forward."""
    with torch.no_grad():
        split = scorer.score(prompts, candidates)
        scorer.split_frozen = False
        whole = scorer.score(prompts, candidates)
        scorer.split_frozen = True
    return split, whole


def batch(num: int = 8, seed: int = 0) -> TransitionBatch:
    goals, observations, candidates = playground_observations(num + 2, seed=seed)
    terminated = [i % 3 == 1 for i in range(num)]
    return transition_batch(
        goals[:num],
        observations[:num],
        candidates[:num],
        [i % len(candidates[i]) for i in range(num)],
        [float(t) for t in terminated],
        [0.99] * num,
        observations[2 : num + 2],
        [[] if t else c for t, c in zip(terminated, candidates[2 : num + 2], strict=True)],
        terminated,
    )


# ---------------------------------------------------------------- what trains


@pytest.mark.parametrize("finetune", ["lora", "full"])
def test_only_the_layers_above_the_frozen_ones_train(finetune: str) -> None:
    model = tiny("tiny-words", finetune=finetune, frozen_layers=1)
    names = [name for name, _ in model.trainable_parameters()]
    assert names and all(
        "layers.1." in n or n.endswith(("norm.weight", "lm_head.weight")) for n in names
    )
    assert not any("layers.0." in n or "embed_tokens" in n for n in names)
    everything = tiny("tiny-words", finetune=finetune)
    assert len(names) < len(everything.trainable_parameters())


def test_frozen_layers_refuses_models_it_cannot_split() -> None:
    with pytest.raises(ModelError, match="at least one"):
        tiny("tiny-words", frozen_layers=2)  # two layers: none would train
    with pytest.raises(ModelError, match="Llama-shaped"):
        tiny("tiny-seq2seq", frozen_layers=1)
    with pytest.raises(ModelError, match="Llama-shaped"):
        tiny("tiny-gpt2", frozen_layers=1)


def test_auto_freezes_all_but_the_top_layers_of_a_large_model_on_the_cpu(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``frozen_layers: auto`` (the default): the top AUTO_TRAINED_LAYERS train on a CPU for
    a model of 50M parameters or more that the split runs; 0 everywhere else."""
    assert ModelConfig().frozen_layers == "auto"
    cpu, large = torch.device("cpu"), 135_000_000
    llama, _ = tiny_model("tiny-causal")  # 2 layers
    monkeypatch.setattr(models, "AUTO_TRAINED_LAYERS", 1)

    def resolve(device: torch.device = cpu, size: int = large, **config: object) -> int:
        return models.resolve_frozen_layers(ModelConfig(**config), llama, device, size)[0]

    assert resolve() == 1  # the top layer trains, the lower one is frozen and cached
    assert resolve(frozen_layers=0) == 0  # a configured count is kept
    assert resolve(torch.device("cuda")) == 0  # a GPU trains the whole model
    assert resolve(size=1_000_000) == 0  # tiny models train every layer
    assert resolve(finetune="frozen") == 0
    gpt2, _ = tiny_model("tiny-gpt2")
    assert models.resolve_frozen_layers(ModelConfig(), gpt2, cpu, large)[0] == 0
    monkeypatch.setattr(models, "AUTO_TRAINED_LAYERS", 2)
    assert resolve() == 0  # no layer would be left frozen
    # Loaded: the policy's config holds the decided count; tiny models resolve to 0.
    loaded = tiny("tiny-words")
    assert loaded.config.frozen_layers == 0 and loaded.activations is None
    with pytest.raises(ValueError, match="0 or more"):
        ModelConfig(frozen_layers=-1)


# ---------------------------------------------------------------- the same numbers


@pytest.mark.parametrize("name", ["tiny-words", "tiny-causal"])
@pytest.mark.parametrize("cache_mib", [0, 16])
@pytest.mark.parametrize("side", ["right", "left"])
def test_the_split_forward_scores_as_the_models_own_forward(
    name: str, cache_mib: int, side: str
) -> None:
    model = tiny(name, frozen_layers=1, activation_cache_mib=cache_mib)
    perturb(model)
    scorer = Scorer(model, padding_side=side)  # type: ignore[arg-type]
    prompts, candidates = playground_states(6, seed=1)
    split, whole = both_ways(scorer, prompts, candidates)
    assert torch.equal(split.log_pi, whole.log_pi)  # same batch: bitwise
    assert torch.equal(split.features, whole.features)
    assert torch.equal(split.state_features, whole.state_features)
    if cache_mib:
        assert model.activations is not None and len(model.activations) == 6
        again, _ = both_ways(scorer, prompts, candidates)  # every state read from the cache
        assert model.activations.stats.hits == 6
        torch.testing.assert_close(again.log_pi, whole.log_pi, rtol=0.0, atol=ATOL)
        torch.testing.assert_close(again.features, whole.features, rtol=0.0, atol=ATOL)
    else:
        assert model.activations is None


def test_rows_cached_while_acting_in_small_batches_serve_a_larger_one() -> None:
    """The collector acts on a few states at a time under inference mode; an update reads
    them in a batch of another width and composition, some new: the scores stay those of
    the full recomputation, and only the new states are computed."""
    model = tiny("tiny-words", frozen_layers=1)
    perturb(model)
    prompts, candidates = playground_states(9, seed=2)
    acting = Scorer(model).fork()
    for start in (0, 3):  # the first six states, three at a time
        with torch.inference_mode():
            acting.score(prompts[start : start + 3], candidates[start : start + 3])
    learner_scorer = Scorer(model)
    assert model.activations is not None
    hits = model.activations.stats.hits
    split, whole = both_ways(learner_scorer, prompts[::-1], candidates[::-1])
    assert model.activations.stats.hits - hits == 6 and len(model.activations) == 9
    torch.testing.assert_close(split.log_pi, whole.log_pi, rtol=0.0, atol=ATOL)
    torch.testing.assert_close(split.features, whole.features, rtol=0.0, atol=ATOL)
    # Cached rows acted on under inference mode carry gradients into the top layers.
    scores = learner_scorer.score(prompts, candidates)
    scores.log_pi.sum().backward()  # type: ignore[no-untyped-call]
    assert all(p.grad is not None for _, p in model.trainable_parameters())


def test_sac_updates_with_cached_activations_equal_the_full_recomputation() -> None:
    """Two learners on the same model weights and batches, one reading the frozen layers
    from the cache filled by acting, the other recomputing every layer in each pass: the
    same losses and the same trained weights after three updates."""
    cheap = SACLearner(tiny("tiny-words", frozen_layers=1), config())
    full = SACLearner(tiny("tiny-words", frozen_layers=1), config())
    full.scorer.split_frozen = False
    for step in range(3):
        data = batch(seed=step)
        live = [i for i, c in enumerate(data.next_candidates) if c]
        with torch.inference_mode():  # what the collector computed when it acted
            cheap.policy.scorer.score(
                [
                    cheap.prompt(g, o, c)
                    for g, o, c in zip(data.goals, data.observations, data.candidates, strict=True)
                ],
                data.candidates,
            )
            cheap.policy.scorer.score(
                [
                    cheap.prompt(data.goals[i], data.next_observations[i], data.next_candidates[i])
                    for i in live
                ],
                [data.next_candidates[i] for i in live],
            )
        a, b = cheap.update(data), full.update(data)
        for key in ("critic_loss", "actor_loss", "target_mean", "entropy", "log_pi_taken"):
            assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-6), key
    assert cheap.policy_version == full.policy_version == 3
    for p, q in zip(cheap.llm_params, full.llm_params, strict=True):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-6)
    assert cheap.model.activations is not None and cheap.model.activations.stats.hits > 0


# ---------------------------------------------------------------- the cache itself


def test_the_cache_is_bounded_in_bytes_and_drops_the_least_recently_used() -> None:
    row = torch.zeros(10, 4)  # 160 bytes
    cache = ActivationCache(max_bytes=400)
    keys = [((i,), ((i + 1,),)) for i in range(3)]
    cache.put(keys[0], row)
    cache.put(keys[1], row.clone())
    assert cache.get([keys[0]])[0] is row  # now the most recently used
    cache.put(keys[2], row.clone())
    assert cache.nbytes == 320 and len(cache) == 2
    assert cache.get(keys) == [row, None, cache.get([keys[2]])[0]]
    assert cache.stats.evicted == 1
    cache.put(((9,), ()), torch.zeros(100, 4))  # larger than the whole cache: not kept
    assert len(cache) == 2 and cache.nbytes <= cache.max_bytes


def test_a_restart_rebuilds_the_cache_and_scores_as_before(tmp_path: Path) -> None:
    trained = SACLearner(tiny("tiny-words", frozen_layers=1), config(actor_lr=1e-2))
    for step in range(2):
        trained.update(batch(seed=step))
    prompts, candidates = playground_states(5, seed=4)
    with torch.no_grad():
        before = trained.scorer.score(prompts, candidates)
    path = tmp_path / "learner.pt"
    torch.save(trained.state_dict(), path)
    resumed = SACLearner(tiny("tiny-words", frozen_layers=1), config(actor_lr=1e-2))
    resumed.load_state_dict(torch.load(path, weights_only=False))
    cache = resumed.model.activations
    assert cache is not None and len(cache) == 0  # not kept across the restart
    split, whole = both_ways(resumed.scorer, prompts, candidates)
    assert len(cache) == 5 and cache.stats.misses == 5  # rebuilt as states recur
    torch.testing.assert_close(split.log_pi, before.log_pi, rtol=0.0, atol=ATOL)
    torch.testing.assert_close(split.log_pi, whole.log_pi, rtol=0.0, atol=ATOL)
    resumed.update(batch(seed=7))
    assert resumed.num_updates == 3
    # A checkpoint says which layers it trained: another count is refused by name.
    every_layer = SACLearner(tiny("tiny-words"), config(actor_lr=1e-2))
    with pytest.raises(CheckpointError, match="frozen_layers 1"):
        every_layer.load_state_dict(torch.load(path, weights_only=False))


# ---------------------------------------------------------------- service, checkpoint, export


def test_a_partially_trained_run_resumes_and_exports_a_plain_hugging_face_folder(
    tmp_path: Path,
) -> None:
    run = tmp_path / "run"
    extra = {
        "model": {"path": "tiny-words", "frozen_layers": 1},
        "algorithm": {"critic_warmup_updates": 0, "actor_lr": 1e-2},
        "run": {"dir": str(run), "mode": "serial", "max_env_steps": 64},
        "eval": {"enabled": False},
    }
    agent = Agent(load_settings(None, **deep_merge(TINY_SERVICE, extra)))
    agent.run_serial()
    agent.close()
    _, first, _ = checkpoint_learner(run)
    assert isinstance(first, LLMLearner) and first.policy_version > 0
    # Resumed with a larger budget: the run continues from its checkpoint (its trained
    # weights, counters; an empty cache, rebuilt as states recur) and goes on learning.
    more = deep_merge(extra, {"run": {"max_env_steps": 128}})
    agent = Agent(load_settings(None, **deep_merge(TINY_SERVICE, more)))
    resumed = agent.learner
    assert isinstance(resumed, LLMLearner)
    assert resumed.policy_version == first.policy_version
    for (name, param), (_, saved) in zip(
        resumed.model.trainable_parameters(), first.model.trainable_parameters(), strict=True
    ):
        torch.testing.assert_close(param, saved, rtol=0, atol=0, msg=name)
    assert agent.collector.env_steps == 64
    agent.run_serial()
    assert agent.collector.env_steps >= 128
    cache = resumed.model.activations
    assert cache is not None and len(cache) > 0
    agent.close()
    _, learner, _ = checkpoint_learner(run)
    assert isinstance(learner, LLMLearner) and learner.policy_version > first.policy_version
    assert learner.model.config.frozen_layers == 1
    assert all("layers.1." in n for n, _ in learner.model.trainable_parameters())
    prompts, candidates = playground_states(4, seed=3)
    with torch.no_grad():
        expected = Scorer(learner.model).score(prompts, candidates).log_pi
    # `auto` decides by the device, and export runs on the CPU: it loads the count the
    # run's checkpoint trained with, whatever auto would decide here (0 for a tiny model).
    recorded = run / "config.yaml"
    text = recorded.read_text()
    assert "frozen_layers: 1" in text
    recorded.write_text(text.replace("frozen_layers: 1", "frozen_layers: auto"))
    out = tmp_path / "exported"
    result = CliRunner().invoke(app, ["export", "--run", str(run), "--out", str(out)])
    assert result.exit_code == 0, result.output
    exported = tiny(str(out), finetune="frozen")  # every layer from the merged weights
    with torch.no_grad():
        got = Scorer(exported).score(prompts, candidates).log_pi
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
    # transformers alone loads it: autotelic and peft cannot be imported in that process.
    plain = (
        "import sys; sys.modules['autotelic'] = None; sys.modules['peft'] = None\n"
        "from transformers import AutoModelForCausalLM, AutoTokenizer\n"
        f"m = AutoModelForCausalLM.from_pretrained({str(out)!r})\n"
        f"t = AutoTokenizer.from_pretrained({str(out)!r})\n"
        "assert not any('lora' in n for n, _ in m.named_parameters())\n"
        f"print(m(**t({prompts[0]!r}, return_tensors='pt')).logits.shape[-1])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", plain], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert int(done.stdout.split()[-1]) == len(exported.tokenizer)


def test_the_throughput_benchmark_names_frozen_variants(tmp_path: Path) -> None:
    """``bench/throughput.py`` compares the service before and after: a variant's name sets
    frozen_layers and the bf16 head, and the service's settings accept them."""
    from autotelic.runtime.config import load_settings

    throughput = bench_module("throughput")
    base = {"model": {"path": "tiny-words"}}
    plain = throughput.variant_overrides(base, "concurrent-fp32", tmp_path / "a")
    cheap = throughput.variant_overrides(base, "concurrent-fp32-frozen1-bf16head", tmp_path / "b")
    assert "frozen_layers" not in plain["model"]
    model = load_settings(None, **cheap).model
    assert (model.path, model.frozen_layers, model.lm_head_autocast) == ("tiny-words", 1, True)
    with pytest.raises(argparse.ArgumentTypeError):
        throughput.variant_name("concurrent-bf16-top2")


# ---------------------------------------------------------------- SmolLM2


@pytest.mark.slow  # SmolLM2-135M: two models, three updates each of 8 transitions, ~1-2 min
def test_smollm2_top_layers_cached_update_equals_the_full_recomputation() -> None:
    """The real model: frozen_layers 28 (the top 2 of 30 train), bf16 autocast as on this
    CPU. The cached path against the model's own forward over every layer, same weights
    and batches: the same losses and weights after three updates, and the same scores."""
    default = tiny("smollm2")  # frozen_layers: auto on the CPU is this test's setting
    assert default.config.frozen_layers == 28 and default.activations is not None
    del default
    learners = [SACLearner(tiny("smollm2", frozen_layers=28), config()) for _ in range(2)]
    cheap, full = learners
    full.scorer.split_frozen = False
    start = [p.detach().clone() for p in cheap.llm_params]
    for step in range(3):
        data = batch(seed=step)
        with torch.inference_mode():
            cheap.policy.scorer.score(
                [
                    cheap.prompt(g, o, c)
                    for g, o, c in zip(data.goals, data.observations, data.candidates, strict=True)
                ],
                data.candidates,
            )
        a, b = cheap.update(data), full.update(data)
        for key in ("critic_loss", "actor_loss", "target_mean", "entropy", "log_pi_taken"):
            assert a[key] == pytest.approx(b[key], rel=1e-3, abs=1e-4), key
    # Adam moves every weight by about lr per update whatever its gradient's size, so a
    # last-bit difference in a near-zero gradient can flip a step: compare the weights'
    # difference with how far they moved (measured: 11 of 9216 entries of one adapter
    # matrix differed, by at most 1.9e-4, about 2 lr).
    moved = torch.cat([(p - p0).flatten() for p, p0 in zip(cheap.llm_params, start, strict=True)])
    apart = torch.cat(
        [(p - q).flatten() for p, q in zip(cheap.llm_params, full.llm_params, strict=True)]
    )
    assert float(moved.norm()) > 0
    assert float(apart.norm()) < 0.05 * float(moved.norm())
    assert float(apart.abs().max()) <= 3 * 2 * config().actor_lr
    prompts, candidates = playground_states(8, seed=9)
    split, whole = both_ways(cheap.scorer, prompts, candidates)
    torch.testing.assert_close(split.log_pi, whole.log_pi, rtol=0, atol=1e-3)
    torch.testing.assert_close(split.features, whole.features, rtol=0, atol=1e-3)
