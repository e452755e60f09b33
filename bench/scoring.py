"""One-pass candidate scoring against one sequence per (prompt, candidate), on SmolLM2-135M.

Real Playground-Text states (prompts from ``build_prompt``, admissible actions as
candidates), the packaged SmolLM2-135M-Instruct with LoRA, float32 on the CPU.
Compared side by side in one run, interleaved, medians over repeats:

(a) actor scoring (inference, what the collector does per step): the one-pass
    scorer against one sequence per (prompt, candidate). Both apply the LM head
    only to the rows that predict candidate tokens, so the ratio isolates the
    packing (the authors' code also computes full-vocabulary logits everywhere);
(b) a whole SAC step's forward + backward (log-probs and Q values for the batch,
    pi and target Q for its next states): this learner against the authors'
    design, where the actor scores one sequence per (prompt, candidate) and the
    critic runs one more forward per (prompt + action), online on the states
    and with the target adapter on the next states. Reported for this learner
    with and without the target adapter (without: target features come from the
    pass that gives pi(a'|s'));
(c) the full SAC update (forward, backward, optimiser steps) for batches of 64
    and 256 transitions;
(d) precision: the full SAC update in float32 against bfloat16 autocast
    (``model.autocast``), same initial weights and same batches, interleaved:
    wall and CPU time per update, the losses of each update, and the policies
    after the updates (log pi and pi on fresh states).

"tokens" counts the positions the model computed, padding included (what time
tracks); "real" excludes padding. Peak memory is the rise of the process's
resident-set high-water mark during one call (reset before each variant). The
machine is shared and noisy: take absolute times as indicative, ratios as the
result.

    .venv/bin/python bench/scoring.py [--states 16] [--sac-states 8] [--repeats 3]
                                      [--update-sizes 64 256] [--micro-batch 32]
                                      [--sections a b c d] [--precision-size 64]
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch

from autotelic.core import TransitionBatch
from autotelic.envs.playground import PlaygroundConfig, make_batch
from autotelic.learners import sac_math
from autotelic.learners.models import ModelConfig, PolicyModel, load_model
from autotelic.learners.prompt import build_prompt, build_prompts
from autotelic.learners.sac import SACConfig, SACLearner
from autotelic.learners.scorer import Scorer, Scores
from autotelic.testing.naive_scorer import naive_score

GAMMA = 0.99
T = TypeVar("T")


# ---------------------------------------------------------------- data


def real_transitions(num: int, seed: int, objects: int = 4, steps: int = 12) -> TransitionBatch:
    """``num`` one-step transitions drawn from random-policy rollouts of 32 Playground-Text
    envs over ``steps`` steps (a replay buffer's mix of fresh and later states); scenes of
    ``objects`` objects (the env's default is 4, which gives about 4 actions per state).
    An env whose episode ends starts the next one on a goal it samples."""
    envs = make_batch(PlaygroundConfig(n_objects=objects), num_envs=32)
    every = list(range(envs.num_envs))
    states = envs.reset(every, [None] * len(every), seeds=[seed + i for i in every])
    rng = random.Random(seed)
    pool: list[tuple[str, str, list[str], int, float, str, list[str], bool]] = []
    for _ in range(steps):
        actions = [rng.randrange(len(state.actions)) for state in states]
        results = envs.step(every, actions)
        for state, action, result in zip(states, actions, results, strict=True):
            pool.append(
                (
                    state.goal,
                    state.observation,
                    list(state.actions),
                    action,
                    result.reward,
                    result.state.observation,
                    [] if result.terminated else list(result.state.actions),
                    result.terminated,
                )
            )
        states = [result.state for result in results]
        ended = [i for i, result in enumerate(results) if result.done]
        for i, state in zip(ended, envs.reset(ended, [None] * len(ended)), strict=True):
            states[i] = state
    rows = rng.sample(pool, num) if num <= len(pool) else rng.choices(pool, k=num)
    return TransitionBatch(
        goals=[r[0] for r in rows],
        observations=[r[1] for r in rows],
        candidates=[r[2] for r in rows],
        actions=np.array([r[3] for r in rows], dtype=np.int64),
        rewards=np.array([r[4] for r in rows], dtype=np.float32),
        discounts=np.full(num, GAMMA, dtype=np.float32),
        next_observations=[r[5] for r in rows],
        next_candidates=[r[6] for r in rows],
        terminated=np.array([r[7] for r in rows], dtype=np.bool_),
    )


def prompts(batch: TransitionBatch) -> list[str]:
    """What the policy reads for each row: its goal and its observation."""
    return build_prompts(batch.goals, batch.observations)


# ---------------------------------------------------------------- measuring


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1])
    return 0


def measured(fn: Callable[[], T]) -> tuple[T, float, float]:
    """``fn()``, its wall time, and the rise of the resident-set high-water mark (Linux)."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        Path("/proc/self/clear_refs").write_text("5")
        start = _rss_kib("VmRSS")
    except OSError:
        start = -1
    began = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - began
    peak = (_rss_kib("VmHWM") - start) / 1024 if start >= 0 else float("nan")
    return result, seconds, peak


@dataclass
class Variant:
    name: str
    run: Callable[[], tuple[int, int]]
    """Runs once; returns (positions computed, real tokens)."""
    times: list[float]
    tokens: tuple[int, int] = (0, 0)
    peak_mib: float = float("nan")


def compare(variants: list[Variant], repeats: int) -> None:
    """Warm-up + memory pass for each variant, then interleaved timed repeats."""
    for v in variants:
        v.tokens, _, v.peak_mib = measured(v.run)
    for _ in range(repeats):
        for v in variants:
            began = time.perf_counter()
            v.run()
            v.times.append(time.perf_counter() - began)


def report(title: str, variants: list[Variant], baseline: str) -> None:
    print(title)
    print(f"  {'variant':<44} {'tokens':>8} {'real':>8} {'median s':>9} {'peak MiB':>9}")
    for v in variants:
        print(
            f"  {v.name:<44} {v.tokens[0]:>8} {v.tokens[1] or '-':>8} "
            f"{statistics.median(v.times):>9.3f} {v.peak_mib:>9.0f}"
        )
    base = next(v for v in variants if v.name == baseline)
    for v in variants:
        if v is base:
            continue
        print(
            f"  {baseline} / {v.name}: tokens {base.tokens[0] / v.tokens[0]:.2f}x, "
            f"time {statistics.median(base.times) / statistics.median(v.times):.2f}x, "
            f"peak memory {base.peak_mib / max(v.peak_mib, 1e-9):.2f}x"
        )


# ---------------------------------------------------------------- (a) actor scoring


def actor_scoring(learner: SACLearner, batch: TransitionBatch, repeats: int) -> None:
    model = learner.model
    texts, cands = prompts(batch), batch.candidates

    def one_pass() -> tuple[int, int]:
        with torch.inference_mode():
            s = learner.scorer.score(texts, cands)
        return s.num_positions, s.num_tokens

    def per_pair() -> tuple[int, int]:
        with torch.inference_mode():
            s = naive_score(model, texts, cands)
        return s.num_positions, s.num_tokens

    variants = [
        Variant("one sequence per (prompt, candidate)", per_pair, []),
        Variant("one pass per state", one_pass, []),
    ]
    compare(variants, repeats)
    report(
        f"(a) actor scoring, {len(texts)} states, "
        f"{sum(len(c) for c in cands)} candidates (inference)",
        variants,
        variants[0].name,
    )


# ---------------------------------------------------------------- (b) SAC step


def authors_step(
    learner: SACLearner, model: PolicyModel, batch: TransitionBatch
) -> tuple[int, int]:
    """Forward + backward of a SAC step in the authors' design (no optimiser step)."""
    alpha = learner.alpha
    texts = prompts(batch)
    actor = naive_score(model, texts, batch.candidates)
    critic_in = naive_score(model, texts, batch.candidates, logprobs=False)
    q_all = learner.critic(critic_in.features)
    positions = actor.num_positions + critic_in.num_positions
    real = actor.num_tokens + critic_in.num_tokens
    live = [i for i, t in enumerate(batch.terminated) if not t]
    values = torch.zeros(len(batch))
    if live:
        nxt_p = [build_prompt(batch.goals[i], batch.next_observations[i]) for i in live]
        nxt_c = [batch.next_candidates[i] for i in live]
        with torch.no_grad():
            nxt = naive_score(model, nxt_p, nxt_c)
            target_in = naive_score(model, nxt_p, nxt_c, logprobs=False, module=learner.twin)
            q_targ = learner.critic_target(target_in.features)
            values[live] = sac_math.soft_values(nxt.layout, nxt.log_pi, q_targ, alpha)
        positions += nxt.num_positions + target_in.num_positions
        real += nxt.num_tokens + target_in.num_tokens
    y = sac_math.td_targets(
        torch.from_numpy(batch.rewards),
        torch.from_numpy(batch.discounts),
        torch.from_numpy(batch.terminated),
        values,
    )
    taken = actor.layout.flat_index(torch.from_numpy(batch.actions))
    loss = sac_math.critic_loss(q_all[:, taken], y) + sac_math.actor_loss(
        actor.layout, actor.log_pi, q_all, alpha
    )
    loss.backward()  # type: ignore[no-untyped-call]
    learner.zero_grad()
    return positions, real


def sac_step(learners: dict[str, SACLearner], batch: TransitionBatch, repeats: int) -> None:
    main = learners["target adapter"]

    def ours(learner: SACLearner) -> Callable[[], tuple[int, int]]:
        def run() -> tuple[int, int]:
            stats = learner.compute_gradients(batch)
            learner.zero_grad()
            return int(stats["tokens"]), 0

        return run

    variants = [
        Variant(
            "authors: actor per pair + critic per (p+a)",
            lambda: authors_step(main, main.model, batch),
            [],
        ),
        Variant("one pass, target adapter (default)", ours(main), []),
        Variant("one pass, no target adapter", ours(learners["no target adapter"]), []),
    ]
    compare(variants, repeats)
    live = int((~batch.terminated).sum())
    report(
        f"(b) SAC step forward+backward, {len(batch)} transitions ({live} bootstrapped)",
        variants,
        variants[0].name,
    )


# ---------------------------------------------------------------- (c) updates


def update_times(learner: SACLearner, sizes: list[int], seed: int) -> None:
    print(f"\n(c) full SAC update (micro-batch {learner.config.micro_batch_size}), single runs")
    for size in sizes:
        batch = real_transitions(size, seed + size)
        stats, seconds, peak = measured(partial(learner.update, batch))
        print(
            f"  batch {size:>4}: {seconds:7.2f} s per update, {1000 * seconds / size:6.1f} ms per "
            f"transition, {int(stats['tokens'])} tokens, peak +{peak:.0f} MiB, "
            f"critic loss {stats['critic_loss']:.4f}"
        )


def precision(size: int, repeats: int, seed: int, threads: int) -> None:
    """(d) One SAC update of ``size`` transitions in float32 and under bf16 autocast."""
    names = ("float32", "bfloat16 autocast")
    models = [load_model(ModelConfig(path="smollm2", autocast=a)) for a in ("off", "bfloat16")]
    config = SACConfig(critic_warmup_updates=0)
    learners = [SACLearner(m, config) for m in models]  # same seeds: same initial weights
    print(
        f"\n(d) precision: full SAC update of {size} transitions, {threads} thread(s); "
        f"{names[1]}: {models[1].autocast_dtype}, attention "
        f"{models[1].hf.config._attn_implementation}"
    )
    walls: list[list[float]] = [[], []]
    cpus: list[list[float]] = [[], []]
    stats: list[list[dict[str, float]]] = [[], []]
    warm = real_transitions(8, seed + 99)
    for learner in learners:  # warm-up: allocator, kernels; then undo nothing (same for both)
        learner.compute_gradients(warm)
        learner.zero_grad()
    for r in range(repeats):
        batch = real_transitions(size, seed + 1000 + r)
        order = (0, 1) if r % 2 == 0 else (1, 0)
        for i in order:
            began, cpu = time.perf_counter(), time.process_time()
            stats[i].append(learners[i].update(batch))
            walls[i].append(time.perf_counter() - began)
            cpus[i].append(time.process_time() - cpu)
    for i, name in enumerate(names):
        print(
            f"  {name:<20} wall {statistics.median(walls[i]):7.2f} s  "
            f"cpu {statistics.median(cpus[i]):7.2f} s per update (median of {repeats})"
        )
    wall_ratio = statistics.median(walls[0]) / statistics.median(walls[1])
    cpu_ratio = statistics.median(cpus[0]) / statistics.median(cpus[1])
    print(f"  float32 / bfloat16: wall {wall_ratio:.2f}x, cpu {cpu_ratio:.2f}x")
    print("  largest difference over the updates (float32 value of that update):")
    for key in ("critic_loss", "actor_loss", "target_mean", "entropy", "log_pi_taken"):
        worst = max(
            zip(stats[0], stats[1], strict=True), key=lambda ab: abs(ab[1][key] - ab[0][key])
        )
        gap = abs(worst[1][key] - worst[0][key])
        print(
            f"    {key:<14} {gap:.4f} ({gap / max(abs(worst[0][key]), 1e-8):.1%} "
            f"of {worst[0][key]:.4f})"
        )
    fresh = real_transitions(32, seed + 5000)
    texts, cands = prompts(fresh), fresh.candidates
    # The bf16-trained adapters read by a float32 model: drift from training, not rounding.
    reader = load_model(ModelConfig(path="smollm2", autocast="off"))
    with torch.no_grad():
        for (_, param), trained in zip(
            reader.trainable_parameters(), learners[1].llm_params, strict=True
        ):
            param.copy_(trained)
        scored = [learner.scorer.score(texts, cands) for learner in learners]
        drift = Scorer(reader).score(texts, cands)
    _compare("policies after the updates (each in its precision)", scored[0], scored[1])
    _compare("bf16-trained adapters read in float32", scored[0], drift)


def _compare(title: str, a: Scores, b: Scores) -> None:
    diff = (a.log_pi - b.log_pi).abs()
    pi = (a.log_pi.exp() - b.log_pi.exp()).abs()
    print(
        f"  {title}: |d log pi| max {float(diff.max()):.3f} mean {float(diff.mean()):.3f}, "
        f"|d pi| max {float(pi.max()):.3f}"
    )


def describe(learner: SACLearner, batch: TransitionBatch, objects: int) -> None:
    lengths = [len(learner.scorer.encoder.prompt(p)) for p in prompts(batch)]
    cand_tokens = [len(learner.scorer.encoder.candidate(a)) for c in batch.candidates for a in c]
    print(
        f"\nscenes of {objects} objects: prompts {min(lengths)}-{max(lengths)} tokens, "
        f"{statistics.mean(len(c) for c in batch.candidates):.1f} candidates per state of "
        f"{min(cand_tokens)}-{max(cand_tokens)} tokens"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--states", type=int, default=8, help="states for (a)")
    parser.add_argument(
        "--objects", type=int, nargs="*", default=[4, 8], help="scene sizes for (a)"
    )
    parser.add_argument("--sac-states", type=int, default=6, help="transitions for (b)")
    parser.add_argument(
        "--sac-objects", type=int, nargs="*", default=[4], help="scene sizes for (b)"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--update-sizes", type=int, nargs="*", default=[64, 256])
    parser.add_argument("--micro-batch", type=int, default=32, help="rows per chunk in (c)")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads; 1 by default: on a shared 2-core machine two OpenMP threads "
        "stall waiting for each other whenever the cores are busy elsewhere",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--sections", nargs="*", choices=["a", "b", "c", "d"], default=["a", "b", "c", "d"]
    )
    parser.add_argument("--precision-size", type=int, default=64, help="batch of (d)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if "d" in args.sections:
        precision(args.precision_size, args.repeats, args.seed, args.threads)
    if not set(args.sections) & {"a", "b", "c"}:
        return
    model = load_model(ModelConfig(path="smollm2", autocast="off"))  # (d) compares precisions
    common = {"critic_warmup_updates": 0, "micro_batch_size": args.micro_batch}
    learners = {
        "target adapter": SACLearner(model, SACConfig(**common)),
        "no target adapter": SACLearner(model, SACConfig(target_llm=False, **common)),
    }
    print(
        f"SmolLM2-135M-Instruct, LoRA r=16 on q/v, float32, {model.device}, "
        f"{torch.get_num_threads()} threads; medians of {args.repeats} (shared machine: noisy)"
    )
    for objects in args.objects if "a" in args.sections else []:
        batch_a = real_transitions(args.states, args.seed, objects)
        describe(learners["target adapter"], batch_a, objects)
        actor_scoring(learners["target adapter"], batch_a, args.repeats)
    for objects in args.sac_objects if "b" in args.sections else []:
        batch_b = real_transitions(args.sac_states, args.seed + 1, objects)
        describe(learners["target adapter"], batch_b, objects)
        sac_step(learners, batch_b, args.repeats)
    if args.update_sizes and "c" in args.sections:
        update_times(learners["target adapter"], args.update_sizes, args.seed)


if __name__ == "__main__":
    main()
