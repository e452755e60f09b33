"""How much a state's scores depend on the batch it is computed in, with and without the cache.

Under bf16 autocast every matrix product rounds its output to bfloat16, so a state
scored in a batch of 8 and in a batch of 32 (another packed width, other kernels'
blocking) can differ after 30 layers by much more than float32's last bits. This
measures that noise for the model's own forward (the path without frozen layers:
the collector acts in small batches, the learner recomputes in large ones) and for
the frozen-layer cache (rows cached by acting 8 at a time, read in a batch of 32),
on SmolLM2 in bf16 and in float32, so the cache's difference is read against it.

    .venv/bin/python bench/batch_noise.py [--states 32] [--chunk 8]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from autotelic.learners.layout import CandidateLayout
from autotelic.learners.models import ModelConfig, load_model
from autotelic.learners.prompt import build_prompts
from autotelic.learners.scorer import Scorer, Scores
from bench.frozen_layers import compare
from bench.scoring import real_transitions


def chunked(scorer: Scorer, texts: list[str], cands: list[list[str]], chunk: int) -> None:
    """Score the states ``chunk`` at a time, as the collector does (fills the cache)."""
    for start in range(0, len(texts), chunk):
        with torch.inference_mode():
            scorer.score(texts[start : start + chunk], cands[start : start + chunk])


def in_chunks(scorer: Scorer, texts: list[str], cands: list[list[str]], chunk: int) -> Scores:
    parts = []
    for start in range(0, len(texts), chunk):
        with torch.no_grad():
            parts.append(scorer.score(texts[start : start + chunk], cands[start : start + chunk]))
    return Scores(
        logprobs=torch.cat([p.logprobs for p in parts]),
        features=torch.cat([p.features for p in parts]),
        state_features=torch.cat([p.state_features for p in parts]),
        layout=CandidateLayout.of([len(c) for c in cands], parts[0].logprobs.device),
        num_positions=0,
        num_tokens=0,
        token_counts=None,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--states", type=int, default=32)
    parser.add_argument("--chunk", type=int, default=8)
    parser.add_argument("--frozen", type=int, default=29)
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = real_transitions(args.states, 6000)
    texts = build_prompts(data.goals, data.observations)
    cands = [list(c) for c in data.candidates]
    for autocast in ("bfloat16", "off"):
        model = load_model(
            ModelConfig(path="smollm2", autocast=autocast, frozen_layers=args.frozen)
        )
        scorer = Scorer(model)
        scorer.split_frozen = False
        with torch.no_grad():
            whole = scorer.score(texts, cands)  # the model's own forward, one batch
        small = in_chunks(scorer, texts, cands, args.chunk)
        print(
            f"{autocast:>8}: own forward, batches of {args.chunk} vs one of {args.states}: "
            f"{compare(small, whole)}"
        )
        scorer.split_frozen = True
        chunked(scorer, texts, cands, args.chunk)
        with torch.no_grad():
            cached = scorer.score(texts, cands)
        print(
            f"{autocast:>8}: rows cached {args.chunk} at a time, read in one batch of "
            f"{args.states}, vs own forward on that batch: {compare(cached, whole)}"
        )


if __name__ == "__main__":
    main()
