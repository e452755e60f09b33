"""Prometheus metrics of the service.

Names follow Prometheus conventions: an ``autotelic_`` prefix, base units,
``_total`` counters. Labels are bounded sets (goal category, goal source,
outcome, status, and for evaluations split and way of acting): goal text never
appears in a label, since every distinct label value is a new time series.
Per-goal figures are read offline instead (``autotelic goals``).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import Any
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from autotelic.runtime.telemetry.events import EvalFigures, Readings, RunEvents, RunStart

log = logging.getLogger(__name__)


class ActorMetrics:
    """Per collector actor (``run.backend: ray``); the ``actor`` label is the actor's number
    (a bounded set). Registered only when a Ray run asks for them (:attr:`Metrics.actors`),
    so a local run exports no empty families."""

    def __init__(self, r: CollectorRegistry) -> None:
        self.env_steps = Counter(
            "autotelic_actor_env_steps_total",
            "Environment steps taken by each collector actor (backend ray).",
            ["actor"],
            registry=r,
        )
        self.steps_rate = Gauge(
            "autotelic_actor_env_steps_per_second",
            "Recent environment steps per second of each collector actor (backend ray).",
            ["actor"],
            registry=r,
        )
        self.policy_lag = Gauge(
            "autotelic_actor_policy_lag_versions",
            "Policy versions between the learner and the copy that acted last in each "
            "collector actor (backend ray).",
            ["actor"],
            registry=r,
        )
        self.restarts = Counter(
            "autotelic_actor_restarts_total",
            "Calls a collector actor lost because its process died; Ray restarts it.",
            ["actor"],
            registry=r,
        )


class Metrics:
    """Every metric the service exports, on a registry of its own."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.info = Gauge(
            "autotelic_info",
            "Constant 1, labelled with the run's setup.",
            ["version", "learner", "model"],
            registry=r,
        )
        # Collection.
        self.env_steps = Counter(
            "autotelic_env_steps_total", "Environment steps taken.", registry=r
        )
        self.episodes = Counter(
            "autotelic_episodes_total",
            "Finished episodes.",
            ["category", "source", "outcome"],
            registry=r,
        )
        self.episode_steps = Histogram(
            "autotelic_episode_steps",
            "Steps per finished episode.",
            ["category"],
            buckets=(1, 2, 3, 4, 6, 8, 10, 15),
            registry=r,
        )
        self.success_rate = Gauge(
            "autotelic_success_rate_ratio",
            "Success rate of training episodes (exploratory actions, curriculum goals) over "
            "the curriculum's recent window, per goal category; not an evaluation.",
            ["category"],
            registry=r,
        )
        self.learning_progress = Gauge(
            "autotelic_learning_progress_ratio",
            "Mean absolute learning progress of the category's goals.",
            ["category"],
            registry=r,
        )
        self.env_steps_rate = Gauge(
            "autotelic_env_steps_per_second", "Recent environment steps per second.", registry=r
        )
        self.goals_known = Gauge(
            "autotelic_goals_known", "Goals in the registry.", ["source"], registry=r
        )
        # Learning.
        self.updates = Counter(
            "autotelic_learner_updates_total", "Gradient updates done.", registry=r
        )
        self.updates_rate = Gauge(
            "autotelic_learner_updates_per_second", "Recent updates per second.", registry=r
        )
        self.critic_loss = Gauge("autotelic_critic_loss", "Last critic loss.", registry=r)
        self.actor_loss = Gauge("autotelic_actor_loss", "Last actor loss.", registry=r)
        self.alpha = Gauge("autotelic_alpha", "Entropy temperature.", registry=r)
        self.entropy = Gauge(
            "autotelic_policy_entropy_nats", "Mean policy entropy on the last batch.", registry=r
        )
        self.learner_stat = Gauge(
            "autotelic_learner_stat",
            "Last value of each stat the learner's update reported, labelled with the key "
            "the algorithm named it by (an identifier of the algorithm, never goal text).",
            ["key"],
            registry=r,
        )
        self.policy_version = Gauge(
            "autotelic_policy_version",
            "Version of the policy the collector acts with.",
            registry=r,
        )
        self.policy_lag = Gauge(
            "autotelic_policy_lag_versions",
            "Mean versions between the policy that acted and the one trained, last batch.",
            registry=r,
        )
        # Storage.
        self.replay_transitions = Gauge(
            "autotelic_replay_transitions", "Transitions in the replay store.", registry=r
        )
        self.replay_episodes = Gauge(
            "autotelic_replay_episodes", "Episodes in the replay store.", registry=r
        )
        self.checkpoints = Counter(
            "autotelic_checkpoints_total", "Checkpoints written.", registry=r
        )
        self.last_checkpoint = Gauge(
            "autotelic_last_checkpoint_timestamp_seconds",
            "When the last checkpoint was written.",
            registry=r,
        )
        # Periodic evaluation (runtime/evaluation/periodic.py): fixed episode sets, nothing stored.
        self.eval_success = Gauge(
            "autotelic_eval_success_ratio",
            "Success rate of the last periodic evaluation on its fixed episode set, per split "
            "(train: training goals, test: held-out goals), way of acting (greedy, sampled) "
            "and goal category.",
            ["split", "acting", "category"],
            registry=r,
        )
        self.eval_episode_steps = Gauge(
            "autotelic_eval_episode_steps",
            "Mean episode length in the last periodic evaluation, per split, way of acting "
            "and goal category.",
            ["split", "acting", "category"],
            registry=r,
        )
        self.eval_measured_env_steps = Gauge(
            "autotelic_eval_measured_env_steps",
            "Training env steps when the last periodic evaluation started.",
            registry=r,
        )
        self.eval_measured_policy_version = Gauge(
            "autotelic_eval_measured_policy_version",
            "Policy version when the last periodic evaluation started.",
            registry=r,
        )
        self.eval_last = Gauge(
            "autotelic_eval_last_timestamp_seconds",
            "When the last periodic evaluation finished.",
            registry=r,
        )
        self.evaluations = Counter(
            "autotelic_evaluations_total", "Periodic evaluations completed.", registry=r
        )
        self.eval_env_steps = Counter(
            "autotelic_eval_env_steps_total",
            "Env steps spent on periodic evaluation (its own envs; neither stored nor counted "
            "as training steps).",
            registry=r,
        )
        # Goals from people and the MQTT link.
        self.injected_goals = Counter(
            "autotelic_injected_goals_total",
            "Goal requests by status: accepted, rejected, completed, expired.",
            ["status"],
            registry=r,
        )
        self.injected_pending = Gauge(
            "autotelic_injected_goals_pending",
            "Accepted injected episodes not yet run.",
            registry=r,
        )
        self.results_pending = Gauge(
            "autotelic_results_pending",
            "Injection results kept durably until the MQTT broker acknowledges them.",
            registry=r,
        )
        self.mqtt_connected = Gauge(
            "autotelic_mqtt_connected", "1 while connected to the MQTT broker.", registry=r
        )
        self.mqtt_reconnects = Counter(
            "autotelic_mqtt_reconnects_total", "Times the MQTT link was lost.", registry=r
        )
        self.mqtt_dropped = Counter(
            "autotelic_mqtt_dropped_messages_total",
            "Outgoing messages dropped because the outbox was full.",
            registry=r,
        )
        for status in ("accepted", "rejected", "completed", "expired"):
            self.injected_goals.labels(status=status)
        self.mqtt_connected.set(0)

    def events(self) -> RunEvents:
        """A sink of the run's event stream that shows every event in these metrics (what
        the service hands the agent it builds)."""
        return PrometheusEvents(self)

    @cached_property
    def actors(self) -> ActorMetrics:
        """The per-actor metrics, registered on first use."""
        return ActorMetrics(self.registry)

    def _resumed(self) -> dict[str, Counter]:
        """The counters a checkpoint carries across a restart, by name. Env steps and
        updates are not among them (the run's own counters restore those), nor are
        evaluations (evaluations.csv, the durable record, restores them)."""
        return {
            "episodes": self.episodes,
            "checkpoints": self.checkpoints,
            "injected_goals": self.injected_goals,
            "eval_env_steps": self.eval_env_steps,
            "mqtt_reconnects": self.mqtt_reconnects,
            "mqtt_dropped": self.mqtt_dropped,
        }

    def counter_state(self) -> CounterState:
        """Every resumed counter's value per label set, as plain data for a checkpoint.

        ``checkpoints`` counts the checkpoint that saves this state, which is only
        incremented once it is written: whoever loads the state loads that checkpoint.
        """
        state: CounterState = {}
        for name, counter in self._resumed().items():
            rows: list[list[Any]] = []
            for family in counter.collect():
                rows.extend(
                    [dict(sample.labels), sample.value]
                    for sample in family.samples
                    if sample.name.endswith("_total")
                )
            state[name] = rows
        state["checkpoints"] = [[labels, value + 1] for labels, value in state["checkpoints"]]
        return state

    def resume_counters(self, state: Mapping[str, Any]) -> None:
        """Continue from a checkpoint's :meth:`counter_state`: each counter goes up by its
        saved value, so the series a scrape sees carries on instead of restarting at 0
        (state from an older or damaged checkpoint is skipped row by row)."""
        counters = self._resumed()
        for name, rows in state.items():
            counter = counters.get(name)
            if counter is None or not isinstance(rows, list):
                continue
            for row in rows:
                with contextlib.suppress(TypeError, ValueError):
                    labels, value = row
                    target = counter.labels(**labels) if labels else counter
                    target.inc(max(0.0, float(value)))

    def count_stored_episode(self, category: str, source: str, success: bool) -> None:
        """An episode stored after the checkpoint a resumed run loaded: counted as when it
        finished, so episodes_total agrees with the run's episode count."""
        outcome = "success" if success else "failure"
        self.episodes.labels(category=category, source=source, outcome=outcome).inc()


CounterState = dict[str, list[list[Any]]]
"""Resumed counter name -> ``[labels, value]`` for each of its series (lists, not tuples:
a checkpoint keeps plain JSON as JSON)."""


class RateMeter:
    """Keeps a gauge at the rate of a growing count, measured over windows of ``every`` s.

    The first call only takes a mark, so counts restored from a checkpoint
    never show up as a burst of speed.
    """

    def __init__(self, gauge: Gauge, every: float = 2.0) -> None:
        self._gauge = gauge
        self._every = every
        self._mark: tuple[float, int] | None = None

    def update(self, count: int) -> None:
        now = time.monotonic()
        if self._mark is None:
            self._mark = (now, count)
            return
        mark_time, mark_count = self._mark
        if now - mark_time >= self._every:
            self._gauge.set((count - mark_count) / (now - mark_time))
            self._mark = (now, count)


DASHBOARD_GAUGES: Mapping[str, str] = {
    "critic_loss": "critic_loss",
    "value_loss": "critic_loss",  # an on-policy critic is its value head
    "actor_loss": "actor_loss",
    "policy_loss": "actor_loss",
    "alpha": "alpha",
    "policy_lag": "policy_lag",
    "policy_version": "policy_version",
}
"""Stat key -> attribute of :class:`Metrics`: the named gauges the Grafana dashboard
(ops/grafana) queries, fed from the keys SAC and PPO report. Only this adapter knows
them; every key, these included, is also in ``autotelic_learner_stat``."""

MAX_STAT_KEYS = 256
"""Distinct keys ``autotelic_learner_stat`` takes: each is a time series, so an
algorithm that put a counter in its key names would otherwise grow the scrape forever."""


class PrometheusSink:
    """The learner's stats onto the service's metrics (a plain
    :class:`~autotelic.runtime.telemetry.tracking.Sink`, which :class:`PrometheusEvents`
    feeds): every key as ``autotelic_learner_stat{key=...}``, the dashboard's named gauges,
    and the update counter and rate, which the step (the learner's update count) drives."""

    def __init__(self, metrics: Metrics, *, start_step: int) -> None:
        self._metrics = metrics
        self._step = start_step
        """The update count the counter holds already (the agent adds the restored one)."""
        self._rate = RateMeter(metrics.updates_rate)
        self._keys: set[str] = set()
        self._full = False

    def record(self, step: int, values: Mapping[str, float]) -> None:
        m = self._metrics
        if step > self._step:
            m.updates.inc(step - self._step)
            self._step = step
        for key, value in values.items():
            if self._admit(key):
                m.learner_stat.labels(key=key).set(value)
            gauge = DASHBOARD_GAUGES.get(key)
            if gauge is not None:
                getattr(m, gauge).set(value)
        self._rate.update(step)

    def _admit(self, key: str) -> bool:
        """Whether ``key`` has (or may take) a series of its own; warns once when full."""
        if key in self._keys:
            return True
        if len(self._keys) >= MAX_STAT_KEYS:
            if not self._full:
                log.warning("more than %d learner stat keys: %r and later ones are not "
                            "exported to Prometheus", MAX_STAT_KEYS, key)  # fmt: skip
                self._full = True
            return False
        self._keys.add(key)
        return True

    def close(self) -> None:
        """Nothing to release: the registry outlives the sink."""


class PrometheusEvents(RunEvents):
    """The run's events as the service's Prometheus metrics (the Grafana dashboard's)."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self._env_steps = 0
        self._steps_rate = RateMeter(metrics.env_steps_rate)
        self._stats = PrometheusSink(metrics, start_step=0)

    def run_started(self, start: RunStart) -> None:
        m = self.metrics
        m.info.labels(version=start.version, learner=start.learner, model=start.model).set(1)
        m.policy_version.set(start.policy_version)
        m.env_steps.inc(start.env_steps)
        m.updates.inc(start.updates)
        m.resume_counters(start.restored)
        self._env_steps = start.env_steps
        self._steps_rate.update(self._env_steps)
        self._stats = PrometheusSink(m, start_step=start.updates)

    def learner_stats(self, step: int, values: Mapping[str, float]) -> None:
        self._stats.record(step, values)

    def env_steps(self, n: int) -> None:
        self.metrics.env_steps.inc(n)
        self._env_steps += n
        self._steps_rate.update(self._env_steps)

    def episode_stored(self, category: str, source: str, success: bool, steps: int) -> None:
        self.episode_recounted(category, source, success)
        self.metrics.episode_steps.labels(category=category).observe(steps)

    def episode_recounted(self, category: str, source: str, success: bool) -> None:
        self.metrics.count_stored_episode(category, source, success)

    def policy_entropy(self, nats: float) -> None:
        self.metrics.entropy.set(nats)

    def checkpoint_written(self, at: float) -> None:
        self.metrics.checkpoints.inc()
        self.metrics.last_checkpoint.set(at)

    def injection_finished(self, status: str) -> None:
        self.metrics.injected_goals.labels(status=status).inc()

    def eval_env_steps(self, n: int) -> None:
        self.metrics.eval_env_steps.inc(n)

    def evaluation_done(self, figures: EvalFigures) -> None:
        self._show_evaluation(figures)
        self.metrics.evaluations.inc()

    def evaluations_restored(self, count: int, last: EvalFigures | None) -> None:
        if last is not None:
            self._show_evaluation(last)
        self.metrics.evaluations.inc(count)

    def _show_evaluation(self, figures: EvalFigures) -> None:
        m = self.metrics
        for c in figures.cells:
            labels = {"split": c.split, "acting": c.acting, "category": c.category}
            m.eval_success.labels(**labels).set(c.success)
            m.eval_episode_steps.labels(**labels).set(c.mean_steps)
        m.eval_measured_env_steps.set(figures.env_steps)
        m.eval_measured_policy_version.set(figures.policy_version)
        m.eval_last.set(figures.time)

    def actors_started(self, actors: Sequence[str]) -> None:
        a = self.metrics.actors
        for label in actors:  # every actor's series from the start, at 0
            for family in (a.env_steps, a.restarts, a.steps_rate, a.policy_lag):
                family.labels(actor=label)

    def actor_progress(self, actor: str, steps: int, steps_per_s: float, lag: float) -> None:
        a = self.metrics.actors
        a.env_steps.labels(actor=actor).inc(steps)
        a.steps_rate.labels(actor=actor).set(steps_per_s)
        a.policy_lag.labels(actor=actor).set(lag)

    def actor_restarted(self, actor: str) -> None:
        self.metrics.actors.restarts.labels(actor=actor).inc()

    def readings(self, readings: Readings) -> None:
        m = self.metrics
        m.replay_transitions.set(readings.replay_transitions)
        m.replay_episodes.set(readings.replay_episodes)
        for category, rate in readings.success_rate.items():
            m.success_rate.labels(category=category).set(rate)
        for category, progress in readings.learning_progress.items():
            m.learning_progress.labels(category=category).set(progress)
        for source, count in readings.goals_by_source.items():
            m.goals_known.labels(source=source).set(count)
        m.injected_pending.set(readings.injected_pending)
        m.results_pending.set(readings.results_pending)

    def mqtt_connected(self, up: bool) -> None:
        self.metrics.mqtt_connected.set(1 if up else 0)

    def mqtt_reconnecting(self) -> None:
        self.metrics.mqtt_reconnects.inc()

    def mqtt_dropped(self) -> None:
        self.metrics.mqtt_dropped.inc()

    def injection_requested(self, status: str) -> None:
        self.metrics.injected_goals.labels(status=status).inc()

    def checkpoint_state(self, restored: Mapping[str, Any]) -> CounterState:
        return self.metrics.counter_state()


class MetricsServer:
    """Serves ``/metrics`` over HTTP on its own thread."""

    def __init__(self, metrics: Metrics, host: str = "127.0.0.1", port: int = 0) -> None:
        self._server: WSGIServer
        self._thread: threading.Thread
        self._server, self._thread = start_http_server(port, addr=host, registry=metrics.registry)
        self.host = host
        self.port: int = self._server.server_port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/metrics"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
