"""How the actor's and the critic's gradients meet in the LLM body, and how alpha moves.

Runs one short SAC-GLAM learning run of an experiment file (as bench/experiment.py
does) with optional SAC overrides, and every ``--probe-every`` updates measures, on
the batch of that update and before it is applied, the actor loss's and the critic
loss's gradients on the LLM separately (norms before clipping, cosine) and what share
of the step each gets under the run's clipping. Every update's log alpha, entropy and
target entropy are kept too. Prints medians and ranges, and the final greedy success.

    .venv/bin/python bench/sac_gradients.py --config bench/configs/cpu.yaml --budget 2000 \\
        --set grad_clip=joint --set critic_body_grad_scale=1.0
"""

from __future__ import annotations

import argparse
import csv
import itertools
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from autotelic.core import TransitionBatch
from autotelic.learners import sac_math
from autotelic.learners.sac import SACLearner
from autotelic.runtime.config import Settings
from autotelic.runtime.loop.agent import Agent

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.experiment import Recorder, build_settings


def probe(learner: SACLearner, batch: TransitionBatch) -> dict[str, float]:
    """The per-loss gradient statistics of ``batch`` at the current weights (no step)."""
    config = learner.config
    learner.config = config.model_copy(update={"grad_clip": "per_loss"})
    try:
        stats = learner.compute_gradients(batch)
    finally:
        learner.zero_grad()
        learner.config = config
    a, c = stats["actor_llm_grad_norm"], stats["critic_llm_grad_norm"]
    scale = config.critic_body_grad_scale if config.critic_trains_llm else 0.0
    if config.grad_clip == "per_loss":
        ka = sac_math.clip_coefficient(a, config.max_grad_norm)
        kc = sac_math.clip_coefficient(c, config.max_grad_norm)
        share = ka * a / (ka * a + scale * kc * c)
    else:
        share = a / (a + scale * c)
    return {"actor": a, "critic": c, "cosine": stats["llm_grad_cosine"], "share": share}


def time_gradients(learner: SACLearner, batch: TransitionBatch, repeats: int) -> None:
    """CPU seconds of one update's forward and backward passes on ``batch``, with the
    LLM's gradient clipped jointly and per loss (interleaved; no step is taken)."""
    config = learner.config
    seconds: dict[str, list[float]] = {"joint": [], "per_loss": []}
    try:
        for _ in range(repeats):
            for mode, times in seconds.items():
                learner.config = config.model_copy(update={"grad_clip": mode})
                began = time.process_time()
                learner.compute_gradients(batch)
                times.append(time.process_time() - began)
                learner.zero_grad()
    finally:
        learner.config = config
    print(f"forward + backward of {len(batch)} transitions, CPU seconds (median of {repeats}):")
    for mode, times in seconds.items():
        print(f"  {mode:>8}: {statistics.median(times):.3f}")


class Watch:
    """Wraps the learner's ``update``: probes, then records the update's statistics."""

    def __init__(self, learner: SACLearner, probe_every: int) -> None:
        self.learner, self.probe_every = learner, probe_every
        self.inner = learner.update
        self.updates: list[dict[str, float]] = []
        self.probes: list[dict[str, float]] = []
        self.last_batch: TransitionBatch | None = None

    def __call__(self, batch: TransitionBatch, **kwargs: Any) -> dict[str, float]:
        if not self.learner.warming_up and self.learner.num_updates % self.probe_every == 0:
            self.probes.append(probe(self.learner, batch))
        self.last_batch = batch
        stats = self.inner(batch, **kwargs)
        stats["log_alpha_after"] = float(self.learner.log_alpha.detach())
        self.updates.append(stats)
        return stats


def spread(values: Sequence[float]) -> str:
    if not values:
        return "n/a"
    qs = statistics.quantiles(values, n=10) if len(values) > 1 else [values[0]] * 9
    return f"median {statistics.median(values):.3f} (10-90%: {qs[0]:.3f} to {qs[-1]:.3f})"


def report(watch: Watch, seconds: float) -> None:
    probes, updates = watch.probes, [u for u in watch.updates if not u["warmup"]]
    print(f"{len(watch.updates)} updates ({len(updates)} after warm-up), {seconds:.0f} s")
    for key in ("actor", "critic", "cosine", "share"):
        print(f"  {key:>7}: {spread([p[key] for p in probes])}  [{len(probes)} probes]")
    log_alpha = [u["log_alpha_after"] for u in updates]
    if log_alpha:
        moves = [abs(b - a) for a, b in itertools.pairwise(log_alpha)]
        print(
            f"  log alpha: {log_alpha[0]:.3f} -> {log_alpha[-1]:.3f}, range "
            f"{min(log_alpha):.3f} to {max(log_alpha):.3f}, mean |step| "
            f"{statistics.fmean(moves) if moves else 0.0:.4f}"
        )
        gaps = [u["entropy"] - u["target_entropy"] for u in updates]
        print(f"  entropy - target: {spread(gaps)}")
        print(f"  update seconds: {spread([u['update_seconds'] for u in updates])}")


def settings_with(args: argparse.Namespace, run_dir: Path) -> Settings:
    """The experiment's settings with the ``--set`` SAC overrides."""
    settings = build_settings(args.config, args.method, args.seed, args.budget, run_dir)
    updates = {k: yaml.safe_load(v) for k, v in (s.split("=", 1) for s in args.set)}
    # Validated again, so a typo or a bad value is refused.
    algorithm = type(settings.algorithm).model_validate(settings.algorithm.model_dump() | updates)
    changed: Settings = settings.model_copy(update={"algorithm": algorithm})
    return changed


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--method", default="sac-glam-her", choices=["sac-glam-her", "sac-glam"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budget", type=int, default=2000, help="env steps")
    parser.add_argument("--probe-every", type=int, default=10, help="updates between probes")
    parser.add_argument("--set", action="append", default=[], help="SAC option key=value")
    parser.add_argument("--time", type=int, default=0, help="time gradients N times at the end")
    parser.add_argument("--eval-episodes", type=int, default=2)
    parser.add_argument("--eval-envs", type=int, default=32)
    parser.add_argument("--out", type=Path, default=Path("bench/out/sac_gradients"))
    args = parser.parse_args(argv)
    label = "-".join([args.method, f"s{args.seed}", *args.set]).replace("=", "")
    args.out.mkdir(parents=True, exist_ok=True)
    settings = settings_with(args, args.out / "runs" / label)
    agent = Agent(settings)
    learner = agent.learner
    assert isinstance(learner, SACLearner)
    watch = Watch(learner, args.probe_every)
    learner.update = watch  # type: ignore[method-assign]
    began = time.perf_counter()
    try:
        agent.run_serial()
        report(watch, time.perf_counter() - began)
        if args.time and watch.last_batch is not None:
            time_gradients(learner, watch.last_batch, args.time)
        recorder = Recorder(args.out / f"{label}.csv", label, args.seed, settings, args)
        recorder(agent)
    finally:
        agent.close()
    with (args.out / f"{label}-updates.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, sorted({k for u in watch.updates for k in u}))
        writer.writeheader()
        writer.writerows(watch.updates)


if __name__ == "__main__":
    main()
