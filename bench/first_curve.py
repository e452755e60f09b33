"""Time to a visible learning curve: the default service, started as a user starts it,
read through its Prometheus endpoint.

Two settings side by side:

- ``default``: ``autotelic run`` with no configuration. On a machine without a GPU that
  is the packaged ``cpu`` configuration (tiny-words, serial, an evaluation every 2,000
  env steps; runtime/startup.py, ``cpu_default``).
- ``previous``: ``autotelic run --set model.path=smollm2``, the library's defaults that a
  run without configuration got before (SmolLM2, concurrent, the ``cpu`` profile).

For each, in a fresh folder, first the untrained reference: the same command with
learning held off (``algorithm.learning_starts`` out of reach), stopped after its first
evaluation, which is the untrained policy's on the same evaluation set (the same seed,
goals and scenes). Then, ``--repeats`` times, the service itself: from the launch of the
process, the seconds to its first evaluation (``autotelic_evaluations_total``) and to
the first evaluation whose training-goal greedy success (the mean over categories of
``autotelic_eval_success_ratio{split="train",acting="greedy"}``) exceeds the untrained
policy's by at least ``--margin``; each service is stopped (SIGTERM) at that rise or at
``--budget-s``. A reference that shows no evaluation within ``--reference-budget-s``
leaves its setting without a rise to find (its services are still watched to the
budget for their first evaluation). The settings take turns, so the machine's load falls
on both alike; the table gives medians and their ratio (the machine is shared and noisy).

    .venv/bin/python bench/first_curve.py --repeats 3 --previous-repeats 1 --out first_curve.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

AUTOTELIC = str(Path(sys.executable).parent / "autotelic")
SETTINGS: dict[str, list[str]] = {
    "default": [],
    "previous": ["--set", "model.path=smollm2"],
}
"""The flags of each setting, after ``autotelic run --run-dir run``."""
HOLD_LEARNING = ["--set", "algorithm.learning_starts=100000"]
"""Learning starts after 100,000 env steps (no later than the replay capacity of either
setting allows), far past the reference's first evaluation: it is of the untrained policy."""
POLL_S = 1.0


@dataclass
class Evaluation:
    """One evaluation as Prometheus showed it."""

    seconds: float
    """From the launch of the process."""
    env_steps: float
    train_greedy: float
    """Training goals, greedy: the mean over categories."""


@dataclass
class Attempt:
    """One service started and watched."""

    setting: str
    seconds_to_start: float = math.nan
    """Until endpoints.json named the metrics URL (the model loaded, the service up)."""
    evaluations: list[Evaluation] = field(default_factory=list)
    first_evaluation_s: float = math.nan
    first_rise_s: float = math.nan
    stopped_at_s: float = math.nan
    env_steps_at_stop: float = math.nan


def scrape(url: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Every sample of the endpoint, by name: (labels, value)."""
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return out


def one(samples: dict[str, list[tuple[dict[str, str], float]]], name: str) -> float:
    values = [v for _, v in samples.get(name, [])]
    return values[0] if values else math.nan


def train_greedy(samples: dict[str, list[tuple[dict[str, str], float]]]) -> float:
    """The last evaluation's training-goal greedy success, the mean over categories."""
    cells = [
        value
        for labels, value in samples.get("autotelic_eval_success_ratio", [])
        if labels.get("split") == "train" and labels.get("acting") == "greedy"
    ]
    return sum(cells) / len(cells) if cells else math.nan


def watch(
    folder: Path,
    flags: list[str],
    setting: str,
    *,
    budget_s: float,
    rise_above: float | None,
) -> Attempt:
    """Start ``autotelic run`` in ``folder`` and read its evaluations from Prometheus until
    the first one that rises above ``rise_above`` (or the first one at all when None), the
    process's end, or ``budget_s``; then stop it."""
    attempt = Attempt(setting)
    run_dir = folder / "run"
    log = (folder / "service.log").open("wb")
    began = time.monotonic()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOTELIC_")}
    proc = subprocess.Popen(
        [AUTOTELIC, "run", "--run-dir", str(run_dir), *flags],
        cwd=folder, stdout=log, stderr=log, env=env, start_new_session=True,
    )  # fmt: skip
    url: str | None = None
    seen = 0.0
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    try:
        while proc.poll() is None and time.monotonic() - began < budget_s:
            time.sleep(POLL_S)
            if url is None:
                with contextlib.suppress(OSError, ValueError, KeyError):
                    url = str(json.loads((run_dir / "endpoints.json").read_text())["metrics"])
                    attempt.seconds_to_start = time.monotonic() - began
                continue
            try:
                samples = scrape(url)
            except OSError:
                continue
            count = one(samples, "autotelic_evaluations_total")
            if not count > seen:
                continue
            seen = count
            now = time.monotonic() - began
            evaluation = Evaluation(
                now, one(samples, "autotelic_eval_measured_env_steps"), train_greedy(samples)
            )
            attempt.evaluations.append(evaluation)
            if math.isnan(attempt.first_evaluation_s):
                attempt.first_evaluation_s = now
            if rise_above is None:
                break
            if evaluation.train_greedy >= rise_above:
                attempt.first_rise_s = now
                break
        attempt.stopped_at_s = time.monotonic() - began
        attempt.env_steps_at_stop = one(samples, "autotelic_env_steps_total")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()
    return attempt


def median(values: list[float]) -> float:
    """The median of the finite values; NaN when there are none."""
    finite = [v for v in values if math.isfinite(v)]
    return statistics.median(finite) if finite else math.nan


def seconds(value: float, budget_s: float) -> str:
    return f"{value:.0f}" if math.isfinite(value) else f"none in {budget_s:.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument(
        "--previous-repeats", type=int, default=1, help="Repeats of the previous default."
    )
    parser.add_argument("--budget-s", type=float, default=600.0)
    parser.add_argument(
        "--reference-budget-s",
        type=float,
        default=300.0,
        help="How long the untrained reference may take to its first evaluation.",
    )
    parser.add_argument("--margin", type=float, default=0.1)
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--out", type=Path, default=None, help="Write every reading as JSON.")
    args = parser.parse_args()
    attempts: dict[str, list[Attempt]] = {name: [] for name in args.settings}
    references: dict[str, Attempt] = {}
    repeats = {name: args.repeats for name in args.settings}
    if "previous" in repeats:
        repeats["previous"] = args.previous_repeats
    with tempfile.TemporaryDirectory(prefix="first-curve-") as tmp:
        root = Path(tmp)
        for name in args.settings:
            folder = root / f"{name}-untrained"
            folder.mkdir()
            references[name] = watch(folder, [*SETTINGS[name], *HOLD_LEARNING], name,
                                     budget_s=args.reference_budget_s, rise_above=None)  # fmt: skip
            print(f"{name} untrained: {json.dumps(asdict(references[name]))}", file=sys.stderr)
        for repeat in range(max(repeats.values())):
            for name in args.settings:
                if repeat >= repeats[name]:
                    continue
                folder = root / f"{name}-{repeat}"
                folder.mkdir()
                reference = references[name]
                level = (
                    reference.evaluations[0].train_greedy + args.margin
                    if reference.evaluations
                    else math.inf  # no reference: watch to the budget, no rise to find
                )
                attempt = watch(folder, SETTINGS[name], name, budget_s=args.budget_s,
                                rise_above=level)  # fmt: skip
                attempts[name].append(attempt)
                print(f"{name}: {json.dumps(asdict(attempt))}", file=sys.stderr)
    report(attempts, references, args)


def report(
    attempts: dict[str, list[Attempt]], references: dict[str, Attempt], args: argparse.Namespace
) -> None:
    budget = args.budget_s
    print(f"| setting | untrained train greedy | s to start (median) | s to first evaluation "
          f"| s to rise (+{args.margin:g}) | env steps at stop | runs |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- |")
    medians: dict[str, tuple[float, float]] = {}
    for name, runs in attempts.items():
        reference = references.get(name)
        untrained = (
            f"{reference.evaluations[0].train_greedy:.3f}"
            if reference is not None and reference.evaluations
            else "n/a (no evaluation)"
        )
        start = median([a.seconds_to_start for a in runs])
        first = median([a.first_evaluation_s for a in runs])
        rise = median([a.first_rise_s for a in runs])
        steps = median([a.env_steps_at_stop for a in runs])
        medians[name] = (first, rise)
        print(f"| {name} | {untrained} | {start:.0f} | {seconds(first, budget)} | "
              f"{seconds(rise, budget)} | {steps:,.0f} | {len(runs)} |")  # fmt: skip
    if {"default", "previous"} <= medians.keys():
        for i, what in enumerate(("first evaluation", "rise")):
            new, old = medians["default"][i], medians["previous"][i]
            if math.isfinite(new) and math.isfinite(old):
                print(f"\n{what}: previous / default = {old / new:.1f}x")
            elif math.isfinite(new):
                print(f"\n{what}: default {new:.0f} s; previous none within {budget:.0f} s "
                      f"(> {budget / new:.1f}x)")  # fmt: skip
    if args.out is not None:
        data = {
            "budget_s": budget,
            "margin": args.margin,
            "references": {k: asdict(v) for k, v in references.items()},
            "attempts": {k: [asdict(a) for a in v] for k, v in attempts.items()},
        }
        args.out.write_text(json.dumps(data, indent=2))


if __name__ == "__main__":
    main()
