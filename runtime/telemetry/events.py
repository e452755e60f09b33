"""What the loop reports as it runs, to whoever shows it.

The collector, the agent, the evaluator and the backends call a :class:`RunEvents` at the
moments its methods name (env steps taken, an episode stored, a checkpoint written, an
evaluation finished) and hand it plain figures. They know no metric system: this class
does nothing, and an adapter overrides the events it shows. The service's Prometheus
adapter is :class:`autotelic.runtime.telemetry.metrics.PrometheusEvents`; another system
(StatsD, OpenTelemetry, a test's recorder) is another subclass, and nothing in the loop
changes. Learner stats, whose keys only the algorithm knows, take the open path of
:mod:`autotelic.runtime.telemetry.tracking`; an adapter joins it with
:meth:`RunEvents.learner_sink`.

Events arrive from the collector's, the learner's and the evaluator's threads: an adapter
must be safe to call from several threads (Prometheus's client is).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from autotelic.runtime.telemetry.tracking import Sink, Tracking


@dataclass(frozen=True)
class RunStart:
    """Where a run (re)starts: its setup and the counts it carries on from."""

    version: str
    learner: str
    model: str
    policy_version: int
    env_steps: int
    updates: int
    restored: Mapping[str, Any] = field(default_factory=dict)
    """What the adapter's :meth:`RunEvents.checkpoint_state` saved in the loaded checkpoint
    (empty for a new run)."""


@dataclass(frozen=True)
class EvalCell:
    """One cell of an evaluation: a split, a way of acting and a goal category."""

    split: str
    acting: str
    category: str
    success: float
    mean_steps: float


@dataclass(frozen=True)
class EvalFigures:
    """What one periodic evaluation measured, and when."""

    env_steps: float
    policy_version: float
    time: float
    cells: tuple[EvalCell, ...]


@dataclass(frozen=True)
class Readings:
    """Figures that are read rather than counted: the store's size, the curriculum."""

    replay_transitions: int
    replay_episodes: int
    success_rate: Mapping[str, float]
    """Per goal category, over the curriculum's recent window of training episodes."""
    learning_progress: Mapping[str, float]
    """Per goal category, the mean absolute learning progress of its goals."""
    goals_by_source: Mapping[str, int]
    injected_pending: int
    results_pending: int


class RunEvents:
    """The run's events, each a no-op here: override the ones an adapter shows."""

    def run_started(self, start: RunStart) -> None:
        """The agent is built and about to collect (once per process start)."""

    def env_steps(self, n: int) -> None:
        """``n`` more training env steps were taken."""

    def episode_stored(self, category: str, source: str, success: bool, steps: int) -> None:
        """A training or injected episode of ``steps`` steps is durably stored."""

    def episode_recounted(self, category: str, source: str, success: bool) -> None:
        """A resumed run found an episode stored after its checkpoint (counted as stored
        then, so episode counts agree with the store)."""

    def policy_entropy(self, nats: float) -> None:
        """The mean entropy of the policy over the candidates of the last acting step."""

    def checkpoint_written(self, at: float) -> None:
        """A checkpoint is complete on disk (``at``: Unix time)."""

    def injection_finished(self, status: str) -> None:
        """An injected goal's request ended: ``completed`` or ``expired``."""

    def eval_env_steps(self, n: int) -> None:
        """``n`` env steps were spent on evaluation (neither stored nor trained on)."""

    def evaluation_done(self, figures: EvalFigures) -> None:
        """A periodic evaluation finished."""

    def evaluations_restored(self, count: int, last: EvalFigures | None) -> None:
        """A resumed run's record holds ``count`` evaluations, the newest ``last``."""

    def actors_started(self, actors: Sequence[str]) -> None:
        """A backend started collector actors with these labels."""

    def actor_progress(self, actor: str, steps: int, steps_per_s: float, lag: float) -> None:
        """Collector actor ``actor`` took ``steps`` more steps, at ``steps_per_s`` recently,
        acting ``lag`` policy versions behind the learner."""

    def actor_restarted(self, actor: str) -> None:
        """Collector actor ``actor``'s process died and is being replaced."""

    def readings(self, readings: Readings) -> None:
        """The latest read figures (called every few seconds by the service)."""

    def learner_sink(self, start_step: int) -> Sink | None:
        """A sink of the learner's stats for this adapter (None: it shows none)."""
        return None

    def checkpoint_state(self, restored: Mapping[str, Any]) -> Mapping[str, Any]:
        """What a checkpoint keeps for this adapter so a restart continues its series
        (``restored``: what the loaded checkpoint kept, carried on by an adapter that
        counts nothing)."""
        return restored


class FanOut(RunEvents):
    """Hands every event to each of several adapters; the first is the primary, whose
    learner sink and checkpoint state are the run's."""

    def __init__(self, primary: RunEvents, *others: RunEvents) -> None:
        self.all = (primary, *others)

    def run_started(self, start: RunStart) -> None:
        for e in self.all:
            e.run_started(start)

    def env_steps(self, n: int) -> None:
        for e in self.all:
            e.env_steps(n)

    def episode_stored(self, category: str, source: str, success: bool, steps: int) -> None:
        for e in self.all:
            e.episode_stored(category, source, success, steps)

    def episode_recounted(self, category: str, source: str, success: bool) -> None:
        for e in self.all:
            e.episode_recounted(category, source, success)

    def policy_entropy(self, nats: float) -> None:
        for e in self.all:
            e.policy_entropy(nats)

    def checkpoint_written(self, at: float) -> None:
        for e in self.all:
            e.checkpoint_written(at)

    def injection_finished(self, status: str) -> None:
        for e in self.all:
            e.injection_finished(status)

    def eval_env_steps(self, n: int) -> None:
        for e in self.all:
            e.eval_env_steps(n)

    def evaluation_done(self, figures: EvalFigures) -> None:
        for e in self.all:
            e.evaluation_done(figures)

    def evaluations_restored(self, count: int, last: EvalFigures | None) -> None:
        for e in self.all:
            e.evaluations_restored(count, last)

    def actors_started(self, actors: Sequence[str]) -> None:
        for e in self.all:
            e.actors_started(actors)

    def actor_progress(self, actor: str, steps: int, steps_per_s: float, lag: float) -> None:
        for e in self.all:
            e.actor_progress(actor, steps, steps_per_s, lag)

    def actor_restarted(self, actor: str) -> None:
        for e in self.all:
            e.actor_restarted(actor)

    def readings(self, readings: Readings) -> None:
        for e in self.all:
            e.readings(readings)

    def learner_sink(self, start_step: int) -> Sink | None:
        return self.all[0].learner_sink(start_step)

    def checkpoint_state(self, restored: Mapping[str, Any]) -> Mapping[str, Any]:
        return self.all[0].checkpoint_state(restored)


class TrackedEvents(RunEvents):
    """The run's figures as stats of the tracking sinks (CSV, TensorBoard, W&B, MLflow),
    at the learner's current update count, beside the learner's own stats: each
    evaluation's success and episode length per split, way of acting and category (and
    their mean over categories, the headline figure), and the curriculum's and the
    store's readings with the last policy entropy."""

    def __init__(self, tracking: Tracking, step: Callable[[], int]) -> None:
        self.tracking = tracking
        self.step = step
        self._entropy: float | None = None

    def policy_entropy(self, nats: float) -> None:
        self._entropy = nats

    def evaluation_done(self, figures: EvalFigures) -> None:
        self.tracking.record(self.step(), evaluation_stats(figures))

    def readings(self, readings: Readings) -> None:
        stats: dict[str, float] = {
            "replay/transitions": readings.replay_transitions,
            "replay/episodes": readings.replay_episodes,
            "goals/injected_pending": readings.injected_pending,
        }
        for category, rate in readings.success_rate.items():
            stats[f"curriculum/{category}/success_rate"] = rate
        for category, progress in readings.learning_progress.items():
            stats[f"curriculum/{category}/learning_progress"] = progress
        for source, count in readings.goals_by_source.items():
            stats[f"goals/known/{source}"] = count
        if self._entropy is not None:
            stats["collector/policy_entropy"] = self._entropy
        self.tracking.record(self.step(), stats)


def evaluation_stats(figures: EvalFigures) -> dict[str, float]:
    """``eval/<split>/<acting>/<category>/success`` and ``.../steps`` for every cell, and
    ``eval/<split>/<acting>/success``, the mean over categories."""
    stats: dict[str, float] = {}
    groups: dict[str, list[float]] = {}
    for c in figures.cells:
        where = f"eval/{c.split}/{c.acting}"
        stats[f"{where}/{c.category}/success"] = c.success
        stats[f"{where}/{c.category}/steps"] = c.mean_steps
        groups.setdefault(where, []).append(c.success)
    for where, successes in groups.items():
        stats[f"{where}/success"] = sum(successes) / len(successes)
    return stats
