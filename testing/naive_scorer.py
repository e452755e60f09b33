"""The plain reference: one sequence per (prompt, candidate) pair.

This is how candidate scoring is usually done (and how the authors' code does
it): every pair is a separate row, the prompt is recomputed for every candidate.
It is kept as the yardstick the one-pass scorer must agree with, and as the
baseline of ``bench/scoring.py``.

With ``full_logits=True`` it goes through the model's own forward and takes the
logits it returns at every position, sharing nothing with the one-pass scorer's
LM-head shortcut: the tests use that mode as an independent check.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn
from transformers import PreTrainedModel

from autotelic.learners.encoding import EncodedStates, StateEncoder, padding_id
from autotelic.learners.layout import CandidateLayout
from autotelic.learners.models import PolicyModel, hf_model
from autotelic.learners.scorer import (
    PackedStates,
    PaddingSide,
    Scores,
    _decoder_start,
    _pad_rows,
    apply_candidate_score,
    lm_log_probs,
)
from autotelic.learners.scorer import (
    _offset as offset,
)
from autotelic.learners.scorer import (
    _Rows as Rows,
)


@dataclass
class _Pair:
    state: int
    prompt: list[int]
    candidate: list[int]


@dataclass
class _Forward:
    """One chunk's forward pass and, per pair, the rows its outputs are read from."""

    hidden: Tensor
    logits: Tensor | None
    """Full-vocabulary logits at every position (``full_logits`` only)."""
    predict: list[list[tuple[int, int]]]
    """Rows predicting each candidate token."""
    targets: list[list[int]]
    features: list[Tensor]
    states: list[Tensor]
    positions: int
    real: int


def naive_score(
    model: PolicyModel,
    prompts: Sequence[str],
    candidates: Sequence[Sequence[str]],
    *,
    padding_side: PaddingSide = "right",
    batch_size: int | None = None,
    full_logits: bool = False,
    logprobs: bool = True,
    module: nn.Module | None = None,
) -> Scores:
    """Score each (prompt, candidate) pair as its own sequence; same outputs as the scorer.

    ``batch_size`` bounds how many pair sequences go through the model at once
    (None: all). States without candidates get a prompt-only row so that their
    state features exist. ``logprobs=False`` skips the LM head (features only,
    as a critic forward over (prompt + action) would).
    """
    encoder = StateEncoder(model.tokenizer, seq2seq=model.kind == "seq2seq")
    encoded = encoder.encode(prompts, candidates)
    hf = hf_model(module if module is not None else model.module)
    pad_id = padding_id(model.tokenizer)
    pairs = _pairs(encoded)
    size = batch_size or len(pairs)
    parts = [
        _run_chunk(
            hf,
            model.kind == "seq2seq",
            pairs[i : i + size],
            padding_side,
            pad_id,
            full_logits,
            logprobs,
        )
        for i in range(0, len(pairs), size)
    ]
    summed = torch.cat([p[0] for p in parts])
    features = torch.cat([p[1] for p in parts])
    state_feat = torch.cat([p[2] for p in parts])
    has_cand = torch.tensor([bool(p.candidate) for p in pairs], device=summed.device)
    first_of_state = torch.tensor(
        [i == 0 or pairs[i - 1].state != pairs[i].state for i in range(len(pairs))],
        device=summed.device,
    )
    scores = Scores(
        logprobs=summed[has_cand],
        features=features[has_cand],
        state_features=state_feat[first_of_state],
        layout=CandidateLayout.of(encoded.counts, summed.device),
        num_positions=sum(p[3] for p in parts),
        num_tokens=sum(p[4] for p in parts),
    )
    return apply_candidate_score(scores, encoded, model)


def _pairs(encoded: EncodedStates) -> list[_Pair]:
    pairs = []
    for b, (prompt, cands) in enumerate(
        zip(encoded.prompt_ids, encoded.candidate_ids, strict=True)
    ):
        for cand in cands or [[]]:
            pairs.append(_Pair(b, prompt, cand))
    return pairs


def _run_chunk(
    hf: PreTrainedModel,
    seq2seq: bool,
    pairs: list[_Pair],
    side: PaddingSide,
    pad_id: int,
    full_logits: bool,
    logprobs: bool,
) -> tuple[Tensor, Tensor, Tensor, int, int]:
    chunk = _seq2seq_chunk if seq2seq else _causal_chunk
    fwd = chunk(hf, pairs, side, pad_id, full_logits)
    if logprobs:
        scores = _token_logprobs(hf, fwd.hidden, fwd.logits, fwd.predict, fwd.targets)
    else:
        scores = torch.zeros(len(pairs), dtype=torch.float32, device=fwd.hidden.device)
    return (
        scores,
        torch.stack(fwd.features).float(),
        torch.stack(fwd.states).float(),
        fwd.positions,
        fwd.real,
    )


def _token_logprobs(
    hf: PreTrainedModel,
    hidden: Tensor,
    logits: Tensor | None,
    predict_rows: list[list[tuple[int, int]]],
    targets: list[list[int]],
) -> Tensor:
    """Sum over each pair's tokens of log p(token | what precedes it)."""
    device = hidden.device
    rows = [r for pair_rows in predict_rows for r in pair_rows]
    owner = [i for i, pair_rows in enumerate(predict_rows) for _ in pair_rows]
    flat_targets = [t for tgt in targets for t in tgt]
    total = torch.zeros(len(predict_rows), dtype=torch.float32, device=device)
    if not rows:
        return total
    index = torch.tensor(rows, dtype=torch.long, device=device)
    if logits is not None:
        logp = torch.log_softmax(logits[index[:, 0], index[:, 1]].float(), dim=-1)
    else:
        logp = lm_log_probs(hf, hidden[index[:, 0], index[:, 1]])
    picked = logp[torch.arange(len(rows), device=device), torch.tensor(flat_targets, device=device)]
    return total.index_add(0, torch.tensor(owner, device=device), picked)


def _causal_chunk(
    hf: PreTrainedModel,
    pairs: list[_Pair],
    side: PaddingSide,
    pad_id: int,
    full_logits: bool,
) -> _Forward:
    ids, valid, offsets = _pad_rows([p.prompt + p.candidate for p in pairs], side, pad_id)
    pos = np.clip(np.cumsum(valid, axis=1) - 1, 0, None)
    device = hf.device
    args = {
        "input_ids": torch.from_numpy(ids).to(device),
        "attention_mask": torch.from_numpy(valid.astype(np.int64)).to(device),
        "position_ids": torch.from_numpy(pos).to(device),
        "use_cache": False,
    }
    logits: Tensor | None = None
    if full_logits:
        out = hf(**args, output_hidden_states=True)
        logits, hidden = out.logits, out.hidden_states[-1]
    else:
        hidden = hf.base_model(**args).last_hidden_state
    predict, targets, feats, states = [], [], [], []
    for i, (pair, start) in enumerate(zip(pairs, offsets, strict=True)):
        plen, n = len(pair.prompt), len(pair.candidate)
        predict.append([(i, start + plen - 1 + j) for j in range(n)])
        targets.append(pair.candidate)
        feats.append(hidden[i, start + plen + n - 1])
        states.append(hidden[i, start + plen - 1])
    return _Forward(hidden, logits, predict, targets, feats, states, ids.size, int(valid.sum()))


def _seq2seq_chunk(
    hf: PreTrainedModel,
    pairs: list[_Pair],
    side: PaddingSide,
    pad_id: int,
    full_logits: bool,
) -> _Forward:
    device = hf.device
    enc_ids, enc_valid, _ = _pad_rows([p.prompt for p in pairs], side, pad_id)
    start_id = _decoder_start(hf)
    # The decoder is right-padded: HF's own decoder mask would leave left
    # padding rows attending to nothing.
    dec_ids, dec_valid, _ = _pad_rows([[start_id, *p.candidate] for p in pairs], "right", pad_id)
    args = {
        "input_ids": torch.from_numpy(enc_ids).to(device),
        "attention_mask": torch.from_numpy(enc_valid.astype(np.int64)).to(device),
        "decoder_input_ids": torch.from_numpy(dec_ids).to(device),
        "decoder_attention_mask": torch.from_numpy(dec_valid.astype(np.int64)).to(device),
        "use_cache": False,
    }
    logits: Tensor | None = None
    if full_logits:
        out = hf(**args, output_hidden_states=True)
        logits, hidden = out.logits, out.decoder_hidden_states[-1]
    else:
        memory = hf.get_encoder()(
            input_ids=args["input_ids"], attention_mask=args["attention_mask"]
        ).last_hidden_state
        hidden = hf.get_decoder()(  # type: ignore[no-untyped-call]
            input_ids=args["decoder_input_ids"],
            attention_mask=args["decoder_attention_mask"],
            encoder_hidden_states=memory,
            encoder_attention_mask=args["attention_mask"],
            use_cache=False,
        ).last_hidden_state
    predict = [[(i, j) for j in range(len(p.candidate))] for i, p in enumerate(pairs)]
    targets = [p.candidate for p in pairs]
    feats = [hidden[i, len(p.candidate)] for i, p in enumerate(pairs)]
    states = [hidden[i, 0] for i in range(len(pairs))]
    positions = enc_ids.size + dec_ids.size
    real = int(enc_valid.sum() + dec_valid.sum())
    return _Forward(hidden, logits, predict, targets, feats, states, positions, real)


def pack_states_per_row(encoded: EncodedStates, side: PaddingSide, pad_id: int) -> PackedStates:
    """The per-token loop :func:`~autotelic.learners.scorer.pack_states` replaced: the
    reference its index arithmetic is checked against, and the baseline of its gain."""
    lengths = [
        len(p) + sum(len(c) for c in cands)
        for p, cands in zip(encoded.prompt_ids, encoded.candidate_ids, strict=True)
    ]
    width = max(lengths)
    batch = len(lengths)
    ids = np.full((batch, width), pad_id, dtype=np.int64)
    pos = np.zeros((batch, width), dtype=np.int64)
    seg = np.full((batch, width), -1, dtype=np.int64)
    rows = Rows.empty()
    cand_index = 0
    for b, (prompt, cands) in enumerate(
        zip(encoded.prompt_ids, encoded.candidate_ids, strict=True)
    ):
        start = offset(side, width, lengths[b])
        plen = len(prompt)
        ids[b, start : start + plen] = prompt
        pos[b, start : start + plen] = np.arange(plen)
        seg[b, start : start + plen] = 0
        last_prompt = (b, start + plen - 1)
        rows.state_rows.append(last_prompt)
        prompt_lm_row = len(rows.lm_rows)
        rows.lm_rows.append(last_prompt)
        t = start + plen
        for k, cand in enumerate(cands):
            n = len(cand)
            ids[b, t : t + n] = cand
            pos[b, t : t + n] = plen + np.arange(n)
            seg[b, t : t + n] = k + 1
            # The first token is predicted by the last prompt row (shared by all
            # candidates, so its LM-head row is computed once); the others by
            # the candidate's own previous token.
            rows.token_row.append(prompt_lm_row)
            rows.token_target.append(cand[0])
            rows.token_cand.append(cand_index)
            for j in range(1, n):
                rows.token_row.append(len(rows.lm_rows))
                rows.lm_rows.append((b, t + j - 1))
                rows.token_target.append(cand[j])
                rows.token_cand.append(cand_index)
            rows.feature_rows.append((b, t + n - 1))
            t += n
            cand_index += 1
    return PackedStates(ids, pos, seg, rows, lengths, list(encoded.counts))
