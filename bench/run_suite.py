"""Run every method over several seeds (in parallel processes), then plot.

    .venv/bin/python bench/run_suite.py --config bench/configs/cpu.yaml \
        --seeds 0 1 2 3 4 --jobs 2 --concurrent-seeds 0 --out docs/results/playground

Each run is ``bench/experiment.py`` in its own process (its log in
``<out>/logs/``); the references (``random``, ``zero-shot``) run once;
``--concurrent-seeds`` adds SAC-GLAM + HER under the concurrent driver
(``sac-glam-her-concurrent``: the same run, collector and learner overlapping). Finally
``bench/plot.py`` draws the figures and the table from the CSVs.

A suite started again continues where it was: a run that finished (its
``.done`` marker beside its CSV) is skipped, one that was cut short continues
from its last evaluation's checkpoint (``bench/experiment.py``). ``--methods``
also takes the variants an experiment file names (ablations, see
``bench/experiment.py``); ``--no-plot`` skips the figures.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
LEARNING = ("sac-glam-her", "sac-glam", "ppo-glam")
CONCURRENT = "-concurrent"
"""A method name with this suffix runs under the concurrent driver (wall time)."""


def run_one(method: str, seed: int, args: argparse.Namespace) -> tuple[str, int, float]:
    if (args.out / f"{method}-s{seed}.done").exists():
        print(f"{method} seed {seed}: done before, skipped", flush=True)
        return f"{method}-s{seed}", 0, 0.0
    driver = "serial"
    if method.endswith(CONCURRENT):
        method, driver = method.removesuffix(CONCURRENT), "concurrent"
    log = args.out / "logs" / f"{method}{'-' + driver if driver != 'serial' else ''}-s{seed}.log"
    cmd = [
        sys.executable, str(HERE / "experiment.py"), "--config", str(args.config),
        "--method", method, "--seed", str(seed), "--out", str(args.out),
        "--eval-every", str(args.eval_every), "--eval-episodes", str(args.eval_episodes),
        "--driver", driver,
    ]  # fmt: skip
    if args.budget:
        cmd += ["--budget", str(args.budget)]
    if args.max_minutes and method not in ("zero-shot", "random"):  # concurrent runs too
        cmd += ["--max-minutes", str(args.max_minutes)]
    began = time.monotonic()
    with log.open("w") as out:
        code = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, check=False).returncode
    took = time.monotonic() - began
    print(f"{method} seed {seed}: exit {code} after {took / 60:.1f} min ({log})", flush=True)
    return f"{method}-s{seed}", code, took


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--methods", nargs="+", default=[*LEARNING, "zero-shot", "random"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--jobs", type=int, default=2, help="runs at once")
    parser.add_argument("--budget", type=int, default=None, help="env steps (default: config)")
    parser.add_argument("--max-minutes", type=float, default=None, help="per learning run")
    parser.add_argument("--eval-every", type=int, default=2000)
    parser.add_argument("--eval-episodes", type=int, default=2)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--concurrent-seeds",
        type=int,
        nargs="*",
        default=[],
        help="also run sac-glam-her under the concurrent driver with these seeds (last)",
    )
    parser.add_argument("--no-plot", action="store_true", help="leave the figures for later")
    args = parser.parse_args(argv)
    (args.out / "logs").mkdir(parents=True, exist_ok=True)

    references = ("zero-shot", "random")
    # Seed by seed, every method in turn, references first: a suite cut short leaves
    # complete comparisons over its first seeds rather than all seeds of one method.
    runs = [(m, args.seeds[0]) for m in args.methods if m in references]
    runs += [(m, s) for s in args.seeds for m in args.methods if m not in references]
    runs += [("sac-glam-her" + CONCURRENT, s) for s in args.concurrent_seeds]
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        results = list(pool.map(lambda run: run_one(run[0], run[1], args), runs))
    failed = [name for name, code, _ in results if code != 0]
    if not args.no_plot:
        plot = [sys.executable, str(HERE / "plot.py"), "--runs", str(args.out)]
        subprocess.run(plot, check=False)
    if failed:
        sys.exit(f"failed runs: {', '.join(failed)}")


if __name__ == "__main__":
    main()
