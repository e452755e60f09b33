"""What a curriculum chose and how well it knew the agent, from bench/experiment.py's CSVs.

    .venv/bin/python bench/curriculum_report.py --runs docs/results/autotelic \
        docs/results/autotelic/curricula --out docs/results/autotelic

Reads every ``*-curriculum.csv`` (episodes pursued and won per category since the start,
and the competence error on held-out goals at each evaluation) and every success CSV of
the folders, and writes into ``--out``:

- ``shares.png``: each category's share of the episodes pursued in each window between
  two evaluations, per method (mean over seeds);
- ``per_category.png``: greedy success on training objects per category, per method;
- ``curricula.md``: per method, the impossible goals' share of pursued episodes (the
  window ending at ``--impossible-at`` steps and everything after it), each category's
  share over the whole run, and the competence error on held-out goals (per goal, and
  between category means) at the last evaluation;
- ``categories.md``: steps to 50, 80 and 90% greedy success per category (training
  objects), and success per category at fixed budgets, mean [95% t-interval] over seeds.

Categories and feasibility come from the CSVs (the goal space's labels): they serve this
report only, never the curriculum.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.plot import Curves, band, first_reaching, learners, load, reference_level

IMPOSSIBLE = "grow_furniture"
ORDER = ("grasp", "grow_plant", "grow_herbivore", "grow_carnivore", IMPOSSIBLE)
LEVELS = (0.5, 0.8, 0.9)

# method -> seed -> measure -> category -> [(env_steps, value)]
Records = dict[str, dict[int, dict[str, dict[str, list[tuple[int, float]]]]]]


def load_curricula(folders: Sequence[Path]) -> Records:
    """Every curriculum CSV of ``folders``, points sorted by env steps."""
    out: Records = defaultdict(lambda: defaultdict(lambda: defaultdict(lambda: defaultdict(list))))
    for folder in folders:
        for path in sorted(folder.glob("*-curriculum.csv")):
            with path.open() as f:
                for r in csv.DictReader(f):
                    cell = out[r["method"]][int(r["seed"])][r["measure"]][r["category"]]
                    cell.append((int(r["env_steps"]), float(r["value"])))
    for seeds in out.values():
        for measures in seeds.values():
            for categories in measures.values():
                for points in categories.values():
                    points.sort()
    return out


def window_shares(
    pursued: dict[str, list[tuple[int, float]]],
) -> tuple[list[int], dict[str, list[float]]]:
    """Each category's share of the episodes pursued between consecutive evaluations
    (the step each window ends at, and the shares; a category absent counts 0)."""
    steps = [s for s, _ in pursued.get("all", [])]
    totals = [v for _, v in pursued.get("all", [])]
    shares: dict[str, list[float]] = {}
    for category, points in pursued.items():
        if category == "all":
            continue
        at = dict(points)
        counts = [at.get(s, 0.0) for s in steps]
        shares[category] = [
            (counts[i] - counts[i - 1]) / max(totals[i] - totals[i - 1], 1.0)
            for i in range(1, len(steps))
        ]
    return steps[1:], shares


def share_after(pursued: dict[str, list[tuple[int, float]]], category: str, start: int) -> float:
    """``category``'s share of the episodes pursued after ``start`` env steps (from the
    evaluation at or before it to the last)."""
    totals = pursued.get("all", [])
    if not totals:
        return math.nan
    at = dict(pursued.get(category, []))
    first = max((s for s, _ in totals if s <= start), default=totals[0][0])
    last = totals[-1][0]
    done = dict(totals)[last] - dict(totals)[first]
    return (at.get(last, 0.0) - at.get(first, 0.0)) / done if done > 0 else math.nan


def pursued_any(seeds: dict[int, dict[str, dict[str, list[tuple[int, float]]]]]) -> bool:
    """Whether a method's runs pursued any episode (a reference evaluated once did not)."""
    return any(p[-1][1] > 0 for m in seeds.values() if (p := m.get("pursued", {}).get("all")))


def mean_interval(values: Sequence[float]) -> str:
    """``mean [95% t-interval]`` over seeds (the mean alone for one seed)."""
    data = np.asarray([v for v in values if not math.isnan(v)], dtype=np.float64)
    if data.size == 0:
        return "-"
    if data.size == 1:
        return f"{data[0]:.3f}"
    half = stats.t.ppf(0.975, data.size - 1) * data.std(ddof=1) / math.sqrt(data.size)
    return f"{data.mean():.3f} [{data.mean() - half:.3f}, {data.mean() + half:.3f}]"


def last_value(points: list[tuple[int, float]]) -> float:
    return points[-1][1] if points else math.nan


def curricula_table(records: Records, impossible_at: int) -> str:
    header = (
        f"| method | seeds | impossible share, window to {impossible_at:,} "
        f"| impossible share after {impossible_at:,} | "
        + " | ".join(f"{c} share (run)" for c in ORDER[:4])
        + " | competence error, held-out (per goal) | competence error (category means) |"
    )
    lines = [header, "|" + " --- |" * (header.count("|") - 1)]
    for method, seeds in sorted(records.items()):
        if not pursued_any(seeds):
            continue  # a reference that pursued nothing (the untrained model's one evaluation)
        window, after, errors, gaps = [], [], [], []
        run_shares: dict[str, list[float]] = defaultdict(list)
        for measures in seeds.values():
            pursued = measures.get("pursued", {})
            steps, shares = window_shares(pursued)
            i = next((k for k, s in enumerate(steps) if s >= impossible_at), None)
            window.append(
                shares.get(IMPOSSIBLE, [0.0] * len(steps))[i] if i is not None else math.nan
            )
            after.append(share_after(pursued, IMPOSSIBLE, impossible_at))
            for c in ORDER[:4]:
                run_shares[c].append(share_after(pursued, c, 0))
            errors.append(last_value(measures.get("competence_error", {}).get("all", [])))
            predicted, measured = measures.get("predicted", {}), measures.get("measured", {})
            per_category = [
                abs(last_value(predicted[c]) - last_value(measured[c]))
                for c in ORDER[:4]
                if c in predicted and c in measured
            ]
            gaps.append(float(np.mean(per_category)) if per_category else math.nan)
        lines.append(
            f"| {method} | {len(seeds)} | {mean_interval(window)} | {mean_interval(after)} | "
            + " | ".join(mean_interval(run_shares[c]) for c in ORDER[:4])
            + f" | {mean_interval(errors)} | {mean_interval(gaps)} |"
        )
    return "\n".join(lines) + "\n"


def categories_table(curves: Curves, acting: str, budgets: Sequence[int]) -> str:
    cats = [c for c in ORDER[:4] if any(k[3] == c for k in curves)]
    lines = []
    for category in cats:
        header = (
            f"| {category} | seeds | "
            + " | ".join(f"@{b:,}" for b in budgets)
            + " | held-out @end | "
            + " | ".join(f"steps to {int(level * 100)}%" for level in LEVELS)
            + " |"
        )
        lines += [header, "|" + " --- |" * (header.count("|") - 1)]
        for method in learners(curves):
            train = curves.get((method, "train", acting, category))
            if not train:
                continue
            steps, mean, low, high = band(train)
            cells = []
            gap = int(steps[-1] - steps[-2]) if len(steps) > 1 else 0
            for b in budgets:
                i = int(np.searchsorted(steps, b, side="right")) - 1
                ran = i >= 0 and b <= steps[-1] + gap // 2  # no figure past a run's end
                cells.append(f"{mean[i]:.2f} [{low[i]:.2f}, {high[i]:.2f}]" if ran else "-")
            test = curves.get((method, "test", acting, category))
            held = "-"
            if test:
                _, tmean, tlow, thigh = band(test)
                held = f"{tmean[-1]:.2f} [{tlow[-1]:.2f}, {thigh[-1]:.2f}]"
            reach = [first_reaching(steps, mean, level) for level in LEVELS]
            lines.append(
                f"| {method} | {len(train)} | "
                + " | ".join(cells)
                + f" | {held} | "
                + " | ".join(reach)
                + " |"
            )
        for method in ("random", "zero-shot"):
            per_seed = curves.get((method, "train", acting, category))
            if per_seed:
                level = reference_level(per_seed)
                held_seed = curves.get((method, "test", acting, category))
                held_level = reference_level(held_seed) if held_seed else math.nan
                lines.append(
                    f"| {method} (no learning) | {len(per_seed)} | "
                    + " | ".join(f"{level:.2f}" for _ in budgets)
                    + f" | {held_level:.2f} | "
                    + " | ".join("-" for _ in LEVELS)
                    + " |"
                )
        lines.append("")
    return "\n".join(lines)


def plot_shares(records: Records, out: Path) -> None:
    methods = [m for m in sorted(records) if pursued_any(records[m])]
    if not methods:
        return
    fig, axes = plt.subplots(1, len(methods), figsize=(4.2 * len(methods), 3.4), squeeze=False)
    for ax, method in zip(axes[0], methods, strict=True):
        per_seed = [window_shares(m.get("pursued", {})) for m in records[method].values()]
        length = min(len(steps) for steps, _ in per_seed)
        if length == 0:
            continue
        steps = np.mean([s[:length] for s, _ in per_seed], axis=0)
        stack = [
            np.mean([shares.get(c, [0.0] * length)[:length] for _, shares in per_seed], axis=0)
            for c in ORDER
        ]
        ax.stackplot(steps, stack, labels=ORDER, alpha=0.85)
        ax.set_title(f"{method} ({len(per_seed)} seeds)", fontsize=9)
        ax.set_xlabel("environment steps")
        ax.set_ylim(0, 1)
    axes[0][0].set_ylabel("share of pursued episodes")
    axes[0][-1].legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    fig.savefig(out / "shares.png", dpi=110)
    plt.close(fig)


def plot_categories(curves: Curves, out: Path, acting: str) -> None:
    cats = [c for c in ORDER[:4] if any(k[3] == c for k in curves)]
    fig, axes = plt.subplots(1, len(cats), figsize=(4.2 * len(cats), 3.4), squeeze=False)
    for ax, category in zip(axes[0], cats, strict=True):
        for method in learners(curves):
            per_seed = curves.get((method, "train", acting, category))
            if not per_seed:
                continue
            steps, mean, low, high = band(per_seed)
            (line,) = ax.plot(steps, mean, label=f"{method} ({len(per_seed)})")
            ax.fill_between(steps, low, high, color=line.get_color(), alpha=0.2)
            longest = max(per_seed.values(), key=len)
            if len(longest) > len(steps):  # a seed that ran further: its own curve, dashed
                xs, ys = [p[0] for p in longest], [p[1] for p in longest]
                ax.plot(xs, ys, color=line.get_color(), linestyle="--", linewidth=0.9)
        for method, style in (("random", ":"), ("zero-shot", "--")):
            per_seed = curves.get((method, "train", acting, category))
            if per_seed:
                level = reference_level(per_seed)
                ax.axhline(level, color="gray", linestyle=style, label=method)
        ax.set_title(category, fontsize=9)
        ax.set_xlabel("environment steps")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(f"success ({acting}, training objects)")
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "per_category.png", dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, nargs="+", required=True, help="folders of CSVs")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--acting", choices=("sampled", "greedy"), default="greedy")
    parser.add_argument("--impossible-at", type=int, default=50_000)
    parser.add_argument("--budgets", type=int, nargs="+", default=[50_000, 100_000, 200_000])
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    records = load_curricula(args.runs)
    curves: Curves = {}
    for folder in args.runs:
        for key, per_seed in load(folder).items():
            curves.setdefault(key, {}).update(per_seed)
    if not records and not curves:
        raise SystemExit(f"no CSV in {', '.join(map(str, args.runs))}")
    text = ""
    if records:
        plot_shares(records, args.out)
        text += curricula_table(records, args.impossible_at)
        (args.out / "curricula.md").write_text(text)
    if curves:
        plot_categories(curves, args.out, args.acting)
        per_category = categories_table(curves, args.acting, args.budgets)
        (args.out / "categories.md").write_text(per_category)
        text += "\n" + per_category
    print(text)


if __name__ == "__main__":
    main()
