"""``model.path: org/name``: a Hugging Face id resolved from the local cache, offline."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from autotelic.learners.models import ModelConfig, ModelError, load_model, resolve_model_dir
from autotelic.learners.scorer import Scorer
from tests.learners_fixtures import playground_states, tiny

REPO = "SomeOrg/tiny-model"
REVISION = "0123456789abcdef0123456789abcdef01234567"


def fake_hub_cache(root: Path) -> Path:
    """A Hugging Face cache holding REPO: ``refs/main`` naming a snapshot that
    ``save_pretrained`` wrote (the layout the hub's downloads leave behind)."""
    entry = root / f"models--{REPO.replace('/', '--')}"
    snapshot = entry / "snapshots" / REVISION
    model = tiny("tiny-words", finetune="frozen")
    model.hf.save_pretrained(snapshot)
    model.tokenizer.save_pretrained(snapshot)
    (entry / "refs").mkdir(parents=True)
    (entry / "refs" / "main").write_text(REVISION)
    return snapshot


def test_an_id_in_the_cache_loads_the_same_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    snapshot = fake_hub_cache(tmp_path / "hub")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.chdir(tmp_path)  # no local folder of that name
    config = ModelConfig(path=REPO, finetune="frozen", candidate_score="mean")
    assert resolve_model_dir(config) == snapshot
    loaded = load_model(config)
    original = tiny("tiny-words", finetune="frozen")
    prompts, candidates = playground_states(3)
    with torch.no_grad():
        expected = Scorer(original).score(prompts, candidates).log_pi
        got = Scorer(loaded).score(prompts, candidates).log_pi
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)


def test_hf_home_is_read_when_hf_hub_cache_is_unset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    snapshot = fake_hub_cache(tmp_path / "home" / "hub")
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    assert resolve_model_dir(ModelConfig(path=REPO)) == snapshot


def test_a_local_folder_of_the_same_name_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_hub_cache(tmp_path / "hub")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.chdir(tmp_path)
    local = tmp_path / REPO
    local.mkdir(parents=True)
    (local / "config.json").write_text("{}")
    assert resolve_model_dir(ModelConfig(path=REPO)).resolve() == local.resolve()


def test_a_missing_id_is_one_line_naming_where_it_looked_and_how_to_get_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelError) as caught:
        resolve_model_dir(ModelConfig(path="HuggingFaceTB/SmolLM2-135M-Instruct"))
    message = str(caught.value)
    assert "\n" not in message
    assert str(tmp_path / "empty" / "models--HuggingFaceTB--SmolLM2-135M-Instruct") in message
    assert "hf download HuggingFaceTB/SmolLM2-135M-Instruct" in message


def test_a_path_that_is_neither_folder_nor_id_still_says_what_is_accepted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelError, match="not a Hugging Face model folder"):
        resolve_model_dir(ModelConfig(path=str(tmp_path / "a" / "b" / "c")))
