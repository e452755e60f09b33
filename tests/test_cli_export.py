"""``autotelic export``: the run's policy as a plain Hugging Face folder, loadable again."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast
from typer.testing import CliRunner

from autotelic.learners.base import LLMLearner
from autotelic.learners.model_config import EXPORT_INFO
from autotelic.learners.models import ModelConfig, PolicyModel, load_model
from autotelic.learners.scorer import Scorer
from autotelic.runtime.commands.cli import app
from autotelic.runtime.commands.offline import checkpoint_learner
from autotelic.runtime.config import deep_merge, load_settings
from autotelic.runtime.loop.agent import Agent
from tests.learners_fixtures import playground_observations, playground_states
from tests.runtime_fixtures import TINY_SERVICE


@pytest.fixture(scope="module", params=["full", "lora"])
def run_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A short serial run of the word-level tiny model that trained a little and ended
    with a checkpoint, under the fine-tuning mode the parameter names."""
    run = tmp_path_factory.mktemp(f"export-{request.param}") / "run"
    extra = {
        "model": {"path": "tiny-words", "finetune": request.param},
        # The LLM trains from the first update, fast enough to move its scores visibly.
        "algorithm": {"critic_warmup_updates": 0, "actor_lr": 1e-2},
        "run": {"dir": str(run), "mode": "serial", "max_env_steps": 64},
        "eval": {"enabled": False},
    }
    agent = Agent(load_settings(None, **deep_merge(TINY_SERVICE, extra)))
    agent.run_serial()
    agent.close()
    return run


def run_policy(run_dir: Path) -> PolicyModel:
    _, learner, _ = checkpoint_learner(run_dir)
    assert isinstance(learner, LLMLearner) and learner.policy_version > 0
    return learner.model


def log_pi(model: PolicyModel) -> torch.Tensor:
    prompts, candidates = playground_states(4, seed=3)
    with torch.no_grad():
        return Scorer(model).score(prompts, candidates).log_pi


def export(run_dir: Path, out: Path) -> dict[str, object]:
    result = CliRunner().invoke(app, ["export", "--run", str(run_dir), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert f"model.path: {out}" in result.stdout
    info: dict[str, object] = json.loads((out / EXPORT_INFO).read_text())
    return info


def test_the_export_scores_candidates_as_the_run_policy_does(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "exported"
    info = export(run_dir, out)
    settings = info["model_settings"]
    assert isinstance(settings, dict) and settings["candidate_score"] == "mean"
    exported = load_model(
        ModelConfig(
            path=str(out),
            finetune="frozen",
            candidate_score=settings["candidate_score"],
            list_actions=settings["list_actions"],
        )
    )
    policy = run_policy(run_dir)
    expected = log_pi(policy)
    torch.testing.assert_close(log_pi(exported), expected, rtol=0, atol=1e-5)
    untrained = load_model(load_settings(run_dir / "config.yaml").model)
    assert (log_pi(untrained) - expected).abs().max() > 1e-4  # the comparison is not vacuous


def test_the_export_is_plain_transformers_weights_and_the_word_tokenizer(
    run_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "exported"
    export(run_dir, out)
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in out.iterdir()}
    assert not (out / "adapter_config.json").exists()
    with safe_open(str(out / "model.safetensors"), "pt") as weights:
        assert not [k for k in weights.keys() if "lora" in k]  # noqa: SIM118 - not a dict
    plain = AutoModelForCausalLM.from_pretrained(out, local_files_only=True)
    assert type(plain).__name__ == "LlamaForCausalLM"  # transformers alone, no peft wrapper
    exported = load_model(ModelConfig(path=str(out), finetune="frozen"))
    assert isinstance(exported.tokenizer, PreTrainedTokenizerFast)
    goals, observations, actions = playground_observations(3)
    texts = goals + observations + [a for row in actions for a in row] + ["an unknown word"]
    original = run_policy(run_dir).tokenizer
    assert exported.tokenizer(texts)["input_ids"] == original(texts)["input_ids"]
    assert len(exported.tokenizer) == len(original)


def test_export_refuses_a_folder_that_holds_files(run_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    result = CliRunner().invoke(app, ["export", "--run", str(run_dir), "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "not empty" in result.output
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_export_checks_the_folder_before_loading_anything(tmp_path: Path) -> None:
    """A folder in the way is refused first: here the run does not even exist, and the
    answer is still about the folder."""
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("mine")
    missing_run = tmp_path / "no-run"
    out = str(tmp_path / "taken")
    result = CliRunner().invoke(app, ["export", "--run", str(missing_run), "--out", out])
    assert result.exit_code == 2
    assert "export folder" in result.output and "not empty" in result.output


def test_the_export_records_the_prompt_the_policy_read_and_has_ordinary_permissions(
    run_dir: Path, tmp_path: Path
) -> None:
    """The format, filled in, is the prompt the policy scored: with the ``Steps left: k``
    line of the run's (default, observed) time limit. The folder is made as any folder
    the user makes (0755 under umask 022), not owner-only."""
    from autotelic.core.time_limit import with_steps_left
    from autotelic.learners.prompt import build_prompt

    previous = os.umask(0o022)
    try:
        out = tmp_path / "exported"
        info = export(run_dir, out)
    finally:
        os.umask(previous)
    assert stat.S_IMODE(out.stat().st_mode) == 0o755
    assert info["time_limit"] == "observed"
    seen = with_steps_left("You see: cow\nYou are standing on: nothing", steps=3, horizon=10)
    prompt = info["prompt"]
    assert isinstance(prompt, str)
    filled = prompt.format(
        goal="Grasp cow",
        observation="You see: cow\nYou are standing on: nothing",
        steps_left=7,
        actions="Go to cow, Grasp",
    )
    assert filled == build_prompt("Grasp cow", seen)
    assert "Steps left: 7" in filled


@pytest.mark.slow  # SmolLM2-135M with LoRA, exported and loaded again: about half a minute
def test_smollm2_with_lora_exports_to_the_same_scores(tmp_path: Path) -> None:
    from autotelic.learners.export import export_policy
    from tests.learners_fixtures import perturb_adapters

    config = ModelConfig(path="smollm2", finetune="lora", autocast="off")
    policy = load_model(config)
    perturb_adapters(policy, scale=0.05)
    out = export_policy(policy, tmp_path / "smollm2-export", {"test": True})
    exported = load_model(ModelConfig(path=str(out), finetune="frozen", autocast="off"))
    expected = log_pi(policy)
    torch.testing.assert_close(log_pi(exported), expected, rtol=0, atol=1e-4)
    base = load_model(ModelConfig(path="smollm2", finetune="frozen", autocast="off"))
    assert (log_pi(base) - expected).abs().max() > 1e-3  # the adapters were merged, not lost


def test_an_exported_policy_scores_as_it_was_trained_under_the_default_score(
    tmp_path: Path,
) -> None:
    """``candidate_score: auto`` reads the export's autotelic.json: a tiny model trained
    under the per-token mean is scored by the mean again, not by the sum of a folder."""
    from autotelic.learners.model_config import ModelConfig
    from autotelic.learners.models import load_model

    folder = tmp_path / "policy"
    folder.mkdir()
    (folder / EXPORT_INFO).write_text(json.dumps({"model_settings": {"candidate_score": "mean"}}))
    tiny = load_model(ModelConfig(path="tiny-words", finetune="frozen"))
    tiny.hf.save_pretrained(folder)
    tiny.tokenizer.save_pretrained(folder)
    assert load_model(ModelConfig(path=str(folder), finetune="frozen")).candidate_score == "mean"
    (folder / EXPORT_INFO).unlink()
    assert load_model(ModelConfig(path=str(folder), finetune="frozen")).candidate_score == "sum"
