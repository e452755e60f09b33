"""The Ray backend: an :class:`~autotelic.runtime.loop.agent.Agent` whose collection runs in
collector actors and whose goal daemon is a shared named actor.

What stays here, in the service process (the Ray driver): the learner (on
``model.device``), the LMDB episode store and replay (the one writer), checkpoints,
periodic evaluation and the service around it (metrics, MQTT bridge). What changes:

- ``_goal_daemon``: a client of the goal actor (created on this node, or found by name);
- ``_collection``: :class:`~autotelic.distributed.collection.ClusterCollection`, which
  starts the collector actors; one driver thread per actor calls it for a batch of
  steps and commits what ended, after the schedule's back-pressure check, exactly as
  the local collector thread does;
- after each learner update (every ``ray.weights_every_updates``) the trainable weights
  are published to the object store for the actors;
- a thread relays the goal actor's injection reports to the service's listeners.

Restoring, checkpointing (the curriculum's learning state comes from the goal actor),
counters and the schedule of off-policy learning are the local agent's, unchanged.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable

import numpy as np

from autotelic.core import OnPolicyConfig
from autotelic.distributed.actors.collector import CollectorSpec
from autotelic.distributed.cluster import Connection, connect
from autotelic.distributed.collection import ClusterCollection
from autotelic.distributed.goal_actor import GoalDaemonClient, goal_actor
from autotelic.distributed.schedules import GatheredOnPolicySchedule
from autotelic.distributed.weights import WeightsBoard
from autotelic.runtime.config import Settings
from autotelic.runtime.loop.agent import Agent, Collection, CurriculumService
from autotelic.runtime.loop.collector import EpisodeCommitter
from autotelic.runtime.loop.control import ActorState, AgentStatus
from autotelic.runtime.loop.schedules import Schedule
from autotelic.runtime.telemetry.events import RunEvents

log = logging.getLogger(__name__)

REPORT_POLL_S = 0.25
"""How often injection reports are fetched from the goal actor."""


class RayAgent(Agent):
    """An agent whose collectors and goal daemon are Ray actors (see the module docstring)."""

    cluster: ClusterCollection
    """The collector actors and their accounts (also :attr:`collection`)."""

    def __init__(self, settings: Settings, events: RunEvents | None = None) -> None:
        self.ray_config = settings.ray
        self.connection: Connection = connect(settings.ray)
        self.board = WeightsBoard()
        self.goal_client: GoalDaemonClient | None = None
        self.goal_actor_created = False
        self.gathered: GatheredOnPolicySchedule | None = None
        self.requeued = 0
        """Injected episodes served again because the actor holding them died."""
        try:
            super().__init__(settings, events)
        except BaseException:
            self._release()
            raise

    # -- seams of the local agent --------------------------------------------------------------

    @property
    def goal_actor_name(self) -> str:
        """The goal actor's name: configured, or one per agent."""
        s = self.settings
        return s.ray.goal_daemon_name or f"autotelic-goals-{s.run.agent}"

    def _goal_daemon(self) -> CurriculumService:
        s = self.settings
        handle, created = goal_actor(
            self.goal_actor_name,
            s.ray.namespace,
            curriculum=s.curriculum,
            env=s.env,
            plugins=s.run.plugins,
            state_dir=(s.ray.goal_daemon_dir or self.layout.root / "goals").resolve(),
            keep_results=s.service.mqtt_enabled,
            detached=s.ray.goal_daemon_detached,
        )
        self.goal_actor_created = created
        self.goal_client = GoalDaemonClient(handle)
        return self.goal_client

    def _collection(self, act_rng: np.random.Generator) -> Collection:
        s = self.settings  # the profile applied
        per_actor = s.ray.envs_per_collector or s.env.num_envs
        self.recorder = None
        base = {
            "plugins": list(s.run.plugins),
            "env": {**s.env.model_dump(mode="json"), "num_envs": per_actor},
            "algorithm": s.algorithm.model_dump(mode="json"),
            "model": {**s.model.model_dump(mode="json"), "device": s.ray.collector_device},
            "time_limit": s.run.time_limit,
            "epsilon": s.collector.exploration_epsilon,
            "inference_batch": s.collector.inference_batch,
            "torch_threads": s.ray.collector_torch_threads,
            "goal_actor": self.goal_actor_name,
            "namespace": s.ray.namespace,
        }
        entropy = [int(x) for x in act_rng.integers(0, 2**31, size=2)]
        specs = [
            CollectorSpec(index=i, seed=[s.run.seed, self.restarts, i, *entropy], **base)
            for i in range(s.ray.num_collectors)
        ]
        committer = EpisodeCommitter(self.store, self.daemon, self.events)
        self.board.publish(self.learner, self.lock)  # the actors' first weights
        self.cluster = ClusterCollection(
            s.ray,
            specs,
            committer,
            self.board,
            current_version=lambda: int(self.learner.policy_version),
            events=self.events,
            on_death=self._requeue_lost,
        )
        return self.cluster

    def _requeue_lost(self, actor: int, committed: dict[str, int]) -> None:
        """An actor's process died: the injected episodes it held are served again now."""
        if self.goal_client is not None:
            self.requeued += self.goal_client.requeue_lost(actor, committed)

    def _schedule(self, replay_rng: np.random.Generator) -> Schedule:
        config = self.settings.algorithm
        if not isinstance(config, OnPolicyConfig):
            return super()._schedule(replay_rng)
        self.gathered = GatheredOnPolicySchedule(
            self.learner_loop,
            self.cluster,
            config.steps_per_update,
            after_update=self._publish,
        )
        return self.gathered

    # -- threads -------------------------------------------------------------------------------

    def start_threads(self) -> list[threading.Thread]:
        """One driver thread per collector actor, the learner thread, the report relay
        (and the evaluator, as in local mode)."""
        workers: list[tuple[str, Callable[[], None], bool]] = [
            (f"collector-{i}", self._drive(i), False) for i in range(len(self.cluster.actors))
        ]
        workers.append(("learner", self._learn_forever, True))
        threads = self._start_workers(workers)
        threads.append(self._start_side_thread("goal-reports", self._relay_reports))
        if self.evaluator is not None:
            evaluator = self.evaluator
            threads.append(
                self._start_side_thread("evaluator", lambda: evaluator.run(self.stopping))
            )
        return threads

    def _drive(self, i: int) -> Callable[[], None]:
        def body() -> None:
            name = threading.current_thread().name
            while not self.done:
                self.points.checkpoint(name)
                if not self.schedule.may_collect(timeout=0.5):
                    continue
                try:
                    self.cluster.collect(i)
                finally:
                    if self.gathered is not None:
                        self.gathered.collected()
            self.stop()

        return body

    def _learn_forever(self) -> None:
        every = self.settings.ray.weights_every_updates
        while not self.stopping.is_set():
            self.points.checkpoint("learner")
            learned = self.schedule.learn_once(timeout=0.5)
            if learned and self.gathered is None and self.learner.num_updates % every == 0:
                self._publish()

    def _publish(self) -> None:
        self.board.publish(self.learner, self.lock)

    def _relay_reports(self) -> None:
        assert self.goal_client is not None
        while not self.stopping.wait(REPORT_POLL_S):
            self._relay_once()
        self._relay_once()

    def _relay_once(self) -> None:
        assert self.goal_client is not None
        for report in self.goal_client.take_reports():
            self._on_report(report)

    def step_once(self) -> None:
        """One call of every actor side by side, and the learning it makes due."""
        self.collector.step()
        self.schedule.after_collect()
        if self.gathered is not None:
            self.gathered.learn_once(timeout=0)
        elif self.learner.num_updates % self.settings.ray.weights_every_updates == 0:
            self._publish()

    # -- views ---------------------------------------------------------------------------------

    def actor_states(self) -> tuple[ActorState, ...]:
        """What ``autotelic status`` shows of each collector actor."""
        return tuple(
            ActorState(
                actor=v.actor,
                pid=v.pid,
                node=v.node_ip,
                alive=v.alive,
                env_steps=v.env_steps,
                episodes=v.episodes,
                steps_per_s=round(v.steps_per_s, 2),
                policy_version=v.policy_version,
                lag=v.lag,
                restarts=v.restarts,
            )
            for v in self.cluster.views
        )

    def status(self) -> AgentStatus:
        return dataclasses.replace(super().status(), actors=self.actor_states())

    # -- ending --------------------------------------------------------------------------------

    def close(self) -> None:
        try:
            self._release()
        finally:
            super().close()

    def _release(self) -> None:
        """Stop the actors this run started and leave the cluster if we joined it."""
        import ray

        cluster: ClusterCollection | None = getattr(self, "cluster", None)
        if cluster is not None:
            cluster.close()
        owned = self.goal_actor_created and not self.ray_config.goal_daemon_detached
        if self.goal_client is not None and owned:
            try:
                ray.kill(self.goal_client.handle, no_restart=True)
            except Exception:
                log.debug("goal actor already gone", exc_info=True)
        self.connection.close()
