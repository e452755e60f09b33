"""Loading the policy LLM: configuration, LoRA or full fine-tuning, device and dtype.

Any local Hugging Face model folder loads through transformers' Auto classes
(decoder-only or encoder-decoder), and so does a Hugging Face id (``org/name``)
found in the local Hugging Face cache; ``"smollm2"`` names the packaged
pretrained model and ``"tiny-*"`` tiny random ones. Nothing is ever downloaded.

The model is kept in eval mode for its whole life: dropout would make the
log-probabilities the collector records differ from those the learner
recomputes (PPO's ratio would not start at 1) and the collector and the learner
share the one model object from different threads, so a train/eval switch by
one would change what the other computes.

Mixed precision (``autocast``): on a CPU with native bfloat16 (avx512_bf16,
AMX, or Arm's bf16), SmolLM2's forward and backward passes take about half the
time when their matrix products run in bfloat16 (docs/performance.md). What
trains keeps float32 master weights (LoRA adapters, or every weight under full
fine-tuning), the residual stream stays float32 (autocast casts only the inputs
of matrix products), the LM head's log-softmax and the critic heads run in
float32 outside the autocast region, and the frozen weights of linear layers
are *stored* in bfloat16: autocast would round them to bfloat16 before every
product anyway, so storing them rounded gives the same numbers without casting
135M weights on every call. ``"auto"`` turns it on only where it measured
faster, and falls back to float32 elsewhere.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import platform
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from autotelic.learners.cache import build_atomically
from autotelic.learners.model_config import (
    EXPORT_INFO,
    PACKAGED,
    TINY_NAMES,
    WORDS,
    AutocastName,
    CandidateScore,
    DTypeName,
    Finetune,
    ModelConfig,
    ModelError,
    ModelKind,
    TinyName,
)
from autotelic.learners.packaged import convert_smollm2, smollm2_entry_name, smollm2_gguf
from autotelic.learners.split import (
    ActivationCache,
    SplitError,
    check_frozen_layers,
    num_layers,
)
from autotelic.learners.tiny import tiny_model

__all__ = [  # the configuration's names, re-exported: code imports them from here
    "PACKAGED",
    "TINY_NAMES",
    "AutocastName",
    "CandidateScore",
    "DTypeName",
    "Finetune",
    "ModelConfig",
    "ModelError",
    "ModelKind",
    "TinyName",
]

AUTO_AUTOCAST_MIN_PARAMETERS = 50_000_000
"""``autocast: auto`` turns bfloat16 on only for models at least this large: on a tiny
model the casts cost more than the products save (docs/performance.md)."""

AUTO_TRAINED_LAYERS = 2
"""``frozen_layers: auto`` on a CPU trains this many top layers of a pretrained model and
freezes (and caches) the rest: SmolLM2's 30 layers become 28 frozen, the top 2 trained,
an SAC update about 8x cheaper and the service learning about 2.5x the transitions per
second (docs/performance.md, "A pretrained model's update on a CPU")."""

AUTO_SPLIT_MODEL_TYPES = ("llama", "qwen2", "mistral")
"""Model types ``frozen_layers: auto`` splits (SmolLM2 is a Llama): embeddings, layers and
norm exactly, so the bitwise check the first scorer makes passes; others stay whole."""

log = logging.getLogger(__name__)

_DTYPES: dict[DTypeName, torch.dtype] = {
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}


def torch_dtype(config: ModelConfig) -> torch.dtype:
    """The torch dtype ``config.dtype`` names."""
    return _DTYPES[config.dtype]


@dataclass
class PolicyModel:
    """A loaded LLM ready for scoring: the module, its tokenizer and what it is."""

    module: nn.Module
    """What to call and optimise: a peft model under LoRA, else the transformers model."""
    tokenizer: PreTrainedTokenizerBase
    kind: ModelKind
    config: ModelConfig
    autocast_dtype: torch.dtype | None = None
    """The dtype of mixed-precision matrix products (None: no autocast)."""
    base_fingerprint: float | None = None
    """Checksum of the frozen weights as loaded, before any is stored in lower precision,
    so a checkpoint fits its base whatever the precision of the run that resumes it."""

    folder: Path | None = None
    """The folder the weights came from (None: a tiny model built in memory)."""
    activations: ActivationCache | None = None
    """The frozen lower layers' output per state (``frozen_layers`` with a cache size),
    shared by every scorer of this model: the collector's fills it, the learner's reads."""
    split_verified: bool = False
    """Whether the split forward (``frozen_layers``) was checked bitwise against the
    model's own on a probe batch (done by the first scorer made for it)."""

    @functools.cached_property
    def candidate_score(self) -> Literal["sum", "mean"]:
        """The score in force: ``auto`` resolved (see :func:`resolve_candidate_score`)."""
        return resolve_candidate_score(self.config, self.folder)

    def compute(self) -> contextlib.AbstractContextManager[object]:
        """The context the LLM's forward passes run in: autocast, or nothing.

        Autocast state is per thread, so the collector's and the learner's
        threads each enter their own; backward passes need not be inside it.
        """
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    @property
    def frozen_layers(self) -> int:
        """The lower layers kept frozen, ``auto`` resolved at load (0: every layer trains)."""
        value = self.config.frozen_layers
        return value if isinstance(value, int) else 0

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


def resolve_frozen_layers(
    config: ModelConfig, model: PreTrainedModel, device: torch.device, num_parameters: int
) -> tuple[int, str]:
    """``frozen_layers`` with ``auto`` decided, and why: on a CPU, all but the top
    :data:`AUTO_TRAINED_LAYERS` layers of a model of at least 50M parameters that the
    split forward runs (a Llama-shaped decoder), so an update reads the lower layers'
    output from the cache instead of running them; 0 (every layer trains) elsewhere."""
    chosen = config.frozen_layers
    if isinstance(chosen, int):
        return chosen, f"frozen_layers {chosen} (configured)"
    if device.type != "cpu":
        return 0, f"frozen_layers auto: 0 on {device.type} (every layer trains)"
    if config.finetune == "frozen":
        return 0, "frozen_layers auto: 0 (finetune: frozen trains no layer)"
    if num_parameters < AUTO_AUTOCAST_MIN_PARAMETERS:
        return 0, (
            f"frozen_layers auto: 0 for a model of {num_parameters / 1e6:.1f}M parameters "
            "(every layer trains)"
        )
    model_type = getattr(model.config, "model_type", None)
    if model_type not in AUTO_SPLIT_MODEL_TYPES:
        return 0, f"frozen_layers auto: 0 ({model_type} models are not split)"
    try:
        total = num_layers(model)
    except SplitError:
        return 0, f"frozen_layers auto: 0 ({type(model).__name__} cannot be split)"
    if total <= AUTO_TRAINED_LAYERS:
        return 0, f"frozen_layers auto: 0 (only {total} layers)"
    frozen = total - AUTO_TRAINED_LAYERS
    return frozen, (
        f"frozen_layers auto: {frozen} on the CPU (the top {AUTO_TRAINED_LAYERS} of {total} "
        "layers train; the lower layers' output is cached)"
    )


def resolve_candidate_score(
    config: ModelConfig, folder: Path | None = None
) -> Literal["sum", "mean"]:
    """``auto``: the mean for randomly initialised models, which start near uniform
    under it (docs/learning.md), the sum for pretrained ones, which keep their prior;
    a policy exported by ``autotelic export`` scores as it was trained (its
    ``autotelic.json`` says how)."""
    if config.candidate_score != "auto":
        return config.candidate_score
    if config.path in TINY_NAMES:
        return "mean"
    return exported_candidate_score(folder) or "sum"


def exported_candidate_score(folder: Path | None) -> Literal["sum", "mean"] | None:
    """The candidate score an exported policy in ``folder`` was trained with, if any."""
    if folder is None or not (folder / EXPORT_INFO).is_file():
        return None
    try:
        info = json.loads((folder / EXPORT_INFO).read_text())
        score = info["model_settings"]["candidate_score"]
    except (OSError, ValueError, KeyError, TypeError):
        log.warning("%s in %s is unreadable: scoring by the sum", EXPORT_INFO, folder)
        return None
    return score if score in ("sum", "mean") else None


def hf_model(module: nn.Module) -> PreTrainedModel:
    """The transformers model inside ``module`` (a peft wrapper or the model itself)."""
    get_base = getattr(module, "get_base_model", None)
    inner = get_base() if callable(get_base) else module
    if not isinstance(inner, PreTrainedModel):
        raise TypeError(f"expected a transformers model, got {type(inner).__name__}")
    return inner


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bfloat16 products natively (not emulated in float32).

    x86: avx512_bf16 or AMX-BF16; Arm: the bf16 feature. Read from /proc/cpuinfo,
    so False where it cannot be read (macOS, Windows): "auto" then stays in float32.
    """
    return cpuinfo_has_bf16(platform.machine(), Path("/proc/cpuinfo"))


@functools.cache
def cpuinfo_has_bf16(machine: str, cpuinfo: Path) -> bool:
    """Whether the CPU flags listed in ``cpuinfo`` include native bfloat16 for ``machine``."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return False
    flags: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            flags.update(value.split())
    if machine.lower() in ("aarch64", "arm64"):
        return "bf16" in flags
    return bool({"avx512_bf16", "amx_bf16"} & flags)


def resolve_autocast(
    config: ModelConfig, device: torch.device, num_parameters: int
) -> tuple[torch.dtype | None, str]:
    """The autocast dtype ``config`` asks for on ``device`` (None: none), and why."""
    if config.autocast == "off":
        return None, "autocast off"
    if config.dtype != "float32":
        return None, f"weights are {config.dtype}: nothing to mix"
    if config.autocast == "bfloat16":
        if device.type == "cpu" and not cpu_has_native_bf16():
            log.warning(
                "autocast bfloat16 on a CPU without native bfloat16: emulated, likely "
                "slower than float32 (autocast 'auto' would stay in float32)"
            )
        if device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise ModelError(f"autocast bfloat16 requested but {device} does not support it")
        return torch.bfloat16, "autocast bfloat16 (configured)"
    if device.type != "cpu":
        return None, f"autocast auto: off on {device.type} (TF32 matmuls instead)"
    if not cpu_has_native_bf16():
        return None, "autocast auto: off, this CPU has no native bfloat16"
    if num_parameters < AUTO_AUTOCAST_MIN_PARAMETERS:
        return None, (
            f"autocast auto: off for a model of {num_parameters / 1e6:.1f}M parameters "
            f"(< {AUTO_AUTOCAST_MIN_PARAMETERS / 1e6:.0f}M: casts cost more than they save)"
        )
    return torch.bfloat16, "autocast auto: bfloat16 (native on this CPU)"


def load_model(config: ModelConfig) -> PolicyModel:
    """Load (or build) the model ``config`` names, place it, and set up fine-tuning."""
    device = torch.device(config.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ModelError(f"device {config.device!r} requested but CUDA is not available")
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    folder: Path | None = None
    if config.path in TINY_NAMES:
        name: TinyName = config.path
        fixed = config.word_vectors == "fixed"
        if fixed and name != WORDS:
            raise ModelError(f"word_vectors: fixed is for tiny-words, not {name!r}")
        model, tokenizer = tiny_model(
            name, seed=config.seed, vocabulary=config.vocabulary, tied=fixed
        )
        nn.Module.to(model, dtype=torch_dtype(config))
    else:
        folder = resolve_model_dir(config)
        model, tokenizer = _load_folder(folder, config)
    num_parameters = sum(p.numel() for p in model.parameters())
    autocast, why = resolve_autocast(config, device, num_parameters)
    attention = config.attn_implementation
    if attention is None and autocast is not None and device.type == "cpu":
        # Measured on SmolLM2 (docs/performance.md): torch's CPU flash attention is slow
        # backwards in bfloat16; eager attention makes a bf16 SAC update ~20% faster.
        attention = "eager"
    if attention is not None:
        model.set_attn_implementation(attention)
    kind = _kind_of(model, config)
    frozen, why_frozen = resolve_frozen_layers(config, model, device, num_parameters)
    config = config.model_copy(update={"frozen_layers": frozen})  # `auto` decided
    if frozen:
        try:
            check_frozen_layers(model, frozen)
        except SplitError as exc:
            raise ModelError(str(exc)) from exc
    # Adapters are created on the CPU first, so a seed gives the same LoRA
    # initialisation whatever the device.
    module = _adapt(model, config)
    fingerprint = frozen_fingerprint(module)
    if autocast is not None:
        store_frozen_linear_weights(model, autocast)
    module.to(device)
    module.eval()
    log.info("model %s on %s: %s; %s", config.path, device, why, why_frozen)
    policy = PolicyModel(
        module=module,
        tokenizer=tokenizer,
        kind=kind,
        config=config,
        autocast_dtype=autocast,
        base_fingerprint=fingerprint,
        folder=folder,
    )
    # With frozen_layers, the split forward is checked bitwise when the first scorer is
    # made (learners/scorer.py: the check packs a probe batch as the scorer does).
    if frozen and config.activation_cache_mib:
        policy.activations = ActivationCache(config.activation_cache_mib * 2**20)
    return policy


def frozen_fingerprint(module: nn.Module) -> float:
    """A checksum of the frozen weights: a checkpoint of adapters fits only its base."""
    with torch.no_grad():
        total = torch.zeros((), dtype=torch.float64)
        for p in module.parameters():
            if not p.requires_grad:
                total += p.detach().double().abs().sum().cpu()
    return float(total)


def store_frozen_linear_weights(model: PreTrainedModel, dtype: torch.dtype) -> int:
    """Store the frozen weights of ``model``'s linear layers in ``dtype``; returns how many.

    Under autocast every matrix product rounds its weight to ``dtype`` first, so
    this changes no result; it saves that cast on every call and half the
    memory. Trained weights keep their float32 master copy, and the input and
    output embeddings (tied in many models: the LM head reads them in float32)
    stay as they are.
    """
    embeddings = (model.get_input_embeddings(), model.get_output_embeddings())  # type: ignore[no-untyped-call]
    keep = {id(e.weight) for e in embeddings if e is not None}
    stored = 0
    for module in model.modules():
        weight = getattr(module, "weight", None)
        if (
            isinstance(module, nn.Linear)
            and isinstance(weight, nn.Parameter)
            and not weight.requires_grad
            and id(weight) not in keep
            and weight.dtype != dtype
        ):
            weight.data = weight.data.to(dtype)
            stored += 1
    return stored


def resolve_model_dir(config: ModelConfig) -> Path:
    """The local folder to load: the packaged model's cache entry, ``config.path`` as a
    folder, or a Hugging Face id's snapshot in the local cache (never downloaded: the
    machines that run this have no network to the hub)."""
    if config.path == PACKAGED:
        gguf = smollm2_gguf()
        dest = config.cache_dir / smollm2_entry_name(gguf)
        return build_atomically(dest, lambda out: convert_smollm2(gguf, out))
    folder = Path(config.path).expanduser()
    if (folder / "config.json").is_file():
        return folder  # an existing local folder wins over a same-named hub id
    if not folder.exists() and _HUB_ID.fullmatch(config.path):
        return _hub_snapshot(config.path)
    raise ModelError(
        f"model path {config.path!r} is not a Hugging Face model folder (no config.json); "
        f"use a local folder, a Hugging Face id (org/name) in the local cache, "
        f"{PACKAGED!r}, or one of {TINY_NAMES}"
    )


_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]*[A-Za-z0-9]")
"""``org/name`` as the hub spells repository ids."""


def hub_cache_dir() -> Path:
    """Where Hugging Face keeps downloaded models, read from the environment on each call
    (huggingface_hub reads it once at import, so a later change would go unseen)."""
    if cache := os.environ.get("HF_HUB_CACHE"):
        return Path(cache).expanduser()
    home = os.environ.get("HF_HOME") or Path(
        os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache", "huggingface"
    )
    return Path(home).expanduser() / "hub"


def _hub_snapshot(repo_id: str) -> Path:
    """The cached snapshot of ``repo_id`` that ``refs/main`` names, looked up offline by
    huggingface_hub itself; a one-line error saying where it looked when it is absent."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    cache = hub_cache_dir()
    try:
        found = Path(snapshot_download(repo_id, local_files_only=True, cache_dir=cache))
    except LocalEntryNotFoundError:
        found = None
    if found is None or not (found / "config.json").is_file():
        entry = cache / f"models--{repo_id.replace('/', '--')}"
        raise ModelError(
            f"model {repo_id!r} is not a local folder and not in the Hugging Face cache "
            f"(looked for {entry}; set HF_HUB_CACHE or HF_HOME to look elsewhere); nothing is "
            f"downloaded: run `hf download {repo_id}` where the hub is reachable and copy "
            f"that cache here, or give model.path a local folder"
        )
    return found


def _load_folder(
    folder: Path, config: ModelConfig
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    hf_config = AutoConfig.from_pretrained(folder, local_files_only=True)
    seq2seq = _wants_seq2seq(bool(getattr(hf_config, "is_encoder_decoder", False)), config)
    auto = AutoModelForSeq2SeqLM if seq2seq else AutoModelForCausalLM
    model = auto.from_pretrained(folder, dtype=torch_dtype(config), local_files_only=True)
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
    frozen = config.frozen_layers if isinstance(config.frozen_layers, int) else 0
    if config.finetune == "full" and frozen:
        _train_top_layers(model, frozen)
        return model
    if config.finetune == "full":
        model.requires_grad_(True)
        if config.word_vectors == "fixed":  # the LM head is tied to them
            model.get_input_embeddings().requires_grad_(False)
        return model
    if config.finetune == "frozen":
        model.requires_grad_(False)
        return model
    from peft import LoraConfig, get_peft_model

    top = list(range(frozen, num_layers(model))) if frozen else None
    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=config.lora_target_modules,
        # GPT-2 stores its projections transposed (Conv1D).
        fan_in_fan_out=model.config.model_type == "gpt2",
        layers_to_transform=top,  # the trained top layers only: the lower stay as loaded
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


def _train_top_layers(model: PreTrainedModel, frozen: int) -> None:
    """Full fine-tuning of the layers above ``frozen``: their weights, the final norm and
    an untied LM head train; the embeddings and the lower layers stay as loaded (a tied
    head stays too: training it would change the embeddings the lower layers read)."""
    from autotelic.learners.split import decoder_parts

    model.requires_grad_(False)
    parts = decoder_parts(model)
    for layer in parts.layers[frozen:]:
        layer.requires_grad_(True)
    parts.norm.requires_grad_(True)
    head = model.get_output_embeddings()  # type: ignore[no-untyped-call]
    embeddings = model.get_input_embeddings()
    if head is not None and head.weight is not embeddings.weight:
        head.requires_grad_(True)
