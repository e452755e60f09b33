"""A trained policy as a plain Hugging Face model folder (``autotelic export``).

What leaves is what transformers alone loads: ``config.json``, safetensors weights and
the tokenizer, with LoRA adapters merged into the base weights, so neither autotelic
nor peft is needed to use it. ``autotelic.json`` beside them says how the policy read
its input (the prompt format, how candidates were scored), because the same weights
score actions differently under another prompt or another candidate score.
"""

from __future__ import annotations

import copy
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from torch import nn
from transformers import PreTrainedModel

from autotelic.learners.model_config import EXPORT_INFO
from autotelic.learners.models import ModelError, PolicyModel, resolve_candidate_score
from autotelic.learners.prompt import ACTIONS_PREFIX, PROMPT_SUFFIX, candidate_text

"""The file of an exported folder that records the prompt format and the run it came from."""


def merged_model(module: nn.Module) -> PreTrainedModel:
    """A copy of ``module`` as a transformers model: LoRA adapters folded into the weights
    they adapt (a copy, so the policy that acts keeps its adapters)."""
    merge = getattr(module, "merge_and_unload", None)
    if not callable(merge):
        if not isinstance(module, PreTrainedModel):
            raise TypeError(f"expected a transformers or peft model, got {type(module).__name__}")
        return copy.deepcopy(module)
    plain = getattr(copy.deepcopy(module), "merge_and_unload")()  # noqa: B009 - peft, untyped
    if not isinstance(plain, PreTrainedModel):
        raise TypeError(f"merging LoRA gave {type(plain).__name__}, not a transformers model")
    return plain


def prompt_format(model: PolicyModel) -> dict[str, Any]:
    """How the policy's input was built, and the ``model:`` settings that score as it did."""
    return {
        "prompt": "Goal: {goal}\n{observation}\n"
        + (f"{ACTIONS_PREFIX}{{actions}}\n" if model.config.list_actions else "")
        + PROMPT_SUFFIX,
        "candidate": candidate_text("{action}"),
        "model_settings": {
            "candidate_score": resolve_candidate_score(model.config),
            "list_actions": model.config.list_actions,
            "kind": model.kind,
        },
    }


def export_policy(model: PolicyModel, out: Path, source: dict[str, Any]) -> Path:
    """Write ``model`` (merged) with its tokenizer and :data:`EXPORT_INFO` to ``out``.

    Written into a sibling folder first and renamed, so ``out`` is either absent or
    whole; an ``out`` that already holds files is refused rather than mixed into.
    """
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ModelError(f"export folder {out} already exists and is not empty; pick another")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        merged_model(model.module).save_pretrained(staging, safe_serialization=True)
        model.tokenizer.save_pretrained(staging)
        info = {**prompt_format(model), "source": source}
        (staging / EXPORT_INFO).write_text(json.dumps(info, indent=2) + "\n")
        if out.exists():
            out.rmdir()
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out
