"""Plots and a summary table from the CSVs that bench/experiment.py writes.

    .venv/bin/python bench/plot.py --runs docs/results/playground [--acting sampled]

Writes into the same folder:
- ``success.png``: success on training objects against env steps, mean and a 95%
  confidence band over seeds (t-interval), per method;
- ``categories.png``: the same per goal category;
- ``generalisation.png``: training against held-out objects;
- ``wall_time.png``: training wall time per 1k env steps;
- ``table.md``: success at fixed budgets, steps to reach 50% and 80%, wall time
  per 1k steps, with the references (random policy, untrained model) if present;
  then the last evaluation's success per goal category.
"""

from __future__ import annotations

import argparse
import csv
import math
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.colors
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from scipy import stats

LEARNERS = ("sac-glam-her", "sac-glam", "ppo-glam", "sac-glam-her-concurrent")
REFERENCES = ("random", "zero-shot")
COLORS = {
    "sac-glam-her": "tab:blue",
    "sac-glam": "tab:orange",
    "ppo-glam": "tab:green",
    "sac-glam-her-concurrent": "tab:purple",
}


def learners(curves: Curves) -> list[str]:
    """The learning methods (and variants) the CSVs hold: the usual ones first, in order."""
    found = {k[0] for k in curves} - set(REFERENCES)
    return [m for m in LEARNERS if m in found] + sorted(found - set(LEARNERS))


def color(method: str) -> str:
    """A method's colour: fixed for the usual ones, one of the default cycle otherwise."""
    if method in COLORS:
        return COLORS[method]
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    # The cycle may hold RGB tuples (a style sheet's): to_hex takes any colour spec.
    return str(matplotlib.colors.to_hex(cycle[sum(map(ord, method)) % len(cycle)]))


Row = dict[str, str]
# (method, split, acting, category) -> seed -> sorted [(env_steps, success, train_seconds)]
Curves = dict[tuple[str, str, str, str], dict[int, list[tuple[int, float, float]]]]


def load(folder: Path) -> Curves:
    curves: Curves = defaultdict(lambda: defaultdict(list))
    for path in sorted(folder.glob("*.csv")):
        if path.name.endswith("-curriculum.csv"):  # bench/curriculum_report.py reads those
            continue
        with path.open() as f:
            for row in csv.DictReader(f):
                key = (row["method"], row["split"], row["acting"], row["category"])
                curves[key][int(row["seed"])].append(
                    (int(row["env_steps"]), float(row["success"]), float(row["train_seconds"]))
                )
    for per_seed in curves.values():
        for points in per_seed.values():
            points.sort()
    return curves


def band(per_seed: dict[int, list[tuple[int, float, float]]]) -> tuple[np.ndarray, ...]:
    """Steps, mean success and the 95% t-interval over seeds.

    Seeds are aligned by evaluation index (every run evaluates at the same step
    thresholds; a run stopped by wall time ends at slightly different steps), and
    the x value is the mean step count at that index.
    """
    length = min(len(points) for points in per_seed.values())
    steps = np.array([[p[0] for p in pts[:length]] for pts in per_seed.values()]).mean(axis=0)
    values = np.array([[p[1] for p in pts[:length]] for pts in per_seed.values()])
    mean = values.mean(axis=0)
    n = values.shape[0]
    if n > 1:
        half = stats.t.ppf(0.975, n - 1) * values.std(axis=0, ddof=1) / math.sqrt(n)
    else:
        half = np.zeros_like(mean)
    return steps.round().astype(int), mean, np.clip(mean - half, 0, 1), np.clip(mean + half, 0, 1)


def reference_level(per_seed: dict[int, list[tuple[int, float, float]]]) -> float:
    """A non-learning reference's success: its one evaluation, averaged over seeds."""
    return float(np.mean([pts[0][1] for pts in per_seed.values()]))


def seconds_per_1k(per_seed: dict[int, list[tuple[int, float, float]]]) -> list[float]:
    """Training seconds per 1000 env steps of each seed, from its last evaluation."""
    return [1000 * pts[-1][2] / max(pts[-1][0], 1) for pts in per_seed.values()]


def draw(ax: Axes, curves: Curves, split: str, acting: str, category: str) -> None:
    for method in learners(curves):
        per_seed = curves.get((method, split, acting, category))
        if not per_seed:
            continue
        steps, mean, low, high = band(per_seed)
        shade = color(method)
        ax.plot(steps, mean, color=shade, label=f"{method} ({len(per_seed)} seeds)")
        ax.fill_between(steps, low, high, color=shade, alpha=0.2)
    for method, style in zip(REFERENCES, (":", "--"), strict=True):
        per_seed = curves.get((method, split, acting, category))
        if per_seed:
            level = reference_level(per_seed)
            ax.axhline(level, color="gray", linestyle=style, label=f"{method} ({level:.2f})")
    ax.set_xlabel("environment steps")
    ax.set_ylabel("success rate")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)


def categories_of(curves: Curves) -> list[str]:
    return sorted({k[3] for k in curves if k[3] != "all"})


def plot_all(curves: Curves, out: Path, acting: str) -> None:
    fig, ax = plt.subplots(figsize=(7, 4.5))
    draw(ax, curves, "train", acting, "all")
    ax.set_title(f"Success on training objects ({acting} actions), mean and 95% CI")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "success.png", dpi=120)
    plt.close(fig)

    cats = categories_of(curves)
    fig, axes = plt.subplots(1, len(cats), figsize=(6 * len(cats), 4.5), squeeze=False)
    for ax, category in zip(axes[0], cats, strict=True):
        draw(ax, curves, "train", acting, category)
        ax.set_title(f"{category} (training objects, {acting})")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "categories.png", dpi=120)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    for ax, split in zip(axes, ("train", "test"), strict=True):
        draw(ax, curves, split, acting, "all")
        ax.set_title(f"{'training' if split == 'train' else 'held-out'} objects ({acting})")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "generalisation.png", dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    names, means, errs = [], [], []
    for method in learners(curves):
        per_seed = curves.get((method, "train", acting, "all"))
        if per_seed:
            rates = seconds_per_1k(per_seed)
            names.append(method)
            means.append(float(np.mean(rates)))
            errs.append(float(np.std(rates)))
    ax.bar(names, means, yerr=errs, color=[color(n) for n in names])
    ax.set_ylabel("training seconds per 1k env steps")
    ax.set_title("Wall time (evaluation excluded)")
    fig.tight_layout()
    fig.savefig(out / "wall_time.png", dpi=120)
    plt.close(fig)


def first_reaching(steps: Iterable[int], mean: Iterable[float], level: float) -> str:
    for step, value in zip(steps, mean, strict=True):
        if value >= level:
            return f"{step:,}"
    return "not reached"


def table(curves: Curves, acting: str) -> str:
    budgets: list[int] = []
    for method in learners(curves):
        if (method, "train", acting, "all") in curves:
            steps, *_ = band(curves[(method, "train", acting, "all")])
            picks = [int(steps[len(steps) // 4]), int(steps[len(steps) // 2]), int(steps[-1])]
            budgets = sorted(set(picks))
            break
    header = (
        "| method | seeds | "
        + " | ".join(f"success @{b:,} (train)" for b in budgets)
        + " | success @end (held-out) | steps to 50% | steps to 80% | train s / 1k steps |"
    )
    lines = [header, "|" + " --- |" * (header.count("|") - 1)]
    for method in learners(curves):
        train = curves.get((method, "train", acting, "all"))
        test = curves.get((method, "test", acting, "all"))
        if not train:
            continue
        steps, mean, low, high = band(train)
        cells = []
        for b in budgets:  # the last evaluation at or before the budget
            i = int(np.searchsorted(steps, b, side="right")) - 1
            cells.append(f"{mean[i]:.2f} [{low[i]:.2f}, {high[i]:.2f}]" if i >= 0 else "-")
        held = band(test)[1][-1] if test else float("nan")
        rates = seconds_per_1k(train)
        lines.append(
            f"| {method} | {len(train)} | "
            + " | ".join(cells)
            + f" | {held:.2f} | {first_reaching(steps, mean, 0.5)} "
            f"| {first_reaching(steps, mean, 0.8)} | {np.mean(rates):.1f} ± {np.std(rates):.1f} |"
        )
    for method in REFERENCES:
        train = curves.get((method, "train", acting, "all"))
        test = curves.get((method, "test", acting, "all"))
        if train:
            level = reference_level(train)
            held = reference_level(test) if test else float("nan")
            lines.append(
                f"| {method} (no learning) | {len(train)} | "
                + " | ".join(f"{level:.2f}" for _ in budgets)
                + f" | {held:.2f} | - | - | - |"
            )
    return "\n".join(lines) + "\n"


def category_table(curves: Curves, acting: str) -> str:
    """Success at the last evaluation per goal category (training objects), mean [95% CI]."""
    cats = categories_of(curves)
    header = "| method | " + " | ".join(cats) + " |"
    lines = [header, "|" + " --- |" * (len(cats) + 1)]
    for method in (*learners(curves), *REFERENCES):
        cells = []
        for category in cats:
            per_seed = curves.get((method, "train", acting, category))
            if not per_seed:
                cells.append("-")
                continue
            _, mean, low, high = band(per_seed)
            cells.append(f"{mean[-1]:.2f} [{low[-1]:.2f}, {high[-1]:.2f}]")
        if any(c != "-" for c in cells):
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, required=True, help="folder with the CSVs")
    parser.add_argument("--out", type=Path, default=None, help="default: the runs folder")
    parser.add_argument("--acting", choices=("sampled", "greedy"), default="greedy")
    args = parser.parse_args()
    out = args.out or args.runs
    out.mkdir(parents=True, exist_ok=True)
    curves = load(args.runs)
    if not curves:
        raise SystemExit(f"no CSV in {args.runs}")
    plot_all(curves, out, args.acting)
    text = table(curves, args.acting) + "\nPer category, last evaluation:\n\n"
    text += category_table(curves, args.acting)
    (out / "table.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
