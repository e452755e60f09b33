"""The agent as a service: every component wired into one loop, with its lifecycle.

goal daemon -> collector (N envs, batched scoring) -> episode store (LMDB)
-> replay sampler (HER) -> learner -> new policy version -> collector.

:class:`Agent` owns the components and how they are restored and saved; it
runs them either serially (one thread, deterministic: tests and experiments)
or concurrently (a collector thread and a learner thread). :func:`serve` adds
what a long-lived service needs around it: metrics over HTTP, the MQTT bridge
(and an embedded broker when none is configured), signals, periodic
checkpoints, the progress line.

Restart semantics: counters, policy and curriculum come from the newest
complete checkpoint; episodes stored after it are still in the store (and in
replay) and are added back to the counters, so a kill -9 loses at most the
learning since that checkpoint, never a stored episode.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import yaml

from autotelic import __version__
from autotelic.envs.playground import PlaygroundBatch
from autotelic.goals import GoalDaemon, InjectionRejected, InjectionReport
from autotelic.learners.factory import build_learner
from autotelic.learners.ppo import PPOLearner
from autotelic.learners.sac import SACLearner
from autotelic.runtime.collector import Collector, FinishedEpisode
from autotelic.runtime.config import Settings, dump_settings
from autotelic.runtime.coordination import SafePoints, UpdateThrottle
from autotelic.runtime.learner_loop import LearnerLoop
from autotelic.runtime.messages import Acceptance, InjectRequest, Rejection, Status, Topics
from autotelic.runtime.metrics import Metrics, MetricsServer
from autotelic.runtime.progress import ProgressLine, Snapshot
from autotelic.runtime.rollout import RolloutRecorder
from autotelic.storage import CheckpointManager, EpisodeStore, ReplaySampler

if TYPE_CHECKING:
    from autotelic.runtime.broker import EmbeddedBroker
    from autotelic.runtime.mqtt import MQTTBridge

log = logging.getLogger(__name__)

ENDPOINTS_FILE = "endpoints.json"
CONFIG_SNAPSHOT = "config.yaml"
StepHook = Callable[["Agent"], None]


class ServiceError(RuntimeError):
    """The service cannot start as configured; the message says what to change."""


class Agent:
    """Store, curriculum, learner and collector of one run, restored from its directory."""

    def __init__(self, settings: Settings, metrics: Metrics | None = None) -> None:
        self.settings = settings
        self.run_dir = settings.run.dir.resolve()
        self.metrics = metrics
        self.lock = threading.Lock()
        self.points = SafePoints()
        self.stopping = threading.Event()
        self.error: BaseException | None = None
        self.listeners: list[Callable[[FinishedEpisode], None]] = []
        self.report_listeners: list[Callable[[InjectionReport], None]] = []
        self._open()

    # -- construction ------------------------------------------------------------------------

    def _open(self) -> None:
        s = self.settings
        self.run_dir.mkdir(parents=True, exist_ok=True)
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
        (self.run_dir / CONFIG_SNAPSHOT).write_text(yaml.safe_dump(dump_settings(s)))
        max_map = None
        if s.replay.max_map_size_gib is not None:
            max_map = int(s.replay.max_map_size_gib * 2**30)
        self.store = EpisodeStore(
            self.run_dir / "store",
            capacity_transitions=s.replay.capacity_transitions,
            durable=s.replay.durable,
            max_map_size=max_map,
        )
        self.daemon = GoalDaemon(s.curriculum, store=self.store, on_report=self._on_report)
        self.learner: SACLearner | PPOLearner = build_learner(s.model, s.algorithm)
        self.checkpoints = CheckpointManager(self.run_dir / "checkpoints", keep=s.checkpoint.keep)
        counters = self._restore()
        self.restarts = int(counters.get("restarts", -1)) + 1
        seeds = np.random.SeedSequence([s.run.seed, self.restarts])
        env_seed, act_seed, replay_seed = seeds.generate_state(3)
        self.envs = PlaygroundBatch(s.env.num_envs, s.env.playground)
        self.recorder = RolloutRecorder(s.env.num_envs) if s.run.learner == "ppo" else None
        self.collector = Collector(
            self.envs,
            self.learner,
            self.daemon,
            self.store,
            env_id=s.env.id,
            rng=np.random.default_rng(act_seed),
            lock=self.lock,
            metrics=self.metrics,
            recorder=self.recorder,
            inference_batch=s.collector.inference_batch,
        )
        self.collector.env_steps = int(counters.get("env_steps", 0))
        self.collector.episodes = int(counters.get("episodes", 0))
        self.collector.successes = int(counters.get("successes", 0))
        self.collector.listeners.append(self._on_episode)
        self.sampler = None
        if s.run.learner == "sac":
            self.sampler = ReplaySampler(
                self.store,
                her_ratio=s.replay.her_ratio,
                strategy=s.replay.strategy,
                n_step=s.sac.n_step,
                gamma=s.sac.gamma,
                rng=np.random.default_rng(replay_seed),
            )
        self.learner_loop = LearnerLoop(
            self.learner,
            sampler=self.sampler,
            batch_size=s.sac.batch_size,
            lock=self.lock,
            metrics=self.metrics,
        )
        self.throttle = UpdateThrottle(
            ratio=1.0 / s.sac.update_every,
            learning_starts=s.sac.learning_starts,
            max_lag_updates=s.collector.max_lag_updates,
        )
        self.throttle.restore(self.store.num_transitions, self.learner.num_updates)
        self.collector.start(seed=int(env_seed))
        if self.metrics is not None:
            self.metrics.info.labels(
                version=__version__, learner=s.run.learner, model=s.model.path
            ).set(1)
            self.metrics.policy_version.set(self.learner.policy_version)
            self.metrics.env_steps.inc(self.collector.env_steps)
            self.metrics.updates.inc(self.learner.num_updates)
        log.info(
            "run %s: restart %d at %d env steps, %d updates, policy v%d, %d stored transitions",
            self.run_dir,
            self.restarts,
            self.collector.env_steps,
            self.learner.num_updates,
            self.learner.policy_version,
            self.store.num_transitions,
        )

    def _restore(self) -> dict[str, Any]:
        """Load the newest complete checkpoint; count episodes stored after it."""
        loaded = self.checkpoints.load()
        counters: dict[str, Any] = {}
        if loaded is not None:
            self.learner.load_state_dict(loaded.state["learner"], write_lock=self.lock)
            counters = dict(loaded.state["counters"])
            log.info("resumed from checkpoint %s", loaded.checkpoint.path.name)
        after = int(counters.get("last_episode_id", -1))
        for episode in self.store.iter_episodes(start_id=after + 1):
            counters["env_steps"] = int(counters.get("env_steps", 0)) + episode.length
            counters["episodes"] = int(counters.get("episodes", 0)) + 1
            counters["successes"] = int(counters.get("successes", 0)) + int(episode.success)
        return counters

    # -- what happens per episode ------------------------------------------------------------

    def _on_episode(self, done: FinishedEpisode) -> None:
        self.throttle.record_steps(done.steps)
        for listener in self.listeners:
            listener(done)

    def _on_report(self, report: InjectionReport) -> None:
        if self.metrics is not None and report.status in ("completed", "expired"):
            self.metrics.injected_goals.labels(status=report.status).inc()
        for listener in self.report_listeners:
            listener(report)

    def inject(self, request: InjectRequest) -> Acceptance | Rejection:
        """Hand a person's goal request to the daemon; the reply says what became of it."""
        try:
            injection = self.daemon.inject(
                request.goal, request.episodes, priority=request.priority, ttl=request.ttl_s
            )
        except InjectionRejected as err:
            return Rejection(reason=str(err), request_id=request.request_id)
        return Acceptance(
            injection_id=injection.id,
            goal=injection.goal,
            episodes=injection.episodes,
            request_id=request.request_id,
        )

    # -- driving -----------------------------------------------------------------------------

    @property
    def done(self) -> bool:
        limit = self.settings.run.max_env_steps
        return self.stopping.is_set() or (limit is not None and self.collector.env_steps >= limit)

    def run_serial(self, hooks: list[tuple[int, StepHook]] | None = None) -> None:
        """Collect and learn in this thread, deterministically, until done.

        ``hooks`` are (every_env_steps, callback) pairs, e.g. evaluations or
        checkpoints; a checkpoint is also written at the end.
        """
        marks = {i: self.collector.env_steps // every for i, (every, _) in enumerate(hooks or [])}
        while not self.done:
            self.step_once()
            for i, (every, hook) in enumerate(hooks or []):
                if self.collector.env_steps // every > marks[i]:
                    marks[i] = self.collector.env_steps // every
                    hook(self)
        self.checkpoint()

    def step_once(self) -> None:
        """One collection step and the learning it makes due (the serial unit of work)."""
        self.collector.step()
        if isinstance(self.learner, PPOLearner):
            self._maybe_ppo_update()
            return
        while self.throttle.owed() > 0:
            self.learner_loop.train_step()
            self.throttle.record_update()

    def _maybe_ppo_update(self) -> None:
        assert self.recorder is not None
        if self.recorder.num_steps >= self.settings.ppo.steps_per_update:
            self.learner_loop.train_on(self.recorder.take(self.collector.prompts))
            self.throttle.record_update()

    def start_threads(self) -> list[threading.Thread]:
        """The workers of ``run.mode``: one serial loop, or a collector thread and (for
        SAC) a learner thread."""
        workers: list[tuple[str, Callable[[], None], bool]]  # name, body, daemon
        if self.settings.run.mode == "serial":
            workers = [("serial", self._step_forever, False)]
        else:
            workers = [("collector", self._collect_forever, False)]
            if isinstance(self.learner, SACLearner):
                workers.append(("learner", self._learn_forever, True))
        threads = [
            threading.Thread(target=self._guard(body), name=name, daemon=daemon)
            for name, body, daemon in workers
        ]
        for t in threads:
            self.points.register(t.name)
            t.start()
        return threads

    def _guard(self, body: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            name = threading.current_thread().name
            try:
                body()
            except BaseException as err:  # reported by the supervisor, which stops the run
                log.exception("%s thread failed", name)
                self.error = err
                self.stop()
            finally:
                self.points.unregister(name)

        return run

    def _step_forever(self) -> None:
        while not self.done:
            self.points.checkpoint("serial")
            self.step_once()
        self.stop()

    def _collect_forever(self) -> None:
        ppo = isinstance(self.learner, PPOLearner)
        while not self.done:
            self.points.checkpoint("collector")
            if ppo:
                self.collector.step()
                self._maybe_ppo_update()
            elif self.throttle.wait_for_room(timeout=0.5):
                self.collector.step()
        self.stop()

    def _learn_forever(self) -> None:
        while not self.stopping.is_set():
            self.points.checkpoint("learner")
            if self.throttle.wait_for_work(timeout=0.5):
                self.learner_loop.train_step()
                self.throttle.record_update()

    def stop(self) -> None:
        """Ask every loop to finish the step in hand and return."""
        self.stopping.set()
        self.throttle.stop()

    # -- saving ------------------------------------------------------------------------------

    def counters(self) -> dict[str, Any]:
        stored = self.store.index_snapshot().ids
        return {
            "env_steps": self.collector.env_steps,
            "episodes": self.collector.episodes,
            "successes": self.collector.successes,
            "updates": self.learner.num_updates,
            "policy_version": self.learner.policy_version,
            "last_episode_id": int(stored[-1]) if len(stored) else -1,
            "restarts": self.restarts,
            "saved_at": time.time(),
        }

    def checkpoint(self, pause: bool = False) -> None:
        """Save learner, curriculum and counters atomically.

        ``pause`` first parks the worker threads between steps (concurrent mode);
        the learner's state is read under the model lock either way.
        """
        if pause:
            self.points.pause(timeout=30)  # on timeout, save anyway: the lock keeps it sound
        try:
            with self.lock:
                learner_state = self.learner.state_dict()
                counters = self.counters()
            self.daemon.persist()
            self.checkpoints.save(
                {
                    "learner": learner_state,
                    "counters": counters,
                    "curriculum": self.daemon.state_dict(),
                },
                step=counters["env_steps"],
                metadata={"version": __version__, "learner": self.settings.run.learner},
            )
        finally:
            if pause:
                self.points.resume()
        if self.metrics is not None:
            self.metrics.checkpoints.inc()
            self.metrics.last_checkpoint.set(time.time())
        log.info("checkpoint at %d env steps", counters["env_steps"])

    def close(self) -> None:
        self.store.close()

    # -- views -------------------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        return Snapshot(
            env_steps=self.collector.env_steps,
            episodes=self.collector.episodes,
            successes=self.collector.successes,
            updates=self.learner.num_updates,
            policy_version=self.learner.policy_version,
            replay_transitions=self.store.num_transitions,
        )

    def status(self) -> Status:
        return Status(
            state="online",
            agent=self.settings.run.agent,
            pid=os.getpid(),
            learner=self.settings.run.learner,
            policy_version=self.learner.policy_version,
            env_steps=self.collector.env_steps,
            updates=self.learner.num_updates,
            episodes=self.collector.episodes,
        )

    def refresh_gauges(self) -> None:
        """Metrics that are read rather than counted (replay size, curriculum figures)."""
        m = self.metrics
        if m is None:
            return
        m.replay_transitions.set(self.store.num_transitions)
        m.replay_episodes.set(len(self.store))
        stats = self.daemon.stats()
        for category, c in stats.categories.items():
            m.success_rate.labels(category=category).set(c.success_rate)
            m.learning_progress.labels(category=category).set(c.mean_goal_lp)
        for source, count in stats.goals_by_source.items():
            m.goals_known.labels(source=source).set(count)
        m.injected_pending.set(stats.injected_episodes_pending)


# -- the service ---------------------------------------------------------------------------


async def serve(settings: Settings, ready: Callable[[dict[str, Any]], None] | None = None) -> int:
    """Run the agent as a service until SIGTERM/SIGINT (or ``max_env_steps``).

    Returns the exit code: 0 after a clean stop, 1 if a worker failed.
    """
    metrics = Metrics()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    server = None
    if settings.metrics.enabled:
        try:
            server = MetricsServer(metrics, settings.metrics.host, settings.metrics.port)
        except OSError as err:
            where = f"{settings.metrics.host}:{settings.metrics.port}"
            raise ServiceError(
                f"cannot serve metrics on {where}: {err.strerror or err}; choose another "
                "metrics.port (AUTOTELIC_METRICS__PORT, 0 picks a free one)"
            ) from None
    try:
        agent = await loop.run_in_executor(None, Agent, settings, metrics)
    except BaseException:
        if server is not None:
            server.close()
        raise
    broker, bridge, bridge_task = await _start_mqtt(settings, agent, metrics)
    endpoints = {
        "agent": settings.run.agent,
        "pid": os.getpid(),
        "metrics": server.url if server else None,
        "mqtt": bridge.config.url if bridge else None,
        "topic_prefix": bridge.topics.prefix if bridge else None,
    }
    (agent.run_dir / ENDPOINTS_FILE).write_text(json.dumps(endpoints, indent=2))
    threads = agent.start_threads()
    if ready is not None:
        ready(endpoints)
    log.info("autotelic running: %s", json.dumps(endpoints))
    try:
        await _supervise(agent, stop, settings)
    finally:
        code = await _shutdown(agent, threads, bridge, bridge_task, broker, server, settings)
    return code


async def _start_mqtt(
    settings: Settings, agent: Agent, metrics: Metrics
) -> tuple[EmbeddedBroker | None, MQTTBridge | None, asyncio.Task[None] | None]:
    if not settings.service.mqtt_enabled:
        return None, None, None
    # Imported here: headless runs (experiments, GPU boxes) need no MQTT packages.
    from autotelic.runtime.broker import EmbeddedBroker
    from autotelic.runtime.mqtt import MQTTBridge

    broker = None
    config = settings.mqtt
    if config.url is None:
        broker = EmbeddedBroker(port=config.embedded_port)
        await broker.start()
        config = config.model_copy(update={"url": broker.url})
    topics = Topics(settings.run.agent, config.topic_root)
    bridge = MQTTBridge(
        config,
        topics,
        agent.inject,
        agent.status,
        client_id=f"autotelic-{settings.run.agent}",
        metrics=metrics,
    )
    agent.report_listeners.append(lambda report: bridge.publish(topics.results, report.to_dict()))
    agent.listeners.append(
        lambda done: bridge.publish(
            topics.episodes,
            {
                "episode_id": done.episode_id,
                "goal": done.goal,
                "category": done.category,
                "source": done.source,
                "injection_id": done.injection_id,
                "success": done.success,
                "steps": done.steps,
                "policy_version": done.policy_version,
            },
            qos=0,
        )
    )
    task = asyncio.create_task(bridge.run())
    return broker, bridge, task


async def _supervise(agent: Agent, stop: asyncio.Event, settings: Settings) -> None:
    """Wait for a stop; meanwhile refresh gauges, print progress, checkpoint periodically."""
    loop = asyncio.get_running_loop()
    progress = ProgressLine()
    interval = settings.service.progress_interval_s
    next_progress = time.monotonic() + interval
    next_checkpoint = time.monotonic() + settings.checkpoint.interval_s
    while not stop.is_set() and not agent.stopping.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=1.0)
        agent.refresh_gauges()
        now = time.monotonic()
        if now >= next_progress:
            progress.emit(agent.snapshot())
            next_progress = now + interval
        if now >= next_checkpoint and not agent.stopping.is_set():
            await loop.run_in_executor(None, lambda: agent.checkpoint(pause=True))
            next_checkpoint = time.monotonic() + settings.checkpoint.interval_s


async def _shutdown(
    agent: Agent,
    threads: list[threading.Thread],
    bridge: MQTTBridge | None,
    bridge_task: asyncio.Task[None] | None,
    broker: EmbeddedBroker | None,
    server: MetricsServer | None,
    settings: Settings,
) -> int:
    """Finish the step in hand, checkpoint, say offline, close everything."""
    loop = asyncio.get_running_loop()
    deadline = time.monotonic() + settings.service.stop_timeout_s
    agent.stop()
    for t in threads:
        # The learner may be mid-update; its optimizer step waits for the lock we take
        # to checkpoint, so it need not be joined for the checkpoint to be consistent.
        wait = 0.5 if t.name == "learner" else max(0.1, deadline - time.monotonic() - 5)
        await loop.run_in_executor(None, t.join, wait)
    code = 0
    if agent.error is not None:
        log.error("stopping after a worker failed: %r", agent.error)
        code = 1
    try:
        await loop.run_in_executor(None, agent.checkpoint)
    except Exception:
        log.exception("final checkpoint failed")
        code = 1
    agent.refresh_gauges()
    if bridge is not None and bridge_task is not None:
        bridge.stop()
        try:
            await asyncio.wait_for(bridge_task, timeout=max(1.0, deadline - time.monotonic()))
        except TimeoutError:
            log.warning("MQTT bridge did not stop in time")
            bridge_task.cancel()
    if broker is not None:
        await broker.stop()
    if server is not None:
        server.close()
    agent.close()
    return code


def read_endpoints(run_dir: Path) -> dict[str, Any]:
    """The endpoints a running (or last) service of ``run_dir`` published."""
    path = run_dir / ENDPOINTS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: has `autotelic run` been started there?")
    data: dict[str, Any] = json.loads(path.read_text())
    return data
