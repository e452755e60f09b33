"""Periodic evaluation inside the running service: learning curves on fixed goal sets.

Every ``eval.interval_env_steps`` training env steps (or ``eval.interval_s``
seconds), the :class:`PeriodicEvaluator` runs a fixed, seeded set of episodes
per goal category (:func:`~autotelic.runtime.evaluation.evaluate.plan_episodes`) on each
configured split (training goals, held-out goals) and way of acting (greedy,
sampled), with the current policy. It has its own batch of environments per
split and its own random generators, so it never consumes the training random
streams; its episodes are not stored and the curriculum never hears of them.

Cost bound: before each of its batched steps (one env step per running
evaluation episode) the evaluator checks that the env steps it has spent since
the service started, plus that step's, stay within ``eval.max_cost_fraction``
of the training env steps taken meanwhile; otherwise it waits for training.
The bound is counted in env steps, so it holds whatever the speed of either.

Drivers: in serial mode the agent calls :meth:`PeriodicEvaluator.advance`
after each training step (deterministic: evaluation runs between steps, as
far as the budget allows); in concurrent mode :meth:`PeriodicEvaluator.run`
runs in a thread of its own, taking the model lock only for forward passes.
Either way the policy may be updated while an evaluation runs: each result
records the env steps and policy version at its start and at its end.

Each finished evaluation is appended to ``evaluations.csv`` in the run
directory (one row per split, way of acting and category; durable, and
resumed after a restart), set on the ``autotelic_eval_*`` gauges, logged, and
handed to listeners (the service publishes it over MQTT).
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from autotelic.core import EnvConfig, EnvSpec, Learner, Lock, Split, TextEnvBatch
from autotelic.core.time_limit import DEFAULT_TIME_LIMIT, TimeLimit, time_limited
from autotelic.runtime.evaluation.config import EvalConfig
from autotelic.runtime.evaluation.evaluate import (
    EpisodeRunner,
    EvalEpisode,
    EvalResult,
    plan_episodes,
    stable_hash,
)
from autotelic.runtime.telemetry.events import EvalCell, EvalFigures, RunEvents
from autotelic.runtime.telemetry.run_logs import EVAL_FIELDS, CsvLog, read_rows, to_float

log = logging.getLogger(__name__)

EvalListener = Callable[["EvalReport"], None]


@dataclass(frozen=True)
class EvalReport:
    """One finished periodic evaluation."""

    evaluation: int
    """Index of the evaluation in the run (it continues across restarts)."""
    time: float
    """When it finished (Unix seconds)."""
    env_steps: int
    """Training env steps when it started."""
    policy_version: int
    updates: int
    env_steps_end: int
    policy_version_end: int
    duration_s: float
    results: list[EvalResult] = field(default_factory=list)

    @property
    def cost(self) -> int:
        """Env steps the evaluation took."""
        return sum(r.env_steps for r in self.results)

    def rows(self) -> list[dict[str, object]]:
        """Its rows of ``evaluations.csv``."""
        base: dict[str, object] = {
            "time": round(self.time, 3),
            "evaluation": self.evaluation,
            "env_steps": self.env_steps,
            "policy_version": self.policy_version,
            "updates": self.updates,
            "env_steps_end": self.env_steps_end,
            "policy_version_end": self.policy_version_end,
            "duration_s": round(self.duration_s, 3),
        }
        return [
            {
                **base,
                "split": r.split,
                "acting": r.acting,
                "category": category,
                "episodes": r.counts[category],
                "successes": round(r.success[category] * r.counts[category]),
                "success": r.success[category],
                "steps": r.steps[category],
            }
            for r in self.results
            for category in r.success
        ]

    def summary(self) -> str:
        """One line for the log: overall success per split and way of acting."""
        parts = [f"{r.split} {r.acting} {r.overall:.2f}" for r in self.results]
        return (
            f"evaluation {self.evaluation} at {self.env_steps:,} env steps (policy "
            f"v{self.policy_version}..v{self.policy_version_end}, {self.cost} eval steps): "
            + ", ".join(parts)
        )


@dataclass
class _Phase:
    """One split and way of acting of the evaluation in progress."""

    split: Split
    greedy: bool
    runner: EpisodeRunner


@dataclass
class _InProgress:
    evaluation: int
    started: float
    env_steps: int
    policy_version: int
    updates: int
    todo: list[tuple[Split, bool]]
    phase: _Phase | None = None
    results: list[EvalResult] = field(default_factory=list)


class PeriodicEvaluator:
    """Runs the periodic evaluations of one run (see the module docstring)."""

    def __init__(
        self,
        config: EvalConfig,
        learner: Learner,
        spec: EnvSpec,
        env_config: EnvConfig,
        *,
        trained: Callable[[], int],
        path: Path | None = None,
        events: RunEvents | None = None,
        lock: Lock | None = None,
        time_limit: TimeLimit = DEFAULT_TIME_LIMIT,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if not config.enabled:
            raise ValueError("periodic evaluation is disabled in this configuration (eval.enabled)")
        self.config = config
        self.learner = learner
        self.spec = spec
        self.env_config = env_config
        self.trained = trained
        self.events = events or RunEvents()
        self.lock = lock
        self.time_limit: TimeLimit = time_limit
        self.clock = clock
        self.monotonic = monotonic
        self.listeners: list[EvalListener] = []
        self.space = spec.goal_space(env_config)
        self.plans: dict[Split, list[EvalEpisode]] = {}
        for split in config.splits:
            plan = plan_episodes(self.space, split, config.episodes_per_category, config.seed)
            if plan:
                self.plans[split] = plan
            else:
                log.warning("evaluation: %s has no %s goals; that split is skipped", spec.id, split)
        if not self.plans:
            raise ValueError(
                f"nothing to evaluate: {spec.id} has no goals in eval.splits {config.splits}"
            )
        self._envs: dict[Split, TextEnvBatch] = {}
        self.base_env_steps = trained()
        """Training env steps when the service started: the budget counts from here."""
        self.spent = 0
        """Env steps spent on evaluation since the service started."""
        self.last: EvalReport | None = None
        self._current: _InProgress | None = None
        self._closed = False
        history = read_rows(path) if path is not None else []
        self.completed = self._resume(history)
        self._log = CsvLog(path, EVAL_FIELDS) if path is not None else None

    # -- schedule and budget -------------------------------------------------------------------

    def _resume(self, rows: list[dict[str, str]]) -> int:
        """Continue the run's history: the evaluation index, when the next is due, the gauges."""
        usable = [
            r
            for r in rows
            if all(math.isfinite(to_float(r.get(k))) for k in ("evaluation", "env_steps"))
        ]
        last_index = max((int(to_float(r["evaluation"])) for r in usable), default=-1)
        last_rows = [r for r in usable if to_float(r["evaluation"]) == last_index]
        measured = int(to_float(last_rows[0]["env_steps"])) if last_rows else self.trained()
        interval = self.config.interval_env_steps
        self._next_steps = (measured // interval + 1) * interval if interval else None
        every = self.config.interval_s
        self._next_time = self.monotonic() + every if every else None
        # the count continues from the run's record, the figures show its last evaluation
        self.events.evaluations_restored(last_index + 1, _figures_of_rows(last_rows))
        return last_index + 1

    def due(self) -> bool:
        """Whether an evaluation should start now (none is in progress)."""
        if self._current is not None:
            return False
        if self._next_steps is not None and self.trained() >= self._next_steps:
            return True
        return self._next_time is not None and self.monotonic() >= self._next_time

    @property
    def in_progress(self) -> bool:
        return self._current is not None

    def allowance(self) -> int:
        """Env steps evaluation may take now without exceeding its share of training."""
        trained = max(0, self.trained() - self.base_env_steps)
        return int(np.floor(self.config.max_cost_fraction * trained + 1e-9)) - self.spent

    # -- running -------------------------------------------------------------------------------

    def advance(self, stopping: threading.Event | None = None) -> int:
        """Start an evaluation if one is due, then take as many of its steps as the budget
        allows now (never blocks). Returns the env steps taken."""
        if self._closed:
            return 0
        if self._current is None:
            if not self.due():
                return 0
            self._begin()
        taken = 0
        while self._current is not None and not self._closed:
            if stopping is not None and stopping.is_set():
                break
            phase = self._phase()
            if phase is None:
                self._finish()
                break
            if phase.runner.pending > self.allowance():
                break
            n = phase.runner.step()
            self.spent += n
            taken += n
            self.events.eval_env_steps(n)
        return taken

    def evaluate_now(self) -> EvalReport | None:
        """Run one whole evaluation now, outside the budget (an evaluation in progress is
        carried to its end): the first point of a run that reached ``run.max_env_steps``
        before its first periodic evaluation finished, so a short run is measured too.
        Returns the report (None once closed)."""
        if self._closed:
            return None
        if self._current is None:
            self._begin()
        while self._current is not None and not self._closed:
            phase = self._phase()
            if phase is None:
                self._finish()
                break
            n = phase.runner.step()
            self.spent += n
            self.events.eval_env_steps(n)
        return self.last

    def run(self, stopping: threading.Event, poll_s: float = 0.05) -> None:
        """The evaluation thread of concurrent mode: evaluate whenever due, within budget,
        until ``stopping`` is set (an evaluation in progress is then abandoned)."""
        while not stopping.is_set():
            if self.advance(stopping) == 0:
                stopping.wait(poll_s)

    def _begin(self) -> None:
        steps = self.trained()
        self._current = _InProgress(
            evaluation=self.completed,
            started=self.monotonic(),
            env_steps=steps,
            policy_version=self.learner.policy_version,
            updates=self.learner.num_updates,
            todo=[
                (split, acting == "greedy")
                for split in self.config.splits
                if split in self.plans
                for acting in self.config.acting
            ],
        )
        interval = self.config.interval_env_steps
        if interval:
            self._next_steps = (steps // interval + 1) * interval
        if self.config.interval_s:
            self._next_time = self.monotonic() + self.config.interval_s

    def _phase(self) -> _Phase | None:
        """The phase to step: the current one, else the next (None once all are done)."""
        current = self._current
        assert current is not None
        if current.phase is not None and current.phase.runner.done:
            current.results.append(current.phase.runner.result(current.phase.split))
            current.phase = None
        if current.phase is None and current.todo:
            split, greedy = current.todo.pop(0)
            envs = self._batch(split)
            seed = self.config.seed
            envs.seed(seed)
            acting = "greedy" if greedy else "sampled"
            generator = np.random.default_rng([seed, stable_hash(split), stable_hash(acting)])
            runner = EpisodeRunner(
                self.learner,
                envs,
                self.space,
                self.plans[split],
                greedy=greedy,
                generator=generator,
                lock=self.lock,
            )
            current.phase = _Phase(split, greedy, runner)
        return current.phase

    def _batch(self, split: Split) -> TextEnvBatch:
        envs = self._envs.get(split)
        if envs is None:
            n = min(self.config.num_envs, len(self.plans[split]))
            # The policy reads what it read in training (the steps left, when observed).
            envs = time_limited(
                self.spec.make_batch(self.env_config, num_envs=n, split=split), self.time_limit
            )
            self._envs[split] = envs
        return envs

    def _finish(self) -> None:
        current = self._current
        assert current is not None
        self._current = None
        report = EvalReport(
            evaluation=current.evaluation,
            time=self.clock(),
            env_steps=current.env_steps,
            policy_version=current.policy_version,
            updates=current.updates,
            env_steps_end=self.trained(),
            policy_version_end=self.learner.policy_version,
            duration_s=self.monotonic() - current.started,
            results=current.results,
        )
        self.completed = current.evaluation + 1
        self.last = report
        if self._closed:  # the agent closed while this evaluation ran: nothing to log into
            return
        if self._log is not None:
            self._log.append(report.rows())
        self._export(report)
        log.info("%s", report.summary())
        for listener in list(self.listeners):
            try:
                listener(report)
            except Exception:
                log.exception("evaluation listener failed")

    def _export(self, report: EvalReport) -> None:
        cells = tuple(
            EvalCell(r.split, r.acting, category, success, r.mean_steps[category])
            for r in report.results
            for category, success in r.success.items()
        )
        figures = EvalFigures(report.env_steps, report.policy_version, report.time, cells)
        self.events.evaluation_done(figures)

    def close(self) -> None:
        """Close the CSV log (an evaluation in progress is abandoned)."""
        self._closed = True
        if self._log is not None:
            self._log.close()
        for envs in self._envs.values():
            closer: Any = getattr(envs, "close", None)
            if callable(closer):
                with contextlib.suppress(Exception):
                    closer()


def _figures_of_rows(rows: list[dict[str, str]]) -> EvalFigures | None:
    """The figures of one evaluation read back from evaluations.csv (None: no rows)."""
    if not rows:
        return None
    cells = tuple(
        EvalCell(
            r["split"],
            r["acting"],
            r["category"],
            to_float(r["success"]),
            to_float(r["steps"]) / max(to_float(r["episodes"]), 1.0),
        )
        for r in rows
    )
    first = rows[0]
    return EvalFigures(
        to_float(first["env_steps"]),
        to_float(first["policy_version"]),
        to_float(first["time"]),
        cells,
    )
