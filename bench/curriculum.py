"""Curricula compared on a simulated learner whose goals have known difficulty.

The learner (``autotelic.testing.simulated``) stands in for the agent: on
Playground-Text's goals, grasping is mastered, growing a plant is learnt fast,
a herbivore slower, a carnivore slowest, and growing furniture is impossible.
Each curriculum (uniform sampling, per-goal LP, per-category bucket LP,
embedding LP over MiniLM) drives the real goal daemon for the same number of
episodes with the same seeds. Printed: total competence (mean success
probability over every goal) at a few points, episodes per goal by difficulty,
and the daemon's cost per 1000 episodes. A plot of competence over episodes is
saved (default bench/out/curriculum.png).

    .venv/bin/python bench/curriculum.py [--episodes 3000] [--seeds 5] [--out PATH]

Timings are wall-clock on a shared machine: indicative only.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from autotelic.envs.playground import PlaygroundGoalSpace
from autotelic.goals import CurriculumConfig, EmbeddingCache, EmbedFn, GoalDaemon, MiniLMEncoder
from autotelic.testing.simulated import (
    SimGoal,
    SimulatedLearner,
    SimulationTrace,
    playground_sim_goals,
    simulate,
    uniform_config,
)

CURRICULA = ("uniform", "goal", "bucket", "embedding")
PLAYGROUND = PlaygroundGoalSpace()
"""The goal space the simulated goals are drawn from."""
DIFFICULTIES = ("mastered", "learnable", "impossible")


@dataclass
class Result:
    """Every seed's trace for one curriculum, and the seconds each run took."""

    name: str
    traces: list[SimulationTrace]
    seconds: list[float]

    def competence(self) -> np.ndarray:
        return np.array([t.total_competence for t in self.traces])

    def shares(self, sims: list[SimGoal]) -> list[float]:
        """Episodes per goal of each difficulty, relative to a uniform share (1.0), seed mean."""
        kind = {g.text: g.difficulty for g in sims}
        return [
            statistics.mean(t.per_goal_share(kind, d) for t in self.traces) * len(sims)
            for d in DIFFICULTIES
        ]


def config_for(name: str, goals: list[str], seed: int) -> CurriculumConfig:
    if name == "uniform":
        return uniform_config(goals, seed=seed)
    return CurriculumConfig(configured_goals=goals, estimator=name, seed=seed)


def run(name: str, sims: list[SimGoal], args: argparse.Namespace, embed: EmbedFn | None) -> Result:
    goals = [g.text for g in sims]
    traces, seconds = [], []
    for seed in range(args.seeds):
        daemon = GoalDaemon(config_for(name, goals, seed), embed=embed, goal_space=PLAYGROUND)
        learner = SimulatedLearner(sims, seed=seed)
        start = time.perf_counter()
        traces.append(
            simulate(
                daemon,
                learner,
                episodes=args.episodes,
                batch=args.batch,
                measure_every=args.measure_every,
            )
        )
        seconds.append(time.perf_counter() - start)
    return Result(name, traces, seconds)


def print_table(
    results: list[Result],
    shares: dict[str, list[float]],
    sims: list[SimGoal],
    args: argparse.Namespace,
) -> None:
    kind = {g.text: g.difficulty for g in sims}
    xs = results[0].traces[0].episodes
    marks = sorted({len(xs) // 4, len(xs) // 2, 3 * len(xs) // 4, len(xs) - 1})
    ceiling = float(np.mean([0.0 if g.difficulty == "impossible" else g.ceiling for g in sims]))
    uniform = next((r for r in results if r.name == "uniform"), None)
    counts = ", ".join(f"{sum(k == d for k in kind.values())} {d}" for d in DIFFICULTIES)
    start = results[0].traces[0].total_competence[0]
    print(
        f"\n{len(sims)} goals ({counts}), {args.episodes} episodes, {args.seeds} seeds; "
        f"competence ceiling {ceiling:.3f}, start {start:.3f}"
    )
    print("total competence, mean ± std over seeds, at episode:")
    header = f"{'curriculum':<11}" + "".join(f"{xs[m]:>16}" for m in marks)
    header += f"{'gain vs unif.':>15}"
    print(header)
    if uniform is not None:
        base = uniform.competence()
        base_start = base[:, 0].mean()
        base_gain = max(base[:, -1].mean() - base_start, 1e-9)
    for r in results:
        comp = r.competence()
        row = f"{r.name:<11}"
        for m in marks:
            row += f"{comp[:, m].mean():>10.3f} ±{comp[:, m].std():.3f}"
        if uniform is not None:
            gain = (comp[:, -1].mean() - base_start) / base_gain
            row += f"{gain:>14.2f}x"
        print(row)
    print("\nepisodes per goal, relative to a uniform share (1.00), by difficulty; cost:")
    print(f"{'curriculum':<11}" + "".join(f"{d:>12}" for d in DIFFICULTIES) + f"{'s/1000 ep.':>14}")
    for r in results:
        row = f"{r.name:<11}"
        for share in shares[r.name]:
            row += f"{share:>12.2f}"
        cost = statistics.median(r.seconds) / args.episodes * 1000
        row += f"{cost:>14.3f}"
        print(row)
    print(
        "(gain: competence gained since the start, as a multiple of uniform's gain; "
        "timings are medians on a shared machine: indicative only)"
    )


def plot(results: list[Result], shares: dict[str, list[float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (curves, bars) = plt.subplots(
        1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [2, 1]}
    )
    for r in results:
        xs = r.traces[0].episodes
        comp = r.competence()
        mean, std = comp.mean(axis=0), comp.std(axis=0)
        curves.plot(xs, mean, label=r.name)
        curves.fill_between(xs, mean - std, mean + std, alpha=0.2)
    curves.set_xlabel("episodes")
    curves.set_ylabel("total competence (mean success probability)")
    curves.set_title("Competence over episodes (mean ± std over seeds)")
    curves.legend()
    curves.grid(alpha=0.3)
    width = 0.8 / len(results)
    for i, r in enumerate(results):
        bars.bar(np.arange(len(DIFFICULTIES)) + i * width, shares[r.name], width, label=r.name)
    bars.axhline(1.0, color="grey", linewidth=0.8)
    bars.set_xticks(np.arange(len(DIFFICULTIES)) + 0.4 - width / 2, DIFFICULTIES)
    bars.set_ylabel("episodes per goal / uniform share")
    bars.set_title("Where the episodes went")
    bars.legend(fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=int, default=3000)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=8, help="goals drawn per next_goals call")
    parser.add_argument("--measure-every", type=int, default=100)
    parser.add_argument("--split", choices=("train", "test", "all"), default="train")
    parser.add_argument(
        "--curricula",
        default=",".join(CURRICULA),
        help="comma-separated subset of " + ", ".join(CURRICULA),
    )
    parser.add_argument("--out", type=Path, default=Path("bench/out/curriculum.png"))
    args = parser.parse_args()
    names = [n.strip() for n in args.curricula.split(",") if n.strip()]
    unknown = set(names) - set(CURRICULA)
    if unknown:
        parser.error(f"unknown curricula {sorted(unknown)}; choose from {CURRICULA}")
    sims = playground_sim_goals(args.split)
    embed: Callable[..., np.ndarray] | None = None
    if "embedding" in names:
        start = time.perf_counter()
        embed = EmbeddingCache(MiniLMEncoder())
        embed([g.text for g in sims])
        print(
            f"MiniLM loaded and {len(sims)} goals embedded in {time.perf_counter() - start:.1f} s"
        )
    results = []
    for name in names:
        results.append(run(name, sims, args, embed))
        print(f"  {name}: done", flush=True)
    shares = {r.name: r.shares(sims) for r in results}
    print_table(results, shares, sims, args)
    plot(results, shares, args.out)
    print(f"\nplot saved to {args.out}")


if __name__ == "__main__":
    main()
