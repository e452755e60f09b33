"""Frozen lower layers run apart from the trained top ones, and their output cached.

With ``model.frozen_layers = L`` only the layers above the L-th train (their LoRA
adapters, or their weights under full fine-tuning), so the output of the lower L
layers for a packed state (its prompt followed by every candidate, under the block
mask) never changes over a run. An SAC update on SmolLM2 spends most of its time in
those layers (30 of them, three passes and two backward passes); here they run
without gradients, once per state: their output is kept in an :class:`ActivationCache`
keyed by the state's token ids, filled by acting (the collector scores every state it
acts in) and read by updates, which then run only the top layers.

Exactness: the split forward is the model's own forward cut in two (embeddings, the
lower layers, then the upper layers and the final norm, each layer called as the
model calls it, with the same rotary embeddings of the same position ids and the same
additive block mask); ``learners.scorer.check_split`` verifies it bitwise on a probe
batch when the first scorer of the model is made. Cached rows are the float32 residual
stream, the precision the model computes it in, under autocast too. A state's rows
computed in another batch (acting on 8 states, an update on 64) can differ in the last
bits of float32, as any two batch shapes do; tests bound the difference.

Why per state and not per transition: hindsight relabeling rewrites the goal, and the
goal is in the prompt, so a relabeled transition reads prompts nobody acted on;
keying by the state's ids serves both, and a state replayed under the same goal
(the common case) is computed once.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from torch import Tensor, nn
from transformers import PreTrainedModel

StateKey = tuple[tuple[int, ...], tuple[tuple[int, ...], ...]]
"""A packed state's identity: its prompt ids and each candidate's ids."""

_PARTS = ("embed_tokens", "layers", "rotary_emb", "norm")
"""What a decoder must expose to be run in two parts (Llama, Qwen2, Mistral, SmolLM)."""


class SplitError(ValueError):
    """A model that cannot be run with frozen lower layers as configured."""


@dataclass(frozen=True)
class DecoderParts:
    """The pieces of a decoder stack that the split forward calls, in the model's order."""

    embed: nn.Module
    layers: nn.ModuleList
    rotary: nn.Module
    norm: nn.Module


def decoder_parts(hf: PreTrainedModel) -> DecoderParts:
    """The decoder stack of ``hf``: embeddings, layers, rotary embeddings, final norm."""
    body = hf.base_model
    parts = {name: getattr(body, name, None) for name in _PARTS}
    missing = [name for name, part in parts.items() if not isinstance(part, nn.Module)]
    if hf.config.is_encoder_decoder or missing or not isinstance(parts["layers"], nn.ModuleList):
        raise SplitError(
            f"frozen_layers needs a Llama-shaped decoder-only model; {type(hf).__name__} "
            f"lacks {missing or 'a decoder-only layout'}"
        )
    layers = parts["layers"]
    assert isinstance(layers, nn.ModuleList)
    return DecoderParts(
        embed=_module(parts["embed_tokens"]),
        layers=layers,
        rotary=_module(parts["rotary_emb"]),
        norm=_module(parts["norm"]),
    )


def _module(part: object) -> nn.Module:
    if not isinstance(part, nn.Module):
        raise SplitError(f"expected a torch module, got {type(part).__name__}")
    return part


def num_layers(hf: PreTrainedModel) -> int:
    return len(decoder_parts(hf).layers)


def check_frozen_layers(hf: PreTrainedModel, frozen: int) -> None:
    """Refuse a ``frozen`` count that leaves no layer to train or names a missing one."""
    total = num_layers(hf)
    if not 0 < frozen < total:
        raise SplitError(
            f"frozen_layers {frozen} must leave at least one of the model's {total} layers "
            f"to train (1 to {total - 1}), or be 0 (off)"
        )


def _run(
    parts: DecoderParts, hidden: Tensor, mask: Tensor, positions: Tensor, layers: nn.ModuleList
) -> Tensor:
    """``hidden`` through ``layers`` as the model's forward calls them."""
    rotary = parts.rotary(hidden, position_ids=positions)
    for layer in layers:
        hidden = layer(
            hidden,
            attention_mask=mask,
            position_embeddings=rotary,
            position_ids=positions,
            use_cache=False,
        )
    return hidden


def run_lower(
    hf: PreTrainedModel, ids: Tensor, mask: Tensor, positions: Tensor, frozen: int
) -> Tensor:
    """The residual stream [B, T, H] after the embeddings and the lower ``frozen`` layers."""
    parts = decoder_parts(hf)
    hidden = parts.embed(ids)
    return _run(parts, hidden, mask, positions, parts.layers[:frozen])


def run_upper(
    hf: PreTrainedModel, hidden: Tensor, mask: Tensor, positions: Tensor, frozen: int
) -> Tensor:
    """The final hidden states [B, T, H] from the lower layers' output: the layers above
    ``frozen`` and the final norm, as the model's forward ends."""
    parts = decoder_parts(hf)
    out: Tensor = parts.norm(_run(parts, hidden, mask, positions, parts.layers[frozen:]))
    return out


def state_keys(
    prompt_ids: Sequence[list[int]], candidate_ids: Sequence[Sequence[list[int]]]
) -> list[StateKey]:
    """The cache key of each packed state."""
    return [
        (tuple(p), tuple(tuple(c) for c in cands))
        for p, cands in zip(prompt_ids, candidate_ids, strict=True)
    ]


@dataclass
class CacheStats:
    """What an :class:`ActivationCache` did since it was made (or its counters reset)."""

    hits: int = 0
    misses: int = 0
    evicted: int = 0

    @property
    def hit_rate(self) -> float:
        looked = self.hits + self.misses
        return self.hits / looked if looked else 0.0


class ActivationCache:
    """The frozen layers' output per state, bounded in bytes, least recently used out.

    Shared by the learner's scorer and the collector's (other threads): every access
    holds one lock; the tensors themselves are never changed once stored.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.stats = CacheStats()
        self._rows: OrderedDict[StateKey, Tensor] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._rows)

    @property
    def nbytes(self) -> int:
        """Bytes the cached tensors hold now."""
        return self._bytes

    def get(self, keys: Sequence[StateKey]) -> list[Tensor | None]:
        """Each key's rows, or None where absent (counted as a miss)."""
        found: list[Tensor | None] = []
        with self._lock:
            for key in keys:
                rows = self._rows.get(key)
                if rows is not None:
                    self._rows.move_to_end(key)
                found.append(rows)
            hits = sum(r is not None for r in found)
            self.stats.hits += hits
            self.stats.misses += len(found) - hits
        return found

    def put(self, key: StateKey, rows: Tensor) -> None:
        """Keep ``rows`` [tokens, H] for ``key``; a tensor larger than the whole cache is
        not kept."""
        size = rows.numel() * rows.element_size()
        if size > self.max_bytes:
            return
        with self._lock:
            old = self._rows.pop(key, None)
            if old is not None:
                self._bytes -= old.numel() * old.element_size()
            self._rows[key] = rows
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, dropped = self._rows.popitem(last=False)
                self._bytes -= dropped.numel() * dropped.element_size()
                self.stats.evicted += 1

    def clear(self) -> None:
        with self._lock:
            self._rows.clear()
            self._bytes = 0

    def report(self, reader: CacheStats) -> dict[str, float]:
        """What an update reports (telemetry): the share of the states its scorer looked up
        that were cached (``reader``: that scorer's counts), and the memory held."""
        return {
            "activation_cache_hit_rate": reader.hit_rate,
            "activation_cache_mib": self.nbytes / 2**20,
        }
