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
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from torch import nn
from transformers import PreTrainedModel

from autotelic.core.time_limit import DEFAULT_TIME_LIMIT, STEPS_LEFT_LINE, TimeLimit
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


def prompt_format(model: PolicyModel, time_limit: TimeLimit = DEFAULT_TIME_LIMIT) -> dict[str, Any]:
    """How the policy's input was built, and the ``model:`` settings that score as it did.

    Under the ``observed`` time limit the policy read a last observation line
    ``Steps left: k`` (k counting down to 0 at the goal's horizon): the format shows it,
    since the same weights act differently without it."""
    steps_left = f"{STEPS_LEFT_LINE}{{steps_left}}\n" if time_limit == "observed" else ""
    return {
        "prompt": "Goal: {goal}\n{observation}\n"
        + steps_left
        + (f"{ACTIONS_PREFIX}{{actions}}\n" if model.config.list_actions else "")
        + PROMPT_SUFFIX,
        "time_limit": time_limit,
        "candidate": candidate_text("{action}"),
        "model_settings": {
            "candidate_score": resolve_candidate_score(model.config),
            "list_actions": model.config.list_actions,
            "kind": model.kind,
        },
    }


def check_export_folder(out: Path) -> None:
    """Refuse an ``out`` that already holds files (or is a file), or whose parent cannot
    be written: called before the checkpoint and the model load, so the answer comes at
    once rather than after the load."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ModelError(f"export folder {out} already exists and is not empty; pick another")
    parent = out.absolute().parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise ModelError(f"cannot write the export folder {out}: {parent} is not writable")


def export_policy(
    model: PolicyModel,
    out: Path,
    source: dict[str, Any],
    time_limit: TimeLimit = DEFAULT_TIME_LIMIT,
) -> Path:
    """Write ``model`` (merged) with its tokenizer and :data:`EXPORT_INFO` to ``out``.

    Written into a sibling folder first and renamed, so ``out`` is either absent or
    whole; an ``out`` that already holds files is refused rather than mixed into. The
    folder gets the permissions of any folder the user makes (the umask's), not the
    owner-only ones of a scratch folder.
    """
    check_export_folder(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        staging.chmod(0o777 & ~_umask())
        merged_model(model.module).save_pretrained(staging, safe_serialization=True)
        model.tokenizer.save_pretrained(staging)
        info = {**prompt_format(model, time_limit), "source": source}
        (staging / EXPORT_INFO).write_text(json.dumps(info, indent=2) + "\n")
        if out.exists():
            out.rmdir()
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out


def _umask() -> int:
    """The process's umask (read by setting it, then setting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
