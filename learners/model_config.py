"""What the ``model:`` section says: which LLM, how it is adapted, where it runs.

Kept apart from the loader (:mod:`autotelic.learners.models`) and free of torch,
so reading a configuration (``autotelic config show``, ``inject``, ``status``)
starts in a fraction of a second.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from autotelic.core.errors import UserError
from autotelic.learners.cache import default_cache_dir

TinyName = Literal["tiny-words", "tiny-causal", "tiny-gpt2", "tiny-seq2seq"]
TINY_NAMES: tuple[TinyName, ...] = ("tiny-words", "tiny-causal", "tiny-gpt2", "tiny-seq2seq")
"""Tiny random models (:mod:`autotelic.learners.tiny`): experiments on a CPU, tests, dry runs."""
WORDS: TinyName = "tiny-words"
EXPORT_INFO = "autotelic.json"
"""The file ``autotelic export`` writes beside a policy's weights: how it read its input
(the prompt format, the candidate score), so ``candidate_score: auto`` scores as it was
trained."""

_DEVICE = re.compile(r"(cpu|cuda|mps|xpu|meta|hpu|npu|xla)(:\d+)?")

ModelKind = Literal["causal", "seq2seq"]
Finetune = Literal["lora", "full", "frozen"]
DTypeName = Literal["float32", "bfloat16", "float16"]
CandidateScore = Literal["auto", "sum", "mean"]

PACKAGED = "smollm2"
AutocastName = Literal["auto", "off", "bfloat16"]


class ModelError(UserError, ValueError):
    """A model configuration that cannot be loaded as asked."""


class ModelConfig(BaseModel):
    """Which LLM the agent uses and how it is adapted."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = Field(
        default=PACKAGED,
        description=(
            "A local Hugging Face model folder (an `autotelic export` folder too), or a "
            "Hugging Face model id 'org/name' found in the local Hugging Face cache "
            "($HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub; never "
            "downloaded, a local folder of that name wins), or 'smollm2' (the packaged "
            "SmolLM2-135M-Instruct), or 'tiny-words' (a tiny random model over a "
            "word-level tokenizer built from the environment's vocabulary: what CPU "
            "experiments use), or 'tiny-causal' / 'tiny-gpt2' / 'tiny-seq2seq' (tiny "
            "random models over a byte-level BPE, for tests and older runs)."
        ),
    )
    vocabulary: tuple[str, ...] = Field(
        default=(),
        description=(
            "For 'tiny-words': the ids of the environments whose declared vocabularies "
            "its tokenizer holds. Empty: the run's environment (every registered one "
            "when the model is loaded outside a run)."
        ),
    )
    word_vectors: Literal["trained", "fixed"] = Field(
        default="trained",
        description=(
            "For 'tiny-words': 'fixed' ties the LM head to the input embeddings and keeps "
            "both as initialised. A word that never occurs in training (a held-out object) "
            "keeps its initial vector whatever is trained; trained vectors drift away from "
            "that distribution (x4 in norm on the autotelic run, docs/results.md), fixed "
            "ones do not, so matching a goal's word to a candidate's works for any word."
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
        description=(
            "Dtype every weight is loaded in (trained ones too: no float32 master copy); "
            "prefer float32 with `autocast` for mixed precision."
        ),
    )
    autocast: AutocastName = Field(
        default="auto",
        description=(
            "Mixed precision. 'bfloat16': matrix products of the LLM in bfloat16 "
            "(torch.autocast), frozen linear weights stored in bfloat16, while trained "
            "weights, the residual stream, the LM head's log-softmax and the critic heads "
            "stay float32; log pi then differs from float32 by up to ~0.2 nats "
            "(docs/performance.md). 'off': everything in `dtype`. 'auto': bfloat16 on a CPU "
            "with native bfloat16 (avx512_bf16, AMX or Arm bf16) for models of 50M "
            "parameters or more (about 2x faster updates there), off elsewhere (no native "
            "bf16, tiny models, CUDA, or `dtype` other than float32)."
        ),
    )
    candidate_score: CandidateScore = Field(
        "auto",
        description="How a candidate action is scored: 'sum' of its tokens' log-probs (the "
        "method's definition; a pretrained model's prior), or their 'mean', which does not "
        "favour short actions (under 'sum' a randomly initialised model all but always "
        "picks the candidate with fewest tokens: initial policy entropy near 0). 'auto': "
        "'mean' for the tiny random models, 'sum' for pretrained folders.",
    )
    list_actions: bool = Field(
        False,
        description="Show the admissible actions in the prompt (a line 'Possible actions: "
        "...' before 'Action:'). A pretrained model then reads what it may do; measured in "
        "docs/learning.md, section 5.",
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
    frozen_layers: int | Literal["auto"] = Field(
        default="auto",
        description=(
            "Lower transformer layers kept frozen (decoder-only Llama-shaped models: "
            "SmolLM2, Qwen2, Mistral, tiny-words, tiny-causal). Only the layers above them "
            "train (LoRA adapters there only, or every weight of those layers and the final "
            "norm under finetune: full), so an update runs the lower layers without "
            "gradients and, with activation_cache_mib > 0, not at all for a state seen "
            "before: their output for a state (prompt and candidates) is cached. 0: off, "
            "every layer trains. SmolLM2 has 30 layers: 28 trains the top 2 "
            "(docs/performance.md). 'auto': on a CPU, all but the top 2 layers of a Llama, "
            "Qwen2 or Mistral model of 50M parameters or more (SmolLM2: 28; the service "
            "then learns about 2.5x the transitions per second); 0 elsewhere (CUDA, tiny "
            "models, other layouts, finetune: frozen)."
        ),
    )
    activation_cache_mib: int = Field(
        default=2048,
        ge=0,
        description=(
            "With frozen_layers > 0: memory (MiB) for the frozen layers' output, kept per "
            "state (float32, the residual stream's precision: cached and recomputed give "
            "the same numbers) and dropped least recently used first; acting fills it, "
            "updates read it. 0: no cache (the frozen layers are recomputed, without "
            "gradients, on every pass). Not kept across restarts: rebuilt as states recur."
        ),
    )
    lm_head_autocast: bool = Field(
        default=False,
        description=(
            "Under autocast, round the LM head's inputs (the final hidden rows and the "
            "head's weight) to bfloat16 too, accumulating in float32; the log-softmax over "
            "the vocabulary stays float32. With frozen_layers the head is about half of a "
            "SmolLM2 update and this makes it ~3x faster, at the cost of larger log pi "
            "differences from float32 (docs/performance.md). False: the head in float32."
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

    @field_validator("frozen_layers")
    @classmethod
    def _frozen_count(cls, value: int | str) -> int | str:
        if isinstance(value, int) and value < 0:
            raise ValueError(f"frozen_layers must be 0 or more, or 'auto', got {value}")
        return value

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        if not _DEVICE.fullmatch(value):
            raise ValueError(
                f"unknown torch device {value!r}; expected 'cpu', 'cuda', 'cuda:N', 'mps' "
                "or another torch device type, optionally ':N'"
            )
        return value
