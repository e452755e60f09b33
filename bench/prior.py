"""Two models' success side by side at equal env steps: the language prior, measured.

Reads the CSVs of two ``bench/run_suite.py`` folders (``bench/plot.py``'s reader) and
prints, for one method and the zero-shot reference, the mean success over seeds on
training and held-out objects at every evaluation step both folders hold (and each
folder's own steps beyond), greedy and sampled, per goal category and overall::

    .venv/bin/python bench/prior.py --a docs/results/smollm2 --a-name smollm2 \\
        --b docs/results/playground --b-name tiny-words --method sac-glam-her

A model with a useful prior starts higher (zero-shot) or generalises further (held-out
objects at the same budget); the table shows whether either happens.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.plot import Curves, load

SPLITS = (("train", "training objects"), ("test", "held-out objects"))


def at(curves: Curves, method: str, split: str, acting: str, category: str) -> dict[int, str]:
    """Mean success over seeds at each evaluation step (with the number of seeds)."""
    per_seed = curves.get((method, split, acting, category), {})
    steps: dict[int, list[float]] = {}
    for points in per_seed.values():
        for step, success, _ in points:
            steps.setdefault(step, []).append(success)
    return {
        step: f"{statistics.mean(values):.2f} ({len(values)})"
        for step, values in sorted(steps.items())
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--a", type=Path, required=True)
    parser.add_argument("--a-name", default="a")
    parser.add_argument("--b", type=Path, required=True)
    parser.add_argument("--b-name", default="b")
    parser.add_argument("--method", default="sac-glam-her")
    parser.add_argument("--max-steps", type=int, default=None, help="steps shown at most")
    args = parser.parse_args(argv)
    a, b = load(args.a), load(args.b)
    categories = [*sorted({key[3] for key in (*a, *b) if key[3] != "all"}), "all"]
    for split, title in SPLITS:
        for acting in ("greedy", "sampled"):
            print(f"\n{title}, {acting} (mean success, seeds in brackets)")
            print(f"  {'method':<14} {'category':<12} {'env steps':>9}  "
                  f"{args.a_name:>12}  {args.b_name:>12}")  # fmt: skip
            for method in ("zero-shot", args.method):
                for category in categories:
                    left = at(a, method, split, acting, category)
                    right = at(b, method, split, acting, category)
                    shown = sorted(set(left) | set(right))
                    if method == "zero-shot":
                        shown = [0]
                    elif args.max_steps is not None:
                        shown = [s for s in shown if s <= args.max_steps]
                    for step in shown:
                        if step not in left and step not in right:
                            continue
                        print(
                            f"  {method:<14} {category:<12} {step:>9}  "
                            f"{left.get(step, '-'):>12}  {right.get(step, '-'):>12}"
                        )


if __name__ == "__main__":
    main()
