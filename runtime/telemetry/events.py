"""What the loop reports as it runs: one stream of events that every sink receives.

The collector, the agent, the learner loop, the evaluator, the MQTT bridge and the
backends call a :class:`RunEvents` at the moments its methods name (env steps taken, an
episode stored, an update's stats, a checkpoint written, an evaluation finished, the
broker connection) and hand it plain figures. They know no metric system. The agent holds
one :class:`EventStream`, which hands every event to each of its sinks: the service's
Prometheus adapter (:class:`autotelic.runtime.telemetry.metrics.PrometheusEvents`), the
sinks the ``tracking:`` section names from the sink registry
(:mod:`autotelic.runtime.telemetry.sinks`: CSV, TensorBoard, W&B, MLflow, a plug-in's),
and whatever ``agent.events.add(sink)`` adds from Python. A sink is either a
:class:`RunEvents` subclass that overrides the events it shows, or a plain
:class:`~autotelic.runtime.telemetry.tracking.Sink` (``record(step, values)`` and
``close()``), which :class:`StatsEvents` feeds with the learner's stats, each evaluation's
figures and the curriculum's readings, all as ``key -> float`` at the learner's update
count, each record with the env-step count its figures belong to (the trackers' x axis).

Events arrive from the collector's, the learner's, the evaluator's and the bridge's
threads: a sink must be safe to call from several threads (Prometheus's client is).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from autotelic.runtime.telemetry.progress import Snapshot
from autotelic.runtime.telemetry.tracking import ENV_STEPS, EVAL_ENV_STEPS, Sink, numbers


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

    def learner_stats(self, step: int, values: Mapping[str, float]) -> None:
        """An update's stats, under the names the algorithm chose (plus the loop's
        ``policy_lag``, ``relabeled_share``, ``policy_version``); ``step`` is the learner's
        update count, which a checkpoint saves, so a resumed run continues its series."""

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

    def progress(self, snapshot: Snapshot) -> None:
        """The run's counters at a progress interval of the service (the console's line)."""

    def mqtt_connected(self, up: bool) -> None:
        """The MQTT bridge's session to the broker is up (or down)."""

    def mqtt_reconnecting(self) -> None:
        """The MQTT bridge lost its session (or never had one) and tries again."""

    def mqtt_dropped(self) -> None:
        """The MQTT bridge's outbox was full: its oldest message not kept elsewhere is gone."""

    def injection_requested(self, status: str) -> None:
        """A goal request arrived over a transport: ``accepted`` or ``rejected``."""

    def close(self) -> None:
        """Flush and release; no event follows."""

    def checkpoint_state(self, restored: Mapping[str, Any]) -> Mapping[str, Any]:
        """What a checkpoint keeps for this adapter so a restart continues its series
        (``restored``: what the loaded checkpoint kept, carried on by an adapter that
        counts nothing)."""
        return restored


class EventStream(RunEvents):
    """The run's one event stream: every event to each sink, in the order they joined.

    ``step`` reads the learner's update count, the step a plain sink records the run's
    figures (evaluations, readings) at, beside the learner's own stats of that step;
    ``env_steps`` reads the training env steps taken, which every record of a plain sink
    carries (the trackers' x axis). Sinks may join while events flow (from another
    thread): the list is replaced, never changed in place, so a dispatch in progress
    finishes on the list it started with.
    """

    def __init__(
        self,
        sinks: Sequence[RunEvents | Sink] = (),
        *,
        step: Callable[[], int] = lambda: 0,
        env_steps: Callable[[], int] = lambda: 0,
    ) -> None:
        self.step = step
        self.env_steps_taken = env_steps
        self.sinks: tuple[RunEvents, ...] = ()
        for sink in sinks:
            self.add(sink)

    def add(self, sink: RunEvents | Sink) -> RunEvents:
        """Plug in a sink; it receives every later event. A plain ``record``/``close`` sink
        gets the learner's stats, evaluations and readings (:class:`StatsEvents`)."""
        if isinstance(sink, RunEvents):
            events = sink
        else:
            events = StatsEvents(sink, self.step, self.env_steps_taken)
        self.sinks = (*self.sinks, events)
        return events

    def learner_stats(self, step: int, values: Mapping[str, Any]) -> None:
        """Hand ``values`` as floats to every sink (a value that is not a number is left
        out: a learner may return NumPy scalars, and one odd value should cost that value,
        not the record)."""
        clean = numbers(values)
        for sink in self.sinks:
            sink.learner_stats(step, clean)

    def record(self, step: int, values: Mapping[str, Any]) -> None:
        """The same as :meth:`learner_stats`: the stream is itself a :class:`Sink`."""
        self.learner_stats(step, values)

    def checkpoint_state(self, restored: Mapping[str, Any]) -> Mapping[str, Any]:
        """What each sink keeps, folded in order (a sink that keeps nothing passes on what
        it was given)."""
        state = restored
        for sink in self.sinks:
            state = sink.checkpoint_state(state)
        return state

    def close(self) -> None:
        """Close every sink, also when one fails to (its error is raised after)."""
        failure: Exception | None = None
        for sink in self.sinks:
            try:
                sink.close()
            except Exception as err:  # the others must still flush
                failure = failure or err
        if failure is not None:
            raise failure


def _dispatch(name: str) -> Callable[..., None]:
    def each(self: EventStream, *args: Any) -> None:
        for sink in self.sinks:
            getattr(sink, name)(*args)

    each.__name__ = each.__qualname__ = name
    each.__doc__ = getattr(RunEvents, name).__doc__
    return each


EVENTS = tuple(
    name
    for name, member in vars(RunEvents).items()
    if callable(member) and not name.startswith("_") and name not in vars(EventStream)
)
"""The events the stream hands on as they are (the others it defines above)."""
for _name in EVENTS:
    setattr(EventStream, _name, _dispatch(_name))


class StatsEvents(RunEvents):
    """A plain :class:`~autotelic.runtime.telemetry.tracking.Sink` (CSV, TensorBoard, W&B,
    MLflow, yours) on the event stream: the learner's stats as they come, and the run's
    figures at the learner's current update count: each evaluation's success and episode
    length per split, way of acting and category (and their mean over categories, the
    headline figure), and the curriculum's and the store's readings with the last policy
    entropy.

    Each record carries the env steps its figures belong to: the stats and readings the
    count ``env_steps`` reads when they arrive (``env_steps``), an evaluation the count of
    the policy it evaluated (``eval/env_steps``), which the trackers draw on
    (:func:`~autotelic.runtime.telemetry.tracking.on_env_steps`)."""

    def __init__(
        self, sink: Sink, step: Callable[[], int], env_steps: Callable[[], int] = lambda: 0
    ) -> None:
        self.sink = sink
        self.step = step
        self.env_steps_taken = env_steps
        self._entropy: float | None = None

    def learner_stats(self, step: int, values: Mapping[str, float]) -> None:
        self.sink.record(step, {**values, ENV_STEPS: float(self.env_steps_taken())})

    def policy_entropy(self, nats: float) -> None:
        self._entropy = nats

    def evaluation_done(self, figures: EvalFigures) -> None:
        stats = {**evaluation_stats(figures), EVAL_ENV_STEPS: figures.env_steps}
        self.sink.record(self.step(), stats)

    def readings(self, readings: Readings) -> None:
        stats: dict[str, float] = {
            "replay/transitions": readings.replay_transitions,
            "replay/episodes": readings.replay_episodes,
            "goals/injected_pending": readings.injected_pending,
            ENV_STEPS: self.env_steps_taken(),
        }
        for category, rate in readings.success_rate.items():
            stats[f"curriculum/{category}/success_rate"] = rate
        for category, progress in readings.learning_progress.items():
            stats[f"curriculum/{category}/learning_progress"] = progress
        for source, count in readings.goals_by_source.items():
            stats[f"goals/known/{source}"] = count
        if self._entropy is not None:
            stats["collector/policy_entropy"] = self._entropy
        self.sink.record(self.step(), stats)

    def close(self) -> None:
        self.sink.close()


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
