"""The SAC update of SmolLM2 with frozen lower layers, against the full recomputation.

One run, one thread, the variants taking turns on the same batches (real
Playground-Text transitions, as ``bench/scoring.py`` draws them), medians of wall
and CPU time per update of ``--size`` transitions:

* ``full``: the default model (LoRA on every layer, bf16 autocast): every update
  runs all 30 layers three times (next states online and with the target twin,
  states with gradients) and backward through all of them;
* ``top-k recompute``: ``model.frozen_layers = 30 - k`` without a cache: LoRA in the
  top k layers only, the lower layers run without gradients on every pass (the twin
  reads the online pass's);
* ``top-k cached``: the same with the activation cache, warmed as the collector warms
  it: the states and next states were acted on (scored under inference mode) before
  the update, so it runs only the top k layers;
* ``top-k cached + bf16 head``: the same with ``model.lm_head_autocast``.

Then, for the cached learner after its updates: its log pi and critic features read
from the cache against the same model's own forward over every layer (the full
recomputation of the same weights), on the updates' states and on fresh ones; the
bf16 head against the float32 head; and what the cache holds: bytes per state,
tokens per state, what 100k transitions would take, the process's peak memory.

    .venv/bin/python bench/frozen_layers.py [--top 2] [--size 64] [--repeats 3]
        [--large 256] [--out docs/results/frozen_layers.txt]
"""

from __future__ import annotations

import argparse
import gc
import resource
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from autotelic.core import TransitionBatch
from autotelic.learners.models import ModelConfig, load_model
from autotelic.learners.prompt import build_prompts
from autotelic.learners.sac import SACConfig, SACLearner
from autotelic.learners.scorer import Scorer, Scores
from autotelic.learners.split import num_layers
from bench.scoring import real_transitions

GIB = 2**30


@dataclass
class Variant:
    name: str
    learner: SACLearner
    warm: bool
    """Act on each batch's states first (what fills the cache in a run)."""
    walls: list[float] = field(default_factory=list)
    cpus: list[float] = field(default_factory=list)


def act_on(learner: SACLearner, batch: TransitionBatch) -> None:
    """Score the batch's states and live next states as the collector does when it acts."""
    states = build_prompts(batch.goals, batch.observations)
    live = [i for i, cands in enumerate(batch.next_candidates) if cands]
    nexts = build_prompts(
        [batch.goals[i] for i in live], [batch.next_observations[i] for i in live]
    )
    with torch.inference_mode():
        learner.policy.scorer.score(states, batch.candidates)
        learner.policy.scorer.score(nexts, [batch.next_candidates[i] for i in live])


def timed(fn: Callable[[], object]) -> tuple[float, float]:
    gc.collect()
    gc.disable()
    try:
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        return time.perf_counter() - wall, time.process_time() - cpu
    finally:
        gc.enable()


def compare(a: Scores, b: Scores) -> str:
    d_pi = (a.log_pi - b.log_pi).abs()
    scale = b.features.abs().max().clamp_min(1e-12)
    d_feat = (a.features - b.features).abs().max() / scale
    return (
        f"max |d log pi| {float(d_pi.max()):.3g} (mean {float(d_pi.mean()):.3g}), "
        f"max |d pi| {float((a.log_pi.exp() - b.log_pi.exp()).abs().max()):.3g}, "
        f"features max |d| / max |f| {float(d_feat):.3g}"
    )


def both_ways(
    scorer: Scorer, texts: list[str], candidates: list[list[str]]
) -> tuple[Scores, Scores]:
    """Scores through the split (cached where held) and the model's own forward."""
    with torch.no_grad():
        split = scorer.score(texts, candidates)
        scorer.split_frozen = False
        try:
            whole = scorer.score(texts, candidates)
        finally:
            scorer.split_frozen = True
    return split, whole


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--top", type=int, default=2, help="layers that train (k)")
    parser.add_argument("--size", type=int, default=64, help="transitions per update")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--large", type=int, default=256, help="a larger update (0: none)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-full", action="store_true", help="leave the baseline out")
    args = parser.parse_args()
    torch.set_num_threads(1)
    config = SACConfig(critic_warmup_updates=0)

    def learner(**model: object) -> SACLearner:
        return SACLearner(
            load_model(ModelConfig.model_validate({"path": "smollm2", **model})), config
        )

    base = load_model(ModelConfig(path="smollm2"))
    frozen = num_layers(base.hf) - args.top
    variants = (
        [] if args.skip_full else [Variant("full (all 30 layers)", SACLearner(base, config), False)]
    )
    del base
    k = args.top
    variants += [
        Variant(f"top-{k} recompute", learner(frozen_layers=frozen, activation_cache_mib=0), False),
        Variant(f"top-{k} cached", learner(frozen_layers=frozen), True),
        Variant(
            f"top-{k} cached + bf16 head",
            learner(frozen_layers=frozen, lm_head_autocast=True),
            True,
        ),
    ]
    print(
        f"SmolLM2-135M SAC update of {args.size} transitions, 1 thread, frozen_layers {frozen} "
        f"(top {k} of {frozen + k} train), {args.repeats} rounds, medians"
    )
    warm = real_transitions(8, args.seed + 99)
    for v in variants:  # allocator and kernels warm, the same for every variant
        v.learner.compute_gradients(warm)
        v.learner.zero_grad()
    batches = [real_transitions(args.size, args.seed + 1000 + r) for r in range(args.repeats)]
    for r, batch in enumerate(batches):
        order = variants if r % 2 == 0 else variants[::-1]
        for v in order:
            if v.warm:
                act_on(v.learner, batch)
            wall, cpu = timed(partial(v.learner.update, batch))
            v.walls.append(wall)
            v.cpus.append(cpu)
            print(f"  round {r} {v.name:<28} wall {wall:6.2f} s  cpu {cpu:6.2f} s", flush=True)
    print(
        f"\n  {'variant':<28} {'wall s':>8} {'cpu s':>8} {'ms/transition':>14} "
        f"{'vs first (cpu)':>15}"
    )
    first = statistics.median(variants[0].cpus)
    for v in variants:
        wall, cpu = statistics.median(v.walls), statistics.median(v.cpus)
        print(
            f"  {v.name:<28} {wall:8.2f} {cpu:8.2f} {1000 * cpu / args.size:14.1f} "
            f"{first / cpu:14.2f}x"
        )
    cached = next(v for v in variants if v.name == f"top-{k} cached")
    if args.large:
        big = real_transitions(args.large, args.seed + 7000)
        act_on(cached.learner, big)
        wall, cpu = timed(lambda: cached.learner.update(big))
        print(
            f"\n  fewer, larger updates: {cached.name}, {args.large} transitions: "
            f"wall {wall:.2f} s, "
            f"cpu {cpu:.2f} s, {1000 * cpu / args.large:.1f} ms/transition "
            f"(against {1000 * statistics.median(cached.cpus) / args.size:.1f} at {args.size})"
        )

    print("\n  exactness (the cached learner after its updates; same weights both ways)")
    fresh = real_transitions(32, args.seed + 5000)
    scorer = cached.learner.scorer
    for label, data in (("updates' states", batches[0]), ("fresh states", fresh)):
        texts = build_prompts(data.goals, data.observations)
        split, whole = both_ways(scorer, texts, data.candidates)
        print(f"    {label:<16} cached/split vs the model's own forward: {compare(split, whole)}")
    # Rows cached by acting on 8 states at a time, read in a batch of 32 of another order.
    other = real_transitions(32, args.seed + 6000)
    texts = build_prompts(other.goals, other.observations)
    for start in range(0, 32, 8):
        with torch.inference_mode():
            cached.learner.policy.scorer.score(
                texts[start : start + 8], other.candidates[start : start + 8]
            )
    split, whole = both_ways(scorer, texts[::-1], other.candidates[::-1])
    print(
        f"    {'acted 8 at a time':<16} cached/split vs the model's own forward: "
        f"{compare(split, whole)}"
    )
    head = next(v for v in variants if v.name.endswith("bf16 head")).learner
    texts = build_prompts(fresh.goals, fresh.observations)
    with torch.no_grad():
        rounded = head.scorer.score(texts, fresh.candidates)
        head.scorer.head_autocast = False  # the same weights, the head in float32
        plain = head.scorer.score(texts, fresh.candidates)
        head.scorer.head_autocast = True
    print(f"    bf16 head vs float32 head (same weights):      {compare(rounded, plain)}")

    cache = cached.learner.model.activations
    assert cache is not None
    per_state = cache.nbytes / max(len(cache), 1)
    tokens = per_state / (4 * cached.learner.model.hidden_size)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(
        f"\n  activation cache: {len(cache)} states, {cache.nbytes / 2**20:.1f} MiB, "
        f"{per_state / 1024:.1f} KiB per state (~{tokens:.0f} tokens x "
        f"{cached.learner.model.hidden_size} float32), hit rate {cache.stats.hit_rate:.2f}"
    )
    print(
        f"  100k transitions, every state cached once under its own goal: "
        f"{1e5 * per_state / GIB:.1f} GiB; the cache is bounded by model.activation_cache_mib "
        f"(default 2048 MiB: {2048 * 2**20 / per_state:,.0f} states), least recently used out"
    )
    print(f"  process peak RSS {peak:.2f} GiB ({len(variants)} models loaded)")


if __name__ == "__main__":
    main()
