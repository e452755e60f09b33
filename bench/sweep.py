"""Try a few settings of one method with the same budget each, side by side.

Each ``--try`` is a list of ``dotted.key=value`` overrides of the experiment file
(``algorithms.sac.tau=0.02``; values read as YAML). Every try runs
``bench/experiment.py`` for the same method, seed and budget, evaluated once at
the end (and at the start), in its own process; the table prints the final
greedy success on training goals per category. Give two methods the same number
of tries and the same budget to compare them fairly.

    .venv/bin/python bench/sweep.py --config bench/configs/cpu.yaml --method ppo-glam \
        --budget 8000 --try algorithms.ppo.lr=0.001 --try algorithms.ppo.lr=0.0003 \
        --out docs/results/sweep
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent


def apply(data: dict[str, Any], overrides: str) -> dict[str, Any]:
    """``data`` with each ``a.b.c=value`` of the comma-separated ``overrides`` set."""
    for item in filter(None, overrides.split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--try {item!r}: expected dotted.key=value")
        node = data
        *path, last = key.strip().split(".")
        for part in path:
            node = node.setdefault(part, {})
        node[last] = yaml.safe_load(value)
    return data


def name_of(overrides: str) -> str:
    """A folder name for a try: ``tau0.02_update_every4``."""
    parts = [i.partition("=") for i in overrides.split(",") if i]
    return "_".join(k.rsplit(".", 1)[-1] + v for k, _, v in parts) or "base"


def run_try(overrides: str, args: argparse.Namespace) -> tuple[str, int]:
    name = name_of(overrides)
    folder = args.out / args.method / name
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "config.yaml"
    config.write_text(yaml.safe_dump(apply(yaml.safe_load(args.config.read_text()), overrides)))
    cmd = [
        sys.executable, str(HERE / "experiment.py"), "--config", str(config),
        "--method", args.method, "--seed", str(args.seed), "--budget", str(args.budget),
        "--eval-every", str(args.budget), "--eval-episodes", str(args.eval_episodes),
        "--out", str(folder),
    ]  # fmt: skip
    with (folder / "log.txt").open("w") as log:
        code = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, check=False).returncode
    print(f"{args.method} {name}: exit {code}", flush=True)
    return name, code


def final_success(folder: Path) -> dict[str, float]:
    """Greedy success on training goals at the last evaluation, per category."""
    rows = list(csv.DictReader(next(folder.glob("*.csv")).open()))
    last = max(int(r["env_steps"]) for r in rows)
    return {
        r["category"]: float(r["success"])
        for r in rows
        if int(r["env_steps"]) == last and r["split"] == "train" and r["acting"] == "greedy"
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--method", required=True)
    parser.add_argument("--try", dest="tries", action="append", required=True)
    parser.add_argument("--budget", type=int, default=8000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-episodes", type=int, default=2)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        results = list(pool.map(lambda t: run_try(t, args), args.tries))
    print(f"\n{args.method}, {args.budget} env steps, seed {args.seed}: greedy success (train)")
    for (name, code), overrides in zip(results, args.tries, strict=True):
        if code != 0:
            print(f"| {overrides} | failed (exit {code}) |")
            continue
        cells = final_success(args.out / args.method / name)
        print(f"| {overrides} | " + " | ".join(f"{c} {s:.2f}" for c, s in cells.items()) + " |")


if __name__ == "__main__":
    main()
