"""Loading the policy LLM: configuration, LoRA or full fine-tuning, device and dtype.

Any local Hugging Face model folder loads through transformers' Auto classes
(decoder-only or encoder-decoder); ``"smollm2"`` names the packaged pretrained
model and ``"tiny-*"`` tiny random ones. Nothing is ever downloaded.

The model is kept in eval mode for its whole life: dropout would make the
log-probabilities the collector records differ from those the learner
recomputes (PPO's ratio would not start at 1) and the collector and the learner
share the one model object from different threads, so a train/eval switch by
one would change what the other computes.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator
from torch import nn
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from autotelic.learners.cache import build_atomically, default_cache_dir
from autotelic.learners.packaged import convert_smollm2, smollm2_entry_name, smollm2_gguf

ModelKind = Literal["causal", "seq2seq"]
Finetune = Literal["lora", "full", "frozen"]
DTypeName = Literal["float32", "bfloat16", "float16"]
TinyName = Literal["tiny-causal", "tiny-gpt2", "tiny-seq2seq"]
TINY_NAMES: tuple[TinyName, ...] = ("tiny-causal", "tiny-gpt2", "tiny-seq2seq")
"""Tiny random models (:mod:`autotelic.testing.tiny_models`) for tests and dry runs."""

PACKAGED = "smollm2"

_DTYPES: dict[DTypeName, torch.dtype] = {
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}


class ModelError(ValueError):
    """A model configuration that cannot be loaded as asked."""


class ModelConfig(BaseModel):
    """Which LLM the agent uses and how it is adapted."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = Field(
        default=PACKAGED,
        description=(
            "A local Hugging Face model folder, or 'smollm2' (the packaged "
            "SmolLM2-135M-Instruct), or 'tiny-causal' / 'tiny-gpt2' / 'tiny-seq2seq' "
            "(tiny random models for tests and dry runs)."
        ),
    )
    kind: Literal["auto", "causal", "seq2seq"] = Field(
        default="auto",
        description=(
            "Decoder-only ('causal') or encoder-decoder ('seq2seq'); 'auto' reads it from "
            "the model's config (is_encoder_decoder)."
        ),
    )
    device: str = Field(default="cpu", description="torch device: 'cpu', 'cuda' or 'cuda:N'.")
    dtype: DTypeName = Field(
        default="float32",
        description="Weights and activations dtype; bfloat16 on GPUs that support it.",
    )
    finetune: Finetune = Field(
        default="lora",
        description=(
            "'lora': train LoRA adapters on a frozen base; 'full': train every weight; "
            "'frozen': train nothing in the LLM (only the heads learn)."
        ),
    )
    lora_r: int = Field(default=16, gt=0, description="LoRA rank.")
    lora_alpha: int = Field(default=32, gt=0, description="LoRA scaling numerator (alpha / r).")
    lora_dropout: float = Field(
        default=0.0,
        ge=0.0,
        lt=1.0,
        description=(
            "LoRA dropout. Only active if a caller puts the model in train mode; the "
            "learners keep it in eval mode, so this is normally without effect."
        ),
    )
    lora_target_modules: list[str] | None = Field(
        default=None,
        description=(
            "Module names that get LoRA adapters; None uses peft's per-architecture "
            "default (attention q/v projections: q_proj+v_proj for Llama/Qwen/SmolLM, "
            "c_attn for GPT-2, q+v for T5)."
        ),
    )
    attn_implementation: Literal["sdpa", "eager"] | None = Field(
        default=None, description="Attention kernel; None keeps transformers' default."
    )
    cache_dir: Path = Field(
        default_factory=default_cache_dir,
        description=(
            "Where converted models are kept (the packaged GGUF becomes safetensors "
            "here once); defaults to $AUTOTELIC_CACHE or ~/.cache/autotelic."
        ),
    )
    seed: int = Field(
        default=0, description="Initialisation seed of tiny random models (and LoRA init)."
    )

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        try:
            torch.device(value)
        except RuntimeError as exc:
            raise ValueError(f"unknown torch device {value!r}") from exc
        return value

    @property
    def torch_dtype(self) -> torch.dtype:
        return _DTYPES[self.dtype]


@dataclass
class PolicyModel:
    """A loaded LLM ready for scoring: the module, its tokenizer and what it is."""

    module: nn.Module
    """What to call and optimise: a peft model under LoRA, else the transformers model."""
    tokenizer: PreTrainedTokenizerBase
    kind: ModelKind
    config: ModelConfig

    @property
    def hf(self) -> PreTrainedModel:
        """The transformers model (with LoRA layers injected when LoRA is on)."""
        return hf_model(self.module)

    @property
    def device(self) -> torch.device:
        return next(self.module.parameters()).device

    @property
    def hidden_size(self) -> int:
        return int(self.hf.config.hidden_size)

    def trainable_parameters(self) -> list[tuple[str, nn.Parameter]]:
        """The LLM weights the learner optimises (LoRA matrices, all, or none)."""
        return [(n, p) for n, p in self.module.named_parameters() if p.requires_grad]


def hf_model(module: nn.Module) -> PreTrainedModel:
    """The transformers model inside ``module`` (a peft wrapper or the model itself)."""
    get_base = getattr(module, "get_base_model", None)
    inner = get_base() if callable(get_base) else module
    if not isinstance(inner, PreTrainedModel):
        raise TypeError(f"expected a transformers model, got {type(inner).__name__}")
    return inner


def load_model(config: ModelConfig) -> PolicyModel:
    """Load (or build) the model ``config`` names, place it, and set up fine-tuning."""
    device = torch.device(config.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ModelError(f"device {config.device!r} requested but CUDA is not available")
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    if config.path in TINY_NAMES:
        from autotelic.testing.tiny_models import tiny_model  # test doubles, loaded on demand

        model, tokenizer = tiny_model(config.path, seed=config.seed)
        nn.Module.to(model, dtype=config.torch_dtype)
    else:
        folder = resolve_model_dir(config)
        model, tokenizer = _load_folder(folder, config)
    if config.attn_implementation is not None:
        model.set_attn_implementation(config.attn_implementation)
    kind = _kind_of(model, config)
    # Adapters are created on the CPU first, so a seed gives the same LoRA
    # initialisation whatever the device.
    module = _adapt(model, config)
    module.to(device)
    module.eval()
    return PolicyModel(module=module, tokenizer=tokenizer, kind=kind, config=config)


def resolve_model_dir(config: ModelConfig) -> Path:
    """The local folder to load: the packaged model's cache entry, or ``config.path``."""
    if config.path == PACKAGED:
        gguf = smollm2_gguf()
        dest = config.cache_dir / smollm2_entry_name(gguf)
        return build_atomically(dest, lambda out: convert_smollm2(gguf, out))
    folder = Path(config.path).expanduser()
    if not (folder / "config.json").is_file():
        raise ModelError(
            f"model path {config.path!r} is not a Hugging Face model folder (no config.json); "
            f"use a local folder, {PACKAGED!r}, or one of {TINY_NAMES}"
        )
    return folder


def _load_folder(
    folder: Path, config: ModelConfig
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    hf_config = AutoConfig.from_pretrained(folder, local_files_only=True)
    seq2seq = _wants_seq2seq(bool(getattr(hf_config, "is_encoder_decoder", False)), config)
    auto = AutoModelForSeq2SeqLM if seq2seq else AutoModelForCausalLM
    model = auto.from_pretrained(folder, dtype=config.torch_dtype, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    return model, tokenizer


def _wants_seq2seq(is_encoder_decoder: bool, config: ModelConfig) -> bool:
    if config.kind == "auto":
        return is_encoder_decoder
    if (config.kind == "seq2seq") != is_encoder_decoder:
        actual = "encoder-decoder" if is_encoder_decoder else "decoder-only"
        raise ModelError(f"kind={config.kind!r} asked but {config.path!r} is {actual}")
    return config.kind == "seq2seq"


def _kind_of(model: PreTrainedModel, config: ModelConfig) -> ModelKind:
    seq2seq = _wants_seq2seq(bool(getattr(model.config, "is_encoder_decoder", False)), config)
    return "seq2seq" if seq2seq else "causal"


def _adapt(model: PreTrainedModel, config: ModelConfig) -> nn.Module:
    if config.finetune == "full":
        model.requires_grad_(True)
        return model
    if config.finetune == "frozen":
        model.requires_grad_(False)
        return model
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=config.lora_target_modules,
        # GPT-2 stores its projections transposed (Conv1D).
        fan_in_fan_out=model.config.model_type == "gpt2",
    )
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        # peft probes a transformers attribute that transformers 5 deprecates.
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*")
        torch.manual_seed(config.seed)
        try:
            return get_peft_model(model, lora)
        except ValueError as exc:
            raise ModelError(
                f"cannot add LoRA adapters to {type(model).__name__}: {exc}; "
                "set lora_target_modules to the names of its attention projections"
            ) from exc
