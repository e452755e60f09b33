"""Scoring every candidate action of a batch of states in one forward pass.

For each state the prompt is processed once:

* decoder-only models get one packed sequence per state, the prompt followed by
  every candidate, with a block attention mask (each candidate sees the prompt
  and itself, never another candidate) and position ids that restart after the
  prompt for every candidate, so each candidate is scored exactly as if it
  followed the prompt alone;
* encoder-decoder models run the encoder once per state and the decoder over
  all candidates, each reading its state's encoder output.

Only the hidden rows that predict candidate tokens go through the LM head and a
real log_softmax over the vocabulary (full-vocabulary logits at every position
would cost 1.5x the time and 5x the memory). The same pass yields the hidden
state of each candidate's last token, which the critic heads read, and each
state's own hidden state (last prompt token, or the decoder's first position)
for a state-value head.

Under mixed precision (``ModelConfig.autocast``) the body runs in the model's
autocast region and the LM head outside it, in float32.

The traps this avoids: the mask is additive
and in the model dtype (eager attention adds it to the scores, so a boolean
mask would be silently wrong), and padding positions attend to themselves
(a row attending to nothing gives NaN that spreads).
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import itertools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

import numpy as np
import torch
from torch import Tensor, nn
from torch.profiler import record_function
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from autotelic.learners.encoding import (
    EncodedStates,
    ScoringInputError,
    StateEncoder,
    padding_id,
)
from autotelic.learners.layout import CandidateLayout
from autotelic.learners.models import ModelError, ModelKind, PolicyModel, hf_model
from autotelic.learners.split import CacheStats, num_layers, run_lower, run_upper, state_keys

PaddingSide = Literal["left", "right"]


@dataclass
class Scores:
    """Per-candidate outputs of one scoring pass, flat over the batch's candidates."""

    logprobs: Tensor
    """[N] summed log-probability of each candidate's tokens given its prompt (float32)."""
    features: Tensor
    """[N, H] hidden state of each candidate's last token (float32): what Q heads read."""
    state_features: Tensor
    """[B, H] each state's hidden state before any action (float32): what a V head reads."""
    layout: CandidateLayout
    num_positions: int
    """Token positions the model computed, padding included (what compute tracks)."""
    num_tokens: int
    """Real (non-padding) tokens among them."""
    token_counts: Tensor | None = None
    """[N] tokens of each candidate; with ``mean`` the policy reads per-token log-probs."""
    mean: bool = False
    """Score a candidate by its mean token log-prob (``model.candidate_score: mean``)."""

    @cached_property
    def log_pi(self) -> Tensor:
        """[N] log pi(a|s): log_softmax over each state's candidates of their summed (or,
        with ``mean``, per-token) log-probabilities."""
        if self.mean and self.token_counts is not None:
            return self.layout.log_softmax(self.logprobs / self.token_counts)
        return self.layout.log_softmax(self.logprobs)

    @property
    def counts(self) -> tuple[int, ...]:
        return self.layout.counts

    def entropy(self) -> Tensor:
        """[B] entropy of each state's policy."""
        return self.layout.entropy(self.log_pi)

    def split(self, values: Tensor) -> list[Tensor]:
        """Flat [N, ...] values as one tensor per state."""
        return list(torch.split(values, list(self.layout.counts)))


def lm_log_probs(hf: PreTrainedModel, rows: Tensor, dtype: torch.dtype | None = None) -> Tensor:
    """Log-softmax over the vocabulary for selected final hidden rows [M, H] -> [M, V].

    Applies what the model's own forward applies between its body and the
    logits: T5's rescaling of tied decoder outputs, a final logits bias, a
    logit soft-cap. ``dtype`` (``model.lm_head_autocast``): the head's product takes
    its inputs rounded to it (float32 accumulation, as autocast does), the log-softmax
    stays float32; None: the head's own dtype.
    """
    config = hf.config
    if config.is_encoder_decoder and getattr(config, "scale_decoder_outputs", False):
        rows = rows * (config.d_model**-0.5)
    head = hf.get_output_embeddings()  # type: ignore[no-untyped-call]
    if head is None:
        raise ScoringInputError(f"{type(hf).__name__} has no LM head to score candidates with")
    # Outside any autocast region, in the head's own dtype: under mixed precision the
    # body's bfloat16 rows meet the float32 head, so the log-softmax over the vocabulary
    # is not rounded to bfloat16 (that alone would cost ~0.1 nats per token).
    with torch.autocast(rows.device.type, enabled=False):
        if dtype is None:
            logits = head(rows.to(head.weight.dtype))
        else:
            bias = head.bias.to(dtype) if head.bias is not None else None
            logits = nn.functional.linear(rows.to(dtype), _rounded(head.weight, dtype), bias)
        bias = getattr(hf, "final_logits_bias", None)
        if isinstance(bias, Tensor):
            logits = logits + bias
        cap = getattr(config, "final_logit_softcapping", None)
        if cap:
            logits = torch.tanh(logits / cap) * cap
        return torch.log_softmax(logits.float(), dim=-1)


def _rounded(weight: Tensor, dtype: torch.dtype) -> Tensor:
    """``weight`` in ``dtype``, cast once per version of a frozen weight (casting
    SmolLM2's 28M-entry head costs about as much as the product it feeds); kept on the
    weight itself, so it lives and dies with it. A trained weight is cast in the graph."""
    if weight.requires_grad:
        return weight.to(dtype)
    held: tuple[int, torch.dtype, Tensor] | None = getattr(weight, "_autotelic_rounded", None)
    if held is None or held[0] != weight._version or held[1] != dtype:
        with torch.no_grad(), torch.inference_mode(False):
            held = (weight._version, dtype, weight.detach().to(dtype))
        weight._autotelic_rounded = held  # type: ignore[attr-defined]
    return held[2]


def mask_dtype(hf: PreTrainedModel) -> torch.dtype:
    """The dtype attention scores are computed in: the autocast dtype inside an autocast
    region (attention kernels may refuse a mask of another dtype than the query's), else
    the model's."""
    device = hf.device.type
    if torch.is_autocast_enabled(device):
        return torch.get_autocast_dtype(device)
    return hf.dtype


def additive_mask(allowed: Tensor, dtype: torch.dtype) -> Tensor:
    """Boolean [B, T, T] -> additive float [B, 1, T, T]: 0 where allowed, dtype min elsewhere."""
    mask = torch.zeros(allowed.shape, dtype=dtype, device=allowed.device)
    mask = mask.masked_fill(~allowed, torch.finfo(dtype).min)
    return mask[:, None]


log = logging.getLogger(__name__)


@torch.no_grad()
def check_split(hf: PreTrainedModel, frozen: int) -> float:
    """Largest difference between the model's forward and the split one on a probe batch
    packed as the scorer packs (two states of prompt and candidates, one padded); 0.0
    where they agree bitwise. Catches a model whose forward does more than embeddings,
    layers and norm (e.g. Gemma's scaled embeddings) before it trains on wrong numbers."""
    vocab = int(hf.config.vocab_size)
    probe = EncodedStates(
        prompt_ids=[[3 % vocab, 5 % vocab, 7 % vocab], [11 % vocab, 13 % vocab]],
        candidate_ids=[[[17 % vocab, 19 % vocab], [23 % vocab]], [[29 % vocab]]],
    )
    packed = pack_states(probe, "right", 0)
    ids, mask, pos = packed.inputs(hf.device, mask_dtype(hf))
    whole = hf.base_model(
        input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=False
    ).last_hidden_state
    split = run_upper(hf, run_lower(hf, ids, mask, pos, frozen), mask, pos, frozen)
    valid = torch.from_numpy(packed.segments >= 0).to(hf.device)
    return float((whole[valid] - split[valid]).abs().max())


def verify_split(policy: PolicyModel) -> None:
    """Refuse a model whose forward the split one does not reproduce (bitwise on a probe)."""
    if policy.split_verified:
        return
    frozen = policy.frozen_layers
    with policy.compute():
        gap = check_split(policy.hf, frozen)
    if gap != 0.0:
        raise ModelError(
            f"frozen_layers: {type(policy.hf).__name__} run as its lower {frozen} layers "
            f"then the rest differs from its own forward by {gap:.3g}; this architecture "
            "cannot be split (set frozen_layers: 0)"
        )
    log.info(
        "model %s: lower %d of %d layers frozen, the top %d train",
        policy.config.path,
        frozen,
        num_layers(policy.hf),
        num_layers(policy.hf) - frozen,
    )
    policy.split_verified = True


class Scorer:
    """One-pass candidate scorer for a :class:`PolicyModel` (or a same-shaped twin)."""

    def __init__(
        self,
        model: PolicyModel,
        *,
        padding_side: PaddingSide = "right",
        tokenizer: PreTrainedTokenizerBase | None = None,
    ) -> None:
        """``tokenizer`` overrides the model's: a thread needs its own (see :meth:`fork`)."""
        if padding_side not in ("left", "right"):
            raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
        if model.frozen_layers:
            verify_split(model)
        self.model = model
        self.padding_side: PaddingSide = padding_side
        tok = tokenizer if tokenizer is not None else model.tokenizer
        self.encoder = StateEncoder(tok, seq2seq=model.kind == "seq2seq")
        self.pad_id = padding_id(tok)
        self.reuse_packing = True
        """Keep the last batch's packing (and its tensors, mask included) for the next pass
        over the same encoded states: SAC's targets read one batch with the online model
        and then its target twin."""
        self._last_packed: tuple[EncodedStates, PackedStates] | None = None
        self.head_autocast = model.config.lm_head_autocast
        """Round the LM head's inputs to the autocast dtype (``model.lm_head_autocast``)."""
        self.split_frozen = True
        """With ``model.frozen_layers``: run the frozen layers apart (cached, without
        gradients). False runs the model's own forward over every layer, the full
        recomputation that tests and benchmarks compare the split against."""
        self._last_lower: tuple[PackedStates, Tensor] | None = None
        self.cache_stats = CacheStats()
        """This scorer's own lookups in the activation cache (the learner's: how many of
        the states its updates read were cached by acting or by an earlier update)."""
        """The frozen layers' output of the last packing (``model.frozen_layers``): the
        target twin's pass reads the online one's, as their frozen layers are shared."""

    def fork(self) -> Scorer:
        """A scorer on the same model with its own tokenizer copy.

        Fast tokenizers reconfigure themselves on every call and raise
        "Already borrowed" when two threads use one at once; the collector's
        scorer and the learner's must not share one.
        """
        return Scorer(
            self.model,
            padding_side=self.padding_side,
            tokenizer=copy.deepcopy(self.encoder.tokenizer),
        )

    @property
    def kind(self) -> ModelKind:
        return self.model.kind

    def encode(self, prompts: Sequence[str], candidates: Sequence[Sequence[str]]) -> EncodedStates:
        return self.encoder.encode(prompts, candidates)

    def score(
        self,
        prompts: Sequence[str],
        candidates: Sequence[Sequence[str]],
        *,
        module: nn.Module | None = None,
        logprobs: bool = True,
    ) -> Scores:
        """Score every candidate of every state; gradients follow the ambient grad mode.

        ``module`` scores with another module of the same architecture and
        tokenizer (the critic's target twin); ``logprobs=False`` skips the LM
        head when only features are wanted (their log-probs are then zeros).
        """
        with record_function("score/tokenise"):
            encoded = self.encode(prompts, candidates)
        return self.score_encoded(encoded, module=module, logprobs=logprobs)

    def score_encoded(
        self, encoded: EncodedStates, *, module: nn.Module | None = None, logprobs: bool = True
    ) -> Scores:
        if not encoded.prompt_ids:
            raise ScoringInputError("no states to score")
        hf = hf_model(module if module is not None else self.model.module)
        # Mixed precision, when the model asks for it (the LM head leaves it, see
        # lm_log_probs); features and log-probs come out in float32 either way.
        with self.model.compute():
            head = self.head_dtype
            if self.kind == "causal" and self.model.frozen_layers and self.split_frozen:
                scores = self._score_split(hf, encoded, logprobs)
            elif self.kind == "causal":
                scores = _score_causal(hf, self._pack(encoded), logprobs, head)
            else:
                scores = _score_seq2seq(hf, encoded, self.padding_side, self.pad_id, logprobs, head)
        return apply_candidate_score(scores, encoded, self.model)

    def _score_split(self, hf: PreTrainedModel, encoded: EncodedStates, logprobs: bool) -> Scores:
        """Causal scoring with the lower ``frozen_layers`` run apart (without gradients,
        or read from the activation cache) and only the layers above them in the ambient
        grad mode (:mod:`autotelic.learners.split`)."""
        _check_attention(hf)
        packed = self._pack(encoded)
        _, mask, positions = packed.inputs(hf.device, mask_dtype(hf))
        lower = self._lower(hf, encoded, packed)
        with record_function("score/model"):
            hidden = run_upper(hf, lower, mask, positions, self.model.frozen_layers)
        counts = (packed.ids.size, sum(packed.lengths))
        return _finish(hf, hidden, packed.rows, packed.counts, logprobs, counts, self.head_dtype)

    @property
    def head_dtype(self) -> torch.dtype | None:
        """The dtype the LM head's product rounds its inputs to (None: its own, float32)."""
        return self.model.autocast_dtype if self.head_autocast else None

    def _lower(self, hf: PreTrainedModel, encoded: EncodedStates, packed: PackedStates) -> Tensor:
        """The frozen layers' output [B, T, H] for ``packed``: the previous call's for the
        same packing, else each state's cached rows, the missing ones computed (in one
        pass over the states that miss) and cached."""
        last = self._last_lower
        if last is not None and last[0] is packed:
            return last[1]
        frozen = self.model.frozen_layers
        cache = self.model.activations
        with torch.no_grad(), record_function("score/frozen"):
            ids, mask, positions = packed.inputs(hf.device, mask_dtype(hf))
            if cache is None:
                lower = run_lower(hf, ids, mask, positions, frozen)
            else:
                keys = state_keys(encoded.prompt_ids, encoded.candidate_ids)
                found = cache.get(keys)
                missing = [i for i, rows in enumerate(found) if rows is None]
                self.cache_stats.hits += len(found) - len(missing)
                self.cache_stats.misses += len(missing)
                whole = len(missing) == len(found)
                computed_whole = run_lower(hf, ids, mask, positions, frozen) if whole else None
                if computed_whole is not None:
                    computed = _state_rows(computed_whole, packed)
                else:
                    computed = self._compute_rows(hf, encoded.select(missing)) if missing else []
                for i, rows in zip(missing, computed, strict=True):
                    stored = _storable(rows)
                    cache.put(keys[i], stored)
                    found[i] = stored
                lower = computed_whole if computed_whole is not None else _assemble(found, packed)
        self._last_lower = (packed, lower) if self.reuse_packing else None
        return lower

    def _compute_rows(self, hf: PreTrainedModel, encoded: EncodedStates) -> list[Tensor]:
        """The frozen layers' rows of each state of ``encoded`` (packed on their own)."""
        packed = pack_states(encoded, self.padding_side, self.pad_id)
        ids, mask, positions = packed.inputs(hf.device, mask_dtype(hf))
        lower = run_lower(hf, ids, mask, positions, self.model.frozen_layers)
        return _state_rows(lower, packed)

    def _pack(self, encoded: EncodedStates) -> PackedStates:
        """``encoded`` packed, or the previous call's packing when it was of the same batch."""
        last = self._last_packed
        if last is not None and last[0] is encoded:
            return last[1]
        with record_function("score/pack"):
            packed = pack_states(encoded, self.padding_side, self.pad_id)
        self._last_packed = (encoded, packed) if self.reuse_packing else None
        return packed


def apply_candidate_score(scores: Scores, encoded: EncodedStates, model: PolicyModel) -> Scores:
    """``scores`` policy read as ``model``'s candidate score asks (sum or per-token mean)."""
    if model.candidate_score != "mean":
        return scores
    counts = [len(c) for state in encoded.candidate_ids for c in state]
    lengths = torch.tensor(counts, dtype=torch.float32, device=scores.logprobs.device)
    return dataclasses.replace(scores, token_counts=lengths, mean=True)


def _valid(packed: PackedStates, device: torch.device) -> Tensor:
    """[B, T] which positions of a packing hold tokens (not padding)."""
    return torch.from_numpy(packed.segments >= 0).to(device)


def _state_rows(hidden: Tensor, packed: PackedStates) -> list[Tensor]:
    """Each state's real rows [tokens, H] of a packed [B, T, H] (padding dropped)."""
    real = hidden[_valid(packed, hidden.device)]
    return list(torch.split(real, packed.lengths))


def _assemble(rows: Sequence[Tensor | None], packed: PackedStates) -> Tensor:
    """Per-state rows laid out as ``packed`` lays out its tokens; padding rows hold zeros
    (no real position attends to them, and they attend to themselves only)."""
    present = [r for r in rows if r is not None]
    if len(present) != len(rows):
        raise ValueError("every state needs its rows before they are assembled")
    first = present[0]
    batch, width = packed.segments.shape
    hidden = first.new_zeros((batch, width, first.shape[-1]))
    hidden[_valid(packed, first.device)] = torch.cat(present)
    return hidden


def _storable(rows: Tensor) -> Tensor:
    """A compact copy of ``rows`` that outlives the pass: an ordinary tensor even when
    computed under inference mode (acting), so an update may build its graph on it."""
    with torch.inference_mode(False):
        return rows.clone()


@dataclass
class _Rows:
    """Index bookkeeping: which hidden rows feed the LM head, features and states."""

    lm_rows: list[tuple[int, int]]
    token_row: list[int]
    token_target: list[int]
    token_cand: list[int]
    feature_rows: list[tuple[int, int]]
    state_rows: list[tuple[int, int]]

    @classmethod
    def empty(cls) -> _Rows:
        return cls([], [], [], [], [], [])


def _gather(hidden: Tensor, rows: list[tuple[int, int]]) -> Tensor:
    if not rows:
        return hidden.new_zeros((0, hidden.shape[-1]))
    index = torch.tensor(rows, dtype=torch.long, device=hidden.device)
    return hidden[index[:, 0], index[:, 1]]


def _finish(
    hf: PreTrainedModel,
    hidden: Tensor,
    rows: _Rows,
    counts: Sequence[int],
    logprobs: bool,
    positions: tuple[int, int],
    head_dtype: torch.dtype | None = None,
) -> Scores:
    layout = CandidateLayout.of(counts, hidden.device)
    scores = hidden.new_zeros(layout.num_candidates, dtype=torch.float32)
    if logprobs and rows.token_row:
        with record_function("score/lm_head"):
            logp = lm_log_probs(hf, _gather(hidden, rows.lm_rows), head_dtype)
        device = hidden.device
        row = torch.tensor(rows.token_row, dtype=torch.long, device=device)
        target = torch.tensor(rows.token_target, dtype=torch.long, device=device)
        cand = torch.tensor(rows.token_cand, dtype=torch.long, device=device)
        scores = scores.index_add(0, cand, logp[row, target])
    return Scores(
        logprobs=scores,
        features=_gather(hidden, rows.feature_rows).float(),
        state_features=_gather(hidden, rows.state_rows).float(),
        layout=layout,
        num_positions=positions[0],
        num_tokens=positions[1],
    )


def _offset(side: PaddingSide, width: int, length: int) -> int:
    return 0 if side == "right" else width - length


@dataclass
class PackedStates:
    """The packed causal batch: one row per state, prompt then every candidate."""

    ids: np.ndarray
    positions: np.ndarray
    segments: np.ndarray
    """-1 padding, 0 prompt, k + 1 candidate k."""
    rows: _Rows
    lengths: list[int]
    counts: list[int]
    """Candidates of each state."""
    _inputs: dict[tuple[torch.device, torch.dtype], tuple[Tensor, Tensor, Tensor]] = (
        dataclasses.field(default_factory=dict, init=False, repr=False)
    )

    def inputs(self, device: torch.device, dtype: torch.dtype) -> tuple[Tensor, Tensor, Tensor]:
        """Input ids, additive block mask in ``dtype`` and position ids on ``device``; built
        once per device and dtype (a packing scored twice builds its mask once). The arrays
        are read as they were on the first call: change one through ``dataclasses.replace``."""
        key = (device, dtype)
        if key not in self._inputs:
            seg = torch.from_numpy(self.segments).to(device)
            self._inputs[key] = (
                torch.from_numpy(self.ids).to(device),
                additive_mask(_block_allowed(seg), dtype),
                torch.from_numpy(self.positions).to(device),
            )
        return self._inputs[key]


def pack_states(encoded: EncodedStates, side: PaddingSide, pad_id: int) -> PackedStates:
    """Lay each state out as prompt + candidates, positions restarting per candidate.

    Index arithmetic over flat arrays: the only Python loop is the one that
    flattens the id lists, so packing a batch of 64 states costs about as much
    as one of 8 (the per-token loop it replaces was 3% of an update).
    """
    pieces = [seq for p, cands in zip(encoded.prompt_ids, encoded.candidate_ids, strict=True)
              for seq in (p, *cands)]  # fmt: skip
    seg_len = np.fromiter(map(len, pieces), dtype=np.int64, count=len(pieces))
    flat = np.fromiter(itertools.chain.from_iterable(pieces), np.int64, int(seg_len.sum()))
    per_state = np.asarray(encoded.counts, dtype=np.int64) + 1  # segments: prompt + candidates
    batch = len(per_state)
    seg_state = np.repeat(np.arange(batch), per_state)
    seg_kind = np.arange(len(pieces)) - np.repeat(np.cumsum(per_state) - per_state, per_state)
    tok_seg = np.repeat(np.arange(len(pieces)), seg_len)
    tok_in_seg = np.arange(len(flat)) - np.repeat(np.cumsum(seg_len) - seg_len, seg_len)
    tok_state = seg_state[tok_seg]
    lengths = np.bincount(tok_state, minlength=batch)
    width = int(lengths.max())
    start = np.zeros(batch, np.int64) if side == "right" else width - lengths
    col = start[tok_state] + np.arange(len(flat)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    prompt_len = seg_len[np.cumsum(per_state) - per_state]
    kind = seg_kind[tok_seg]
    ids = np.full((batch, width), pad_id, dtype=np.int64)
    pos = np.zeros((batch, width), dtype=np.int64)
    seg = np.full((batch, width), -1, dtype=np.int64)
    ids[tok_state, col] = flat
    seg[tok_state, col] = kind
    pos[tok_state, col] = tok_in_seg + np.where(kind > 0, prompt_len[tok_state], 0)
    rows = _causal_rows(tok_state, col, tok_in_seg, kind, flat, start + prompt_len - 1)
    return PackedStates(ids, pos, seg, rows, lengths.tolist(), list(encoded.counts))


def _causal_rows(
    tok_state: np.ndarray,
    col: np.ndarray,
    tok_in_seg: np.ndarray,
    kind: np.ndarray,
    flat: np.ndarray,
    last_prompt_col: np.ndarray,
) -> _Rows:
    """Which rows feed the LM head, the critic and the value head in a packed batch.

    The first token of every candidate is predicted by the last prompt row (one
    LM-head row per state, shared); each later token by its candidate's previous
    token.
    """
    batch = len(last_prompt_col)
    state_rows = np.stack([np.arange(batch), last_prompt_col], axis=1)
    cand = kind > 0
    later = cand & (tok_in_seg > 0)
    lm_rows = np.concatenate([state_rows, np.stack([tok_state[later], col[later] - 1], axis=1)])
    cand_state, cand_first = tok_state[cand], tok_in_seg[cand] == 0
    token_row = np.where(cand_first, cand_state, batch + np.cumsum(~cand_first) - 1)
    token_cand = np.cumsum(cand_first) - 1
    last = cand & np.append(tok_in_seg[1:] == 0, True)
    return _Rows(
        lm_rows=state_rows.tolist() + lm_rows[batch:].tolist(),
        token_row=token_row.tolist(),
        token_target=flat[cand].tolist(),
        token_cand=token_cand.tolist(),
        feature_rows=np.stack([tok_state[last], col[last]], axis=1).tolist(),
        state_rows=state_rows.tolist(),
    )


def run_packed(hf: PreTrainedModel, packed: PackedStates) -> Tensor:
    """Final hidden states [B, T, H] of a packed batch under its block mask."""
    ids, mask, positions = packed.inputs(hf.device, mask_dtype(hf))
    out = hf.base_model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=False)
    hidden: Tensor = out.last_hidden_state
    return hidden


def _check_attention(hf: PreTrainedModel) -> None:
    impl = str(getattr(hf.config, "_attn_implementation", "") or "")
    if impl.startswith("flash"):
        raise ScoringInputError(
            f"attention {impl!r} cannot take the block mask of one-pass scoring; "
            "use attn_implementation 'sdpa' or 'eager'"
        )


def _score_causal(
    hf: PreTrainedModel,
    packed: PackedStates,
    logprobs: bool,
    head_dtype: torch.dtype | None = None,
) -> Scores:
    _check_attention(hf)
    with record_function("score/model"):
        hidden = run_packed(hf, packed)
    positions = (packed.ids.size, sum(packed.lengths))
    return _finish(hf, hidden, packed.rows, packed.counts, logprobs, positions, head_dtype)


@functools.lru_cache(maxsize=64)
def _square(width: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """The causal (lower-triangular) and identity [T, T] masks of one width, built once."""
    causal = torch.ones(width, width, dtype=torch.bool, device=device).tril()
    return causal, torch.eye(width, dtype=torch.bool, device=device)


def _block_allowed(seg: Tensor) -> Tensor:
    """[B, T] segment ids (-1 pad, 0 prompt, k+1 candidate k) -> [B, T, T] allowed."""
    causal, eye = _square(seg.shape[1], seg.device)
    valid = seg >= 0
    query, key = seg[:, :, None], seg[:, None, :]
    allowed = causal & ((key == query) | (key == 0)) & valid[:, :, None] & valid[:, None, :]
    return allowed | (eye & ~valid[:, :, None])


def _causal_allowed(valid: Tensor) -> Tensor:
    """[B, T] valid positions -> [B, T, T]: causal over valid keys, pads see themselves."""
    causal, eye = _square(valid.shape[1], valid.device)
    return (causal & valid[:, None, :] & valid[:, :, None]) | (eye & ~valid[:, :, None])


def _pad_rows(
    seqs: Sequence[Sequence[int]], side: PaddingSide, pad_id: int
) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Pad id lists to one width; returns ids, validity and each sequence's offset."""
    width = max(len(s) for s in seqs)
    ids = np.full((len(seqs), width), pad_id, dtype=np.int64)
    valid = np.zeros((len(seqs), width), dtype=bool)
    offsets = []
    for i, s in enumerate(seqs):
        start = _offset(side, width, len(s))
        ids[i, start : start + len(s)] = s
        valid[i, start : start + len(s)] = True
        offsets.append(start)
    return ids, valid, offsets


def _score_seq2seq(
    hf: PreTrainedModel,
    encoded: EncodedStates,
    side: PaddingSide,
    pad_id: int,
    logprobs: bool,
    head_dtype: torch.dtype | None = None,
) -> Scores:
    device = hf.device
    enc_ids, enc_valid, _ = _pad_rows(encoded.prompt_ids, side, pad_id)
    enc_mask = torch.from_numpy(enc_valid).to(device=device, dtype=torch.long)
    memory = hf.get_encoder()(
        input_ids=torch.from_numpy(enc_ids).to(device), attention_mask=enc_mask
    ).last_hidden_state
    start_id = _decoder_start(hf)
    # One decoder sequence per candidate, plus a start-only one for each state
    # without candidates (its state features still need a decoder position).
    seqs: list[list[int]] = []
    owner: list[int] = []
    for b, cands in enumerate(encoded.candidate_ids):
        for cand in cands or [[]]:
            seqs.append([start_id, *cand])
            owner.append(b)
    dec_ids, dec_valid, offsets = _pad_rows(seqs, side, pad_id)
    rows = _Rows.empty()
    cand_index = 0
    seen: set[int] = set()
    for i, (seq, b, start) in enumerate(zip(seqs, owner, offsets, strict=True)):
        if b not in seen:
            seen.add(b)
            rows.state_rows.append((i, start))
        n = len(seq) - 1
        if n == 0:
            continue
        for j in range(n):
            rows.token_row.append(len(rows.lm_rows))
            rows.lm_rows.append((i, start + j))
            rows.token_target.append(seq[j + 1])
            rows.token_cand.append(cand_index)
        rows.feature_rows.append((i, start + n))
        cand_index += 1
    owner_t = torch.tensor(owner, dtype=torch.long, device=device)
    dec_valid_t = torch.from_numpy(dec_valid).to(device)
    hidden = hf.get_decoder()(  # type: ignore[no-untyped-call]
        input_ids=torch.from_numpy(dec_ids).to(device),
        attention_mask=additive_mask(_causal_allowed(dec_valid_t), mask_dtype(hf)),
        encoder_hidden_states=memory.index_select(0, owner_t),
        encoder_attention_mask=enc_mask.index_select(0, owner_t),
        use_cache=False,
    ).last_hidden_state
    positions = enc_ids.size + dec_ids.size
    real = int(enc_valid.sum() + dec_valid.sum())
    return _finish(hf, hidden, rows, encoded.counts, logprobs, (positions, real), head_dtype)


def _decoder_start(hf: PreTrainedModel) -> int:
    start = getattr(hf.config, "decoder_start_token_id", None)
    if start is None:
        start = getattr(hf.config, "pad_token_id", None)
    if start is None:
        raise ScoringInputError(f"{type(hf).__name__} has no decoder_start_token_id")
    return int(start)
