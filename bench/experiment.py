"""One learning run of the real runtime, headless, evaluated at fixed intervals.

It builds the same :class:`~autotelic.runtime.loop.agent.Agent` that ``autotelic
run`` serves (collector, LMDB store, HER replay, learner, curriculum) and drives
it serially, so a seed reproduces its curve. Every ``--eval-every`` env steps it
evaluates the policy on training and held-out objects, greedy and sampled, and
appends the results to a CSV (one row per evaluation, split, way of acting and
goal category).

    .venv/bin/python bench/experiment.py --config bench/configs/cpu.yaml \
        --method sac-glam-her --seed 0 --out docs/results/playground

Methods: ``sac-glam-her`` (SAC-GLAM, HER on), ``sac-glam`` (HER off),
``ppo-glam``; and two references that do not learn: ``zero-shot`` (the
configured model as it is) and ``random`` (uniform over admissible actions).

An experiment file is an autotelic configuration (any registered environment)
plus an ``algorithms:`` mapping with the options of each algorithm compared
(``sac:``, ``ppo:``); each method runs with the options of its algorithm. An
optional ``variants:`` mapping names further methods, each a base method and the
settings it changes (an ablation undoes one choice)::

    variants:
      sac-glam-her-no-negatives: {method: sac-glam-her, set: {replay: {her_negatives: 0.0}}}

A finished run leaves ``<label>-s<seed>.done`` beside its CSV; a suite that is
started again skips those runs (``bench/run_suite.py``). A run cut short (killed,
the machine gone) continues from its last evaluation: each one checkpoints the
run, and a restart restores that checkpoint (policy, optimisers, curriculum,
counters, and the replay in the run's store), keeps the CSV rows up to it and
goes on. The restart draws new random streams (as any restarted ``autotelic run``
does), so a resumed curve is a valid run of the seed but not bit-identical to an
uninterrupted one; its log says where it resumed. ``--fresh`` starts over.
"""

from __future__ import annotations

import argparse
import csv
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from autotelic.core import ActResult, env_spec
from autotelic.goals import GoalDaemon
from autotelic.runtime.config import Settings, deep_merge, load_settings
from autotelic.runtime.evaluation.evaluate import EvalResult, evaluate, feasible_goals
from autotelic.runtime.loop.agent import Agent
from autotelic.storage import CheckpointManager

METHODS = ("sac-glam-her", "sac-glam", "ppo-glam", "zero-shot", "random")
FIELDS = [
    "method", "seed", "env_steps", "updates", "train_seconds", "split", "acting",
    "category", "success", "episodes",
]  # fmt: skip
CURRICULUM_FIELDS = ["method", "seed", "env_steps", "measure", "category", "value"]
"""The curriculum CSV beside the success CSV (``<label>-s<seed>-curriculum.csv``):
``pursued`` and ``won`` are the episodes pursued and succeeded per category since the
start (differences between rows give each window's shares); ``competence_error`` is the
mean over held-out goals of |the curriculum's predicted success - the sampled policy's
measured success|, per category and ``all``. Categories serve reporting only: the
curriculum may be told none of them."""


def method_overrides(method: str) -> dict[str, Any]:
    """What each method changes in the shared configuration, besides its algorithm."""
    return {"replay": {"her_ratio": 0.0}} if method == "sac-glam" else {}


def method_algorithm(method: str) -> str:
    """The algorithm each method trains with (references load a SAC learner, never trained)."""
    return "ppo" if method == "ppo-glam" else "sac"


def read_experiment(config: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The shared configuration and the ``algorithms:`` options of an experiment file."""
    data = yaml.safe_load(config.read_text()) or {}
    algorithms = data.pop("algorithms", {}) or {}
    data.pop("variants", None)
    return data, algorithms


def read_variants(config: Path) -> dict[str, tuple[str, dict[str, Any]]]:
    """The ``variants:`` of an experiment file: name -> (base method, settings changed)."""
    data = yaml.safe_load(config.read_text()) or {}
    out = {}
    for name, spec in (data.get("variants") or {}).items():
        if spec.get("method") not in METHODS:
            raise SystemExit(f"variant {name!r}: method must be one of {', '.join(METHODS)}")
        out[str(name)] = (str(spec["method"]), dict(spec.get("set") or {}))
    return out


def resolve_method(config: Path, method: str) -> tuple[str, dict[str, Any]]:
    """A method or a variant's name -> (base method, settings it changes on top)."""
    if method in METHODS:
        return method, {}
    variants = read_variants(config)
    if method not in variants:
        known = ", ".join([*METHODS, *variants])
        raise SystemExit(f"unknown method {method!r}; known: {known}")
    return variants[method]


def build_settings(
    config: Path, method: str, seed: int, budget: int, run_dir: Path, driver: str = "serial"
) -> Settings:
    shared, algorithms = read_experiment(config)
    method, changes = resolve_method(config, method)
    name = method_algorithm(method)
    overrides = deep_merge(
        deep_merge(deep_merge(shared, method_overrides(method)), changes),
        {
            "run": {"dir": run_dir, "seed": seed, "max_env_steps": budget, "mode": driver},
            "curriculum": {"seed": seed},
            "algorithm": {**algorithms.get(name, {}), "name": name, "seed": seed},
            "model": {"seed": seed},
            # The same run as the serial driver's: the update-to-data ratio holds (the
            # collector waits when the learner falls behind), only the overlap differs.
            **({"collector": {"when_learner_behind": "wait"}} if driver == "concurrent" else {}),
            # A serial run resumed from its checkpoint redoes the updates lost with the cut
            # (the data collected after it is kept), so updates per env step stay the ratio.
            **({"collector": {"max_lag_updates": 1_000_000}} if driver == "serial" else {}),
        },
    )
    return load_settings(None, **overrides)


def eval_goals(settings: Settings, split: str) -> list[str]:
    """The goals of ``split`` in the categories of the configured goal subset (all of them
    when the configuration lists none)."""
    space = env_spec(settings.env.id).goal_space(settings.env)
    categories = {space.parse(g).category for g in settings.curriculum.configured_goals or []}
    categories &= {space.parse(g).category for g in feasible_goals(space, split)}  # type: ignore[arg-type]
    goals = feasible_goals(space, split)  # type: ignore[arg-type]
    return [g for g in goals if not categories or space.parse(g).category in categories]


class RandomPolicy:
    """Uniform over each state's candidates: the floor any learner must beat."""

    policy_version = 0

    def prompt(self, goal: str, observation: str, actions: Sequence[str]) -> str:
        return f"{goal}\n{observation}"  # never read

    def act(
        self,
        prompts: Sequence[str],
        candidates: Sequence[Sequence[str]],
        *,
        generator: np.random.Generator | None = None,
        **_: Any,
    ) -> ActResult:
        rng = generator if isinstance(generator, np.random.Generator) else np.random.default_rng()
        actions = np.array([rng.integers(len(c)) for c in candidates], dtype=np.int64)
        probs = [np.full(len(c), 1 / len(c), dtype=np.float32) for c in candidates]
        return ActResult(
            actions=actions,
            log_probs=np.array([-np.log(len(c)) for c in candidates], dtype=np.float32),
            entropies=np.array([np.log(len(c)) for c in candidates], dtype=np.float32),
            probs=probs,
            policy_version=0,
        )


class Recorder:
    """Runs the evaluations and writes the CSV rows."""

    def __init__(
        self,
        path: Path,
        method: str,
        seed: int,
        settings: Settings,
        args: Any,
        resume_at: int | None = None,
    ) -> None:
        self.path = path
        self.method, self.seed, self.settings, self.args = method, seed, settings, args
        self.goals = {split: eval_goals(settings, split) for split in ("train", "test")}
        self.env = env_spec(settings.env.id)
        self.train_seconds = 0.0
        self.last_step = -1
        self.checkpoint_after = False
        """Checkpoint the run after each evaluation, so a cut run resumes from there."""
        kept = kept_rows(path, resume_at) if resume_at is not None else []
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, FIELDS)
            writer.writeheader()
            writer.writerows(kept)
        self.curriculum_path = path.with_name(path.stem + "-curriculum.csv")
        kept_curriculum = (
            kept_rows(self.curriculum_path, resume_at) if resume_at is not None else []
        )
        with self.curriculum_path.open("w", newline="") as f:
            writer = csv.DictWriter(f, CURRICULUM_FIELDS)
            writer.writeheader()
            writer.writerows(kept_curriculum)
        if kept:
            self.last_step = int(kept[-1]["env_steps"])
            self.train_seconds = float(kept[-1]["train_seconds"])
        self._mark = time.perf_counter()

    def __call__(self, agent: Agent | None, policy: Any = None) -> None:
        steps = agent.collector.env_steps if agent else 0
        if steps == self.last_step:
            return
        self.train_seconds += time.perf_counter() - self._mark
        learner = policy if policy is not None else agent.learner  # type: ignore[union-attr]
        results = self.record(learner, steps, agent.learner.num_updates if agent else 0)
        if agent is not None:
            self.record_curriculum(agent, steps, results)
        if agent is not None and self.checkpoint_after:
            agent.checkpoint()
        self._mark = time.perf_counter()

    def record(self, learner: Any, steps: int, updates: int) -> list[EvalResult]:
        """Evaluate ``learner`` as the policy after ``steps`` env steps and write its rows."""
        self.last_step = steps
        rows = []
        results = []
        for split in ("train", "test"):
            for greedy in (True, False):
                result = evaluate(
                    learner,
                    self.env,
                    self.settings.env,
                    split=split,
                    greedy=greedy,
                    episodes_per_goal=self.args.eval_episodes,
                    goals=self.goals[split],
                    seed=10_000,  # the same scenes at every evaluation: paired curves
                    num_envs=self.args.eval_envs,
                    time_limit=self.settings.run.time_limit,
                )
                results.append(result)
                rows.extend(self._rows(result, steps, updates))
        with self.path.open("a", newline="") as f:
            csv.DictWriter(f, FIELDS).writerows(rows)
        overall = {
            r["split"] + "/" + r["acting"]: r["success"] for r in rows if r["category"] == "all"
        }
        print(
            f"[{self.method} s{self.seed}] steps {steps} updates {updates} "
            f"train {self.train_seconds:.0f}s {overall}",
            flush=True,
        )
        return results

    def record_curriculum(self, agent: Agent, steps: int, results: Sequence[EvalResult]) -> None:
        """Write the curriculum's pursued episodes per category and its competence error on
        the held-out goals just measured (rows of :data:`CURRICULUM_FIELDS`)."""
        space, daemon = agent.goal_space, agent.daemon
        if not isinstance(daemon, GoalDaemon):  # a remote curriculum (Ray) keeps its own
            return
        base = {"method": self.method, "seed": self.seed, "env_steps": steps}
        rows = [
            {**base, "measure": m, "category": c, "value": v}
            for m, per in pursued_by_category(daemon.attempts(), space.parse).items()
            for c, v in per.items()
        ]
        measured = next((r for r in results if r.split == "test" and not r.greedy), None)
        if measured is not None and measured.per_goal:
            goals = list(measured.per_goal)
            predicted = daemon.estimator.competence(goals)
            errors = competence_errors(
                goals, predicted, [measured.per_goal[g] for g in goals], space.parse
            )
            rows += [
                {**base, "measure": measure, "category": c, "value": round(e, 6)}
                for measure, values in errors.items()
                for c, e in values.items()
            ]
        with self.curriculum_path.open("a", newline="") as f:
            csv.DictWriter(f, CURRICULUM_FIELDS).writerows(rows)

    def _rows(self, result: EvalResult, steps: int, updates: int) -> list[dict[str, Any]]:
        base = {
            "method": self.method,
            "seed": self.seed,
            "env_steps": steps,
            "updates": updates,
            "train_seconds": round(self.train_seconds, 3),
            "split": result.split,
            "acting": "greedy" if result.greedy else "sampled",
        }
        rows = [
            {**base, "category": c, "success": s, "episodes": result.counts[c]}
            for c, s in result.success.items()
        ]
        rows.append(
            {**base, "category": "all", "success": result.overall, "episodes": result.episodes}
        )
        return rows


def pursued_by_category(
    attempts: dict[str, tuple[int, int]], parse: Callable[[str], Any]
) -> dict[str, dict[str, int]]:
    """``{"pursued": {category: episodes}, "won": {category: successes}}`` from a goal
    daemon's per-goal attempts, with ``all`` the totals."""
    out: dict[str, dict[str, int]] = {"pursued": {"all": 0}, "won": {"all": 0}}
    for goal, (tries, wins) in attempts.items():
        category = parse(goal).category
        for measure, count in (("pursued", tries), ("won", wins)):
            out[measure][category] = out[measure].get(category, 0) + count
            out[measure]["all"] += count
    return out


def competence_errors(
    goals: Sequence[str],
    predicted: Sequence[float] | np.ndarray,
    measured: Sequence[float],
    parse: Callable[[str], Any],
) -> dict[str, dict[str, float]]:
    """Per category and ``all``: ``competence_error``, the mean |predicted - measured|
    success over ``goals``; ``predicted`` and ``measured``, the two means (a measured
    success from a few episodes per goal is noisy: the category means are not)."""
    guess = np.asarray(predicted, dtype=np.float64)
    truth = np.asarray(measured, dtype=np.float64)
    if guess.shape != truth.shape or guess.size == 0:
        raise ValueError(f"{guess.size} predictions for {truth.size} measured goals")
    categories = np.asarray([parse(g).category for g in goals], dtype=object)
    masks = {c: categories == c for c in dict.fromkeys(categories.tolist())}
    masks["all"] = np.ones(guess.size, dtype=bool)
    return {
        "competence_error": {c: float(np.abs(guess - truth)[m].mean()) for c, m in masks.items()},
        "predicted": {c: float(guess[m].mean()) for c, m in masks.items()},
        "measured": {c: float(truth[m].mean()) for c, m in masks.items()},
    }


def kept_rows(path: Path, step: int) -> list[dict[str, str]]:
    """The rows of a cut run's CSV up to the evaluation its checkpoint was taken at."""
    if not path.exists():
        return []
    with path.open(newline="") as f:
        return [r for r in csv.DictReader(f) if int(r["env_steps"]) <= step]


def checkpoint_step(run_dir: Path) -> int | None:
    """The env steps of the newest complete checkpoint in ``run_dir`` (None: none)."""
    directory = run_dir / "checkpoints"
    if not directory.is_dir():
        return None
    newest = CheckpointManager(directory).latest()
    return None if newest is None else newest.step


def run_concurrent(agent: Agent, recorder: Recorder, every: int) -> None:
    """Train with the collector and learner threads of ``run.mode: concurrent``, and
    evaluate afterwards the policies saved every ``every`` env steps, so evaluation takes
    no CPU from training and ``train_seconds`` is the concurrent run's wall time."""
    saved: list[tuple[int, int, float, dict[str, Any]]] = []
    began = time.perf_counter()
    threads = agent.start_threads()
    mark = 0
    while any(t.is_alive() for t in threads if not t.daemon):
        time.sleep(0.05)
        steps = agent.collector.env_steps
        if steps // every > mark or agent.done:
            mark = steps // every
            with agent.lock:
                state = agent.learner.state_dict()
                steps, updates = agent.collector.env_steps, agent.learner.num_updates
            saved.append((steps, updates, time.perf_counter() - began, state))
    agent.stop()
    for thread in threads:
        thread.join(timeout=120)  # the learner finishes the update in hand
    for steps, updates, seconds, state in saved:
        agent.learner.load_state_dict(state)
        recorder.train_seconds = seconds
        recorder.record(agent.learner, steps, updates)


def stop_after(seconds: float) -> Callable[[Agent], None]:
    """A hook that stops the run once ``seconds`` of wall time have passed."""
    deadline = time.monotonic() + seconds

    def check(agent: Agent) -> None:
        if time.monotonic() > deadline:
            agent.stop()

    return check


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, required=True, help="autotelic YAML config")
    parser.add_argument(
        "--method", required=True, help=f"{', '.join(METHODS)}, or a variant of the file"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budget", type=int, default=None, help="env steps (default: config)")
    parser.add_argument("--eval-every", type=int, default=2000, help="env steps between evals")
    parser.add_argument("--eval-episodes", type=int, default=2, help="episodes per goal")
    parser.add_argument("--eval-envs", type=int, default=32)
    parser.add_argument("--out", type=Path, default=Path("bench/out/experiments"))
    parser.add_argument(
        "--max-minutes", type=float, default=None, help="also stop after this much wall time"
    )
    parser.add_argument(
        "--fresh", action="store_true", help="start over even if a cut run could resume"
    )
    parser.add_argument(
        "--driver",
        choices=["serial", "concurrent"],
        default="serial",
        help="serial: collect and learn in turn (a seed reproduces its curve); concurrent: "
        "collector and learner threads, evaluated afterwards (wall time)",
    )
    args = parser.parse_args(argv)

    budget = args.budget or (read_experiment(args.config)[0].get("run") or {}).get("max_env_steps")
    if budget is None:
        sys.exit("give --budget or run.max_env_steps in the config")
    args.out.mkdir(parents=True, exist_ok=True)
    label = args.method if args.driver == "serial" else f"{args.method}-concurrent"
    run_dir = args.out / "runs" / f"{label}-s{args.seed}"
    # Only the serial driver checkpoints at its evaluations; a concurrent run starts over.
    resume_at = None if args.fresh or args.driver != "serial" else checkpoint_step(run_dir)
    if resume_at is None:
        shutil.rmtree(run_dir, ignore_errors=True)
    else:
        print(
            f"[{label} s{args.seed}] resuming from the checkpoint at {resume_at} steps", flush=True
        )
    settings = build_settings(args.config, args.method, args.seed, budget, run_dir, args.driver)
    recorder = Recorder(
        args.out / f"{label}-s{args.seed}.csv", label, args.seed, settings, args, resume_at
    )
    done = args.out / f"{label}-s{args.seed}.done"
    done.unlink(missing_ok=True)
    base, _ = resolve_method(args.config, args.method)
    if base == "random":
        recorder(None, RandomPolicy())
        done.touch()
        return
    agent = Agent(settings)
    try:
        if resume_at is None:
            recorder(agent)
        if args.driver == "concurrent" and base != "zero-shot":
            run_concurrent(agent, recorder, args.eval_every)
        elif base != "zero-shot":
            recorder.checkpoint_after = True
            hooks: list[tuple[int, Callable[[Agent], None]]] = [(args.eval_every, recorder)]
            if args.max_minutes is not None:
                hooks.append((agent.settings.env.num_envs, stop_after(args.max_minutes * 60)))
            agent.run_serial(hooks=hooks)
            recorder(agent)  # the final policy (skipped if just evaluated)
    finally:
        agent.close()
    done.touch()


if __name__ == "__main__":
    main()
