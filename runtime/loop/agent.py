"""One run composed of its parts and restored from its directory.

goal daemon -> collector (N envs, batched scoring) -> episode store (LMDB)
-> replay sampler (HER) -> learner -> new policy version -> collector.

:class:`Agent` builds the learner that the configuration names through the
registries (:mod:`autotelic.core.registry`), opens the store, restores the run, and
composes it of the parts its backend supplies (:mod:`autotelic.runtime.loop.parts`):
the goal service, the collection, the schedule (the learner kind's registered one,
:mod:`autotelic.runtime.loop.kinds`, unless the backend brings its own) and the
driver, serial (one thread, deterministic: tests and experiments) or concurrent (a
collector thread and, for off-policy learning, a learner thread;
:mod:`autotelic.runtime.loop.drivers`). Whoever controls the run (the service, a
transport) goes through :class:`~autotelic.runtime.loop.control.Control`, which the
agent implements. Periodic evaluation (:mod:`autotelic.runtime.evaluation.periodic`)
runs between serial steps, or in a thread of its own in concurrent mode, on its own
envs and random streams.

Restart semantics: policy, curriculum and counters come from the newest
complete checkpoint, saved together, so they describe the same moment;
episodes stored after it are still in the store (and in replay) and are added
back to the counters, so a kill -9 loses at most the learning since that
checkpoint, never a stored episode.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import yaml

from autotelic import __version__
from autotelic.core import RegistryError, TextEnvBatch, algorithm_spec, backend_spec, env_spec
from autotelic.goals import InjectionReport
from autotelic.runtime.evaluation.periodic import PeriodicEvaluator
from autotelic.runtime.loop.collector import Collector, FinishedEpisode
from autotelic.runtime.loop.config import RunSettings
from autotelic.runtime.loop.control import (
    Accepted,
    AgentStatus,
    EpisodeListener,
    EvaluationListener,
    ReportListener,
    Subscribers,
)
from autotelic.runtime.loop.coordination import SafePoints
from autotelic.runtime.loop.drivers import start_workers
from autotelic.runtime.loop.kinds import schedule_kind
from autotelic.runtime.loop.learner_loop import LearnerLoop
from autotelic.runtime.loop.local import LocalParts
from autotelic.runtime.loop.parts import Collection, CurriculumService, RunParts
from autotelic.runtime.loop.profiles import apply_profile
from autotelic.runtime.loop.rollout import RolloutRecorder
from autotelic.runtime.telemetry.events import EventStream, Readings, RunEvents, RunStart
from autotelic.runtime.telemetry.progress import Snapshot
from autotelic.runtime.telemetry.sinks import open_sinks
from autotelic.storage import (
    CheckpointManager,
    EpisodeStore,
    LoadedCheckpoint,
    RunLayout,
)

__all__ = ["Agent", "Collection", "CurriculumService", "backend_parts"]

log = logging.getLogger(__name__)

StepHook = Callable[["Agent"], None]
STARTS_KEY = "run/starts"
"""Store state key: how many times this run has started."""


def backend_parts(settings: RunSettings) -> RunParts:
    """The parts ``run.backend``'s registration supplies for a run of ``settings``."""
    name = settings.run.backend
    parts = backend_spec(name).parts(settings)
    if not isinstance(parts, RunParts):
        raise RegistryError(
            f"backend {name!r} supplied a {type(parts).__name__}, not run parts "
            "(autotelic.runtime.loop.parts.RunParts)"
        )
    return parts


class Agent:
    """Store, curriculum, learner and collection of one run, restored from its directory
    and composed of the parts its backend supplies (see the module docstring)."""

    collection: Collection
    """What collects: the local collector, or a backend's driver of remote collectors."""

    def __init__(
        self, settings: RunSettings, events: RunEvents | None = None, parts: RunParts | None = None
    ) -> None:
        """``parts``: what ``run.backend``'s registration supplies when not given."""
        # The hardware profile decides what the configuration leaves to it (profiles.py).
        self.settings = apply_profile(settings)
        self.layout = RunLayout(settings.run.dir.resolve())
        self.run_dir = self.layout.root
        self.events = EventStream([events] if events is not None else [],
                                  step=lambda: self.learner.num_updates,
                                  env_steps=lambda: self.collection.env_steps)  # fmt: skip
        """The run's one event stream: the caller's sink (the service's metrics) first, then
        the sinks the ``tracking:`` section names; ``events.add(sink)`` plugs in another."""
        self.lock = threading.Lock()
        self.points = SafePoints()
        self.stopping = threading.Event()
        self.error: BaseException | None = None
        self.subscribers = Subscribers()
        """Who hears the run through :meth:`subscribe` (the control interface)."""
        self.started_from: Snapshot | None = None
        """The counters this process started with (the progress line's first baseline)."""
        self._resumed_events: dict[str, Any] = {}
        """What the loaded checkpoint kept for the events' adapter (its checkpoint_state)."""
        self.parts = parts if parts is not None else backend_parts(self.settings)
        try:
            self._open()
        except BaseException:
            self.parts.close()
            raise

    # -- construction ------------------------------------------------------------------------

    def _open(self) -> None:
        s = self.settings
        self._set_up_torch()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.env_spec = env_spec(s.env.id)
        self.algorithm = algorithm_spec(s.algorithm.name)
        self.goal_space = self.env_spec.goal_space(s.env)
        # The learner takes the checkpoint's state before the store opens or any file is
        # written: a restart the checkpoint refuses (other base weights, another algorithm)
        # leaves every file of the run, its own config.yaml included, as it was.
        self.learner = self.algorithm.build(s.model, s.algorithm)
        self.checkpoints = CheckpointManager(self.layout.checkpoints, keep=s.checkpoint.keep)
        loaded = self.checkpoints.load()
        if loaded is not None:
            self.learner.load_state_dict(loaded.state["learner"], write_lock=self.lock)
        self.store = self._open_store()
        try:
            self.daemon: CurriculumService = self.parts.goal_service(self)
            counters = self._restore(loaded)
        except BaseException:
            self.store.close()
            raise
        self.layout.config.write_text(yaml.safe_dump(s.dump()))
        self._open_tracking(counters)
        self.restarts = self._count_start(counters)
        seeds = np.random.SeedSequence([s.run.seed, self.restarts])
        env_seed, act_seed, replay_seed = seeds.generate_state(3)
        self.collection = self.parts.collection(self, np.random.default_rng(act_seed))
        self.collection.env_steps = int(counters.get("env_steps", 0))
        self.collection.episodes = int(counters.get("episodes", 0))
        self.collection.successes = int(counters.get("successes", 0))
        self.collection.listeners.append(self._on_episode)
        self.learner_loop = LearnerLoop(self.learner, lock=self.lock, events=self.events)
        replay_rng = np.random.default_rng(replay_seed)
        kind = self.algorithm.kind
        own = self.parts.schedule(self, kind, replay_rng)
        self.schedule = own if own is not None else schedule_kind(kind).build(self, replay_rng)
        self.evaluator = self._evaluator()
        self.driver = self.parts.driver(self)
        self.collection.start(seed=int(env_seed))
        self._announce()
        self.started_from = self.snapshot()

    def _open_tracking(self, counters: dict[str, Any]) -> None:
        """The sinks the ``tracking:`` section names join the event stream, resuming at the
        learner's restored update count and the checkpoint's env steps, with the run's full
        configuration (as config.yaml holds it) for the trackers' hyperparameters."""
        open_sinks(self.settings.tracking, self.run_dir, start_step=self.learner.num_updates,
                   start_env_steps=int(counters.get("env_steps", 0)),
                   hyperparameters=self.settings.dump(), into=self.events)  # fmt: skip

    @property
    def tracking(self) -> EventStream:
        """The event stream under the name earlier versions documented
        (``agent.tracking.add(sink)``)."""
        return self.events

    @property
    def collector(self) -> Collector:
        """The local collector (``run.backend: local``); code that serves every backend
        reads :attr:`collection`."""
        if not isinstance(self.collection, Collector):
            raise AttributeError(f"backend {self.settings.run.backend!r} has no local collector")
        return self.collection

    @property
    def envs(self) -> TextEnvBatch:
        """The local collector's env batch as the env made it (``run.backend: local``)."""
        if not isinstance(self.parts, LocalParts):
            raise AttributeError(f"backend {self.settings.run.backend!r} has no local env batch")
        return self.parts.envs

    @property
    def recorder(self) -> RolloutRecorder | None:
        """Where the collection records an on-policy learner's rollouts, if here."""
        return self.collection.recorder

    def _set_up_torch(self) -> None:
        s = self.settings
        threads = s.run.torch_threads
        if threads is None and s.run.mode == "concurrent" and s.model.device == "cpu":
            # Collector and learner compute at once: half the cores each, or they thrash.
            threads = max(1, (os.cpu_count() or 2) // 2)
        if threads:
            torch.set_num_threads(threads)
        if s.model.device.startswith("cuda"):
            # TF32 tensor cores for float32 matmuls: several times faster on Ampere and
            # later, with a 10-bit mantissa that RL's noise dwarfs.
            torch.set_float32_matmul_precision("high")

    def _open_store(self) -> EpisodeStore:
        replay = self.settings.replay
        max_map = None
        if replay.max_map_size_gib is not None:
            max_map = int(replay.max_map_size_gib * 2**30)
        return EpisodeStore(
            self.layout.store,
            capacity_transitions=replay.capacity_transitions,
            durable=replay.durable,
            max_map_size=max_map,
        )

    def _evaluator(self) -> PeriodicEvaluator | None:
        """Periodic evaluation on its own envs and streams (runtime/evaluation/periodic.py),
        its reports handed to the run's subscribers."""
        s = self.settings
        if not s.eval.enabled:
            return None
        evaluator = PeriodicEvaluator(
            s.eval,
            self.learner,
            self.env_spec,
            s.env,
            trained=lambda: self.collection.env_steps,
            path=self.layout.evaluations,
            events=self.events,
            lock=self.lock,
            time_limit=s.run.time_limit,
        )
        evaluator.listeners.append(self.subscribers.evaluation)
        return evaluator

    def _restore(self, loaded: LoadedCheckpoint | None) -> dict[str, Any]:
        """Load curriculum and counters from the checkpoint the learner was restored from
        (the newest complete one); count the episodes stored after it."""
        counters: dict[str, Any] = {}
        if loaded is not None:
            if "curriculum" in loaded.state:
                self.daemon.load_state_dict(loaded.state["curriculum"])
            counters = dict(loaded.state["counters"])
            self._resumed_events = dict(counters.get("metrics") or {})
            log.info("resumed from checkpoint %s", loaded.checkpoint.path.name)
        after = int(counters.get("last_episode_id", -1))
        for episode in self.store.iter_episodes(start_id=after + 1):
            self.events.episode_recounted(
                episode.goal_category, episode.goal_source, episode.success
            )
            counters["env_steps"] = int(counters.get("env_steps", 0)) + episode.length
            counters["episodes"] = int(counters.get("episodes", 0)) + 1
            counters["successes"] = int(counters.get("successes", 0)) + int(episode.success)
        return counters

    def _count_start(self, counters: dict[str, Any]) -> int:
        """This start's index (0 for a new run), persisted before any step.

        The seed streams of env scenes, action draws and replay derive from
        (run.seed, start index); counting starts in the store, durably and before
        the first step, gives every start new streams, also after a kill that
        came before the next checkpoint. A run directory from before this counter
        existed continues from its checkpoint's count.
        """
        saved = self.store.get_state(STARTS_KEY)
        start = int(saved) if saved is not None else int(counters.get("restarts", -1)) + 1
        self.store.put_state(STARTS_KEY, start + 1)
        return start

    def _announce(self) -> None:
        s = self.settings
        self.events.run_started(
            RunStart(
                version=__version__,
                learner=s.algorithm.name,
                model=s.model.path,
                policy_version=self.learner.policy_version,
                env_steps=self.collection.env_steps,
                updates=self.learner.num_updates,
                restored=self._resumed_events,
            )
        )
        log.info(
            "run %s (%s, %s): restart %d at %d env steps, %d updates, policy v%d, "
            "%d stored transitions",
            self.run_dir,
            s.env.id,
            s.algorithm.name,
            self.restarts,
            self.collection.env_steps,
            self.learner.num_updates,
            self.learner.policy_version,
            self.store.num_transitions,
        )

    # -- what happens per episode, and the control interface ---------------------------------

    def _on_episode(self, done: FinishedEpisode) -> None:
        self.schedule.record_steps(done.steps)
        self.subscribers.episode(done)

    def on_report(self, report: InjectionReport) -> None:
        """An injection's report, from wherever the goal daemon runs: counted, and handed
        to the subscribers."""
        if report.status in ("completed", "expired"):
            self.events.injection_finished(report.status)
        self.subscribers.report(report)

    def subscribe(
        self,
        *,
        episodes: EpisodeListener | None = None,
        reports: ReportListener | None = None,
        evaluations: EvaluationListener | None = None,
    ) -> None:
        """Hear every stored episode, injection report and finished evaluation from now on
        (:class:`~autotelic.runtime.loop.control.Control`)."""
        self.subscribers.add(episodes, reports, evaluations)

    def owed_results(self) -> list[dict[str, Any]]:
        """Injection results the goal daemon keeps until a consumer acknowledged them."""
        return self.daemon.owed_results()

    def acknowledge(self, message_id: str) -> bool:
        """A consumer has the result ``message_id``: the daemon's outbox drops it."""
        return self.daemon.acknowledge(message_id)

    def inject(
        self, goal: str, episodes: int = 1, *, priority: int = 0, ttl_s: float | None = None
    ) -> Accepted:
        """Queue a goal a person asked for (``episodes`` of it, served by ``priority``,
        unserved ones expiring after ``ttl_s``). Raises
        :class:`~autotelic.goals.InjectionRejected` with the reason when the goal space or
        the daemon refuses it; an infeasible goal is accepted, and said to be."""
        injection = self.daemon.inject(goal, episodes, priority=priority, ttl=ttl_s)
        return Accepted(
            injection_id=injection.id,
            goal=injection.goal,
            episodes=injection.episodes,
            feasible=self.goal_space.feasible(injection.goal),
        )

    # -- driving -----------------------------------------------------------------------------

    @property
    def done(self) -> bool:
        limit = self.settings.run.max_env_steps
        return self.stopping.is_set() or (limit is not None and self.collection.env_steps >= limit)

    def run_serial(self, hooks: list[tuple[int, StepHook]] | None = None) -> None:
        """Collect and learn in this thread, deterministically, until done.

        ``hooks`` are (every_env_steps, callback) pairs, e.g. evaluations or
        checkpoints; a checkpoint is also written at the end.
        """
        marks = {i: self.collection.env_steps // every for i, (every, _) in enumerate(hooks or [])}
        while not self.done:
            self.step_once()
            for i, (every, hook) in enumerate(hooks or []):
                if self.collection.env_steps // every > marks[i]:
                    marks[i] = self.collection.env_steps // every
                    hook(self)
        self.evaluate_if_none()
        self.checkpoint()

    def evaluate_if_none(self) -> None:
        """A run that reached ``run.max_env_steps`` with no finished evaluation in its
        record gets one now, at its end: with the default budget
        (``eval.max_cost_fraction``) a short run would otherwise never be measured. A run
        stopped by a signal is not held up by one."""
        limit = self.settings.run.max_env_steps
        if self.evaluator is None or self.evaluator.completed > 0:
            return
        if limit is None or self.collection.env_steps < limit:
            return
        log.info("the run ends before its first evaluation finished: evaluating now")
        self.evaluator.evaluate_now()

    def step_once(self) -> None:
        """One collection step and the learning it makes due (the serial unit of work, as
        the backend's driver does it)."""
        self.driver.step()

    def start_threads(self) -> list[threading.Thread]:
        """Start the backend driver's workers (``run.mode``'s: one serial loop, or a
        collector thread and, when the schedule learns apart, a learner thread) as guarded
        threads: one that fails stops the run."""
        return start_workers(self.driver.workers(), self.points, self.fail)

    def fail(self, err: BaseException) -> None:
        """Stop because of ``err``: the service exits non-zero and says why when offline."""
        if self.error is None:
            self.error = err
        self.stop()

    def stop(self) -> None:
        """Ask every loop to finish the step in hand and return."""
        self.stopping.set()
        self.schedule.stop()

    # -- saving ------------------------------------------------------------------------------

    def counters(self) -> dict[str, Any]:
        stored = self.store.index_snapshot().ids
        return {
            "env_steps": self.collection.env_steps,
            "episodes": self.collection.episodes,
            "successes": self.collection.successes,
            "updates": self.learner.num_updates,
            "policy_version": self.learner.policy_version,
            "last_episode_id": int(stored[-1]) if len(stored) else -1,
            "restarts": self.restarts,
            "saved_at": time.time(),
            # Under the name it always had, so older checkpoints' counters carry on.
            "metrics": dict(self.events.checkpoint_state(self._resumed_events)),
        }

    def checkpoint(self, pause: bool = False) -> None:
        """Save learner, curriculum and counters together, atomically.

        ``pause`` first parks the worker threads between steps (concurrent mode);
        the learner's state is read under the model lock either way.
        """
        if pause:
            self.points.pause(timeout=30)  # on timeout, save anyway: the lock keeps it sound
        try:
            with self.lock:
                learner_state = self.learner.state_dict()
                counters = self.counters()
                curriculum = self.daemon.state_dict()
            self.daemon.persist()
            self.checkpoints.save(
                {"learner": learner_state, "counters": counters, "curriculum": curriculum},
                step=counters["env_steps"],
                metadata={
                    "version": __version__,
                    "learner": self.settings.algorithm.name,
                    "env": self.settings.env.id,
                },
            )
        finally:
            if pause:
                self.points.resume()
        self.events.checkpoint_written(time.time())
        log.info("checkpoint at %d env steps", counters["env_steps"])

    def close(self) -> None:
        """Release the backend's parts, then the run's own pieces."""
        try:
            self.parts.close()
        finally:
            self._close_own()

    def _close_own(self) -> None:
        if self.evaluator is not None:
            self.evaluator.close()
        self.events.close()
        self.store.close()

    # -- views -------------------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        return Snapshot(
            env_steps=self.collection.env_steps,
            episodes=self.collection.episodes,
            successes=self.collection.successes,
            updates=self.learner.num_updates,
            policy_version=self.learner.policy_version,
            replay_transitions=self.store.num_transitions,
            started_from=self.started_from,
        )

    def status(self) -> AgentStatus:
        """Counters and health now, for whatever reports them (the MQTT status, a CLI)."""
        return AgentStatus(
            agent=self.settings.run.agent,
            pid=os.getpid(),
            learner=self.settings.algorithm.name,
            policy_version=self.learner.policy_version,
            env_steps=self.collection.env_steps,
            updates=self.learner.num_updates,
            episodes=self.collection.episodes,
            results_pending=self.daemon.results_pending,
            backend=self.settings.run.backend,
            failure=None if self.error is None else f"{type(self.error).__name__}: {self.error}",
            actors=self.parts.actors(),
        )

    def readings(self) -> Readings:
        """Figures that are read rather than counted (replay size, curriculum figures)."""
        stats = self.daemon.stats()
        return Readings(
            replay_transitions=self.store.num_transitions,
            replay_episodes=len(self.store),
            success_rate={k: c.success_rate for k, c in stats.categories.items()},
            learning_progress={k: c.mean_goal_lp for k, c in stats.categories.items()},
            goals_by_source=dict(stats.goals_by_source),
            injected_pending=stats.injected_episodes_pending,
            results_pending=self.daemon.results_pending,
        )

    def refresh_gauges(self) -> None:
        """Hand the latest :meth:`readings` to the run's events."""
        self.events.readings(self.readings())
