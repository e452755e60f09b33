"""The Ray backend's parts: collection in collector actors, the goal daemon a shared named
actor (see :mod:`autotelic.runtime.loop.parts` for what a backend supplies).

What stays in the service process (the Ray driver) is the run's own: the learner (on
``model.device``), the LMDB episode store and replay (the one writer), checkpoints,
periodic evaluation, the counters, and the service around it (metrics, MQTT bridge).
What :class:`RayParts` supplies instead of the local parts:

- the goal service: a client of the goal actor (created on this node, or found by name);
- the collection: :class:`~autotelic.distributed.collection.ClusterCollection`, which
  starts the collector actors and commits what they collect;
- for on-policy learners, a schedule that gathers every actor's rollout
  (:class:`~autotelic.distributed.schedules.GatheredOnPolicySchedule`); off-policy
  learning keeps the kind's registered schedule;
- the driver (:mod:`autotelic.distributed.driver`): one thread per actor, the learner
  thread publishing weights to the object store, the relay of the goal actor's
  injection reports.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

from autotelic.core import LearnerKind, OnPolicyConfig
from autotelic.distributed.actors.collector import CollectorSpec
from autotelic.distributed.cluster import Connection, connect
from autotelic.distributed.collection import ClusterCollection
from autotelic.distributed.driver import RayDriver
from autotelic.distributed.goal_actor import GoalDaemonClient, goal_actor
from autotelic.distributed.schedules import GatheredOnPolicySchedule
from autotelic.distributed.weights import WeightsBoard
from autotelic.runtime.config import RayConfig, Settings
from autotelic.runtime.loop.agent import Agent
from autotelic.runtime.loop.collector import EpisodeCommitter
from autotelic.runtime.loop.control import ActorState
from autotelic.runtime.loop.parts import CurriculumService, Driver, Run
from autotelic.runtime.loop.schedules import Schedule

log = logging.getLogger(__name__)


class RayParts:
    """The goal actor's client, the collector actors and their driver (module docstring)."""

    cluster: ClusterCollection
    """The collector actors and their accounts (the run's collection)."""

    def __init__(self, settings: Settings) -> None:
        self.config: RayConfig = settings.ray
        self.connection: Connection = connect(settings.ray)
        self.board = WeightsBoard()
        self.goal_client: GoalDaemonClient | None = None
        self.goal_actor_created = False
        self.gathered: GatheredOnPolicySchedule | None = None
        self.requeued = 0
        """Injected episodes served again because the actor holding them died."""
        self.own_schedules: dict[str, Callable[[Run], Schedule]] = {
            "on_policy": self._gathered_on_policy
        }
        """The learner kinds this backend schedules its own way (the rest: as registered)."""

    def goal_actor_name(self, run: Run) -> str:
        """The goal actor's name: configured, or one per agent."""
        return self.config.goal_daemon_name or f"autotelic-goals-{run.settings.run.agent}"

    # -- the parts -----------------------------------------------------------------------------

    def goal_service(self, run: Run) -> CurriculumService:
        s = run.settings
        handle, created = goal_actor(
            self.goal_actor_name(run),
            self.config.namespace,
            curriculum=s.curriculum,
            env=s.env,
            plugins=s.run.plugins,
            state_dir=(self.config.goal_daemon_dir or run.layout.root / "goals").resolve(),
            keep_results=s.service.mqtt_enabled,
            detached=self.config.goal_daemon_detached,
        )
        self.goal_actor_created = created
        self.goal_client = GoalDaemonClient(handle)
        return self.goal_client

    def collection(self, run: Run, act_rng: np.random.Generator) -> ClusterCollection:
        s = run.settings  # the profile applied
        per_actor = self.config.envs_per_collector or s.env.num_envs
        base = {
            "plugins": list(s.run.plugins),
            "env": {**s.env.model_dump(mode="json"), "num_envs": per_actor},
            "algorithm": s.algorithm.model_dump(mode="json"),
            "model": {**s.model.model_dump(mode="json"), "device": self.config.collector_device},
            "time_limit": s.run.time_limit,
            "epsilon": s.collector.exploration_epsilon,
            "precursor_share": s.collector.precursor_share,
            "precursor_length": s.collector.precursor_length,
            "precursor_steps": s.collector.precursor_steps,
            "inference_batch": s.collector.inference_batch,
            "torch_threads": self.config.collector_torch_threads,
            "goal_actor": self.goal_actor_name(run),
            "namespace": self.config.namespace,
        }
        entropy = [int(x) for x in act_rng.integers(0, 2**31, size=2)]
        specs = [
            CollectorSpec(index=i, seed=[s.run.seed, run.restarts, i, *entropy], **base)
            for i in range(self.config.num_collectors)
        ]
        committer = EpisodeCommitter(run.store, run.daemon, run.events)
        self.board.publish(run.learner, run.lock)  # the actors' first weights
        learner = run.learner
        self.cluster = ClusterCollection(
            self.config,
            specs,
            committer,
            self.board,
            current_version=lambda: int(learner.policy_version),
            events=run.events,
            on_death=self._requeue_lost,
        )
        return self.cluster

    def schedule(
        self, run: Run, kind: LearnerKind, replay_rng: np.random.Generator
    ) -> Schedule | None:
        own = self.own_schedules.get(kind)
        return own(run) if own is not None else None

    def driver(self, run: Run) -> Driver:
        return RayDriver(run, self)

    def actors(self) -> tuple[ActorState, ...] | None:
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

    def close(self) -> None:
        """Stop the actors this run started and leave the cluster if we joined it."""
        import ray

        cluster: ClusterCollection | None = getattr(self, "cluster", None)
        if cluster is not None:
            cluster.close()
        owned = self.goal_actor_created and not self.config.goal_daemon_detached
        if self.goal_client is not None and owned:
            try:
                ray.kill(self.goal_client.handle, no_restart=True)
            except Exception:
                log.debug("goal actor already gone", exc_info=True)
        self.connection.close()

    # -- what the parts do for each other -------------------------------------------------------

    def _gathered_on_policy(self, run: Run) -> Schedule:
        config = run.settings.algorithm
        assert isinstance(config, OnPolicyConfig)  # the kind says so: this narrows the type
        self.gathered = GatheredOnPolicySchedule(
            run.learner_loop,
            self.cluster,
            config.steps_per_update,
            after_update=lambda: self.publish(run),
        )
        return self.gathered

    def publish(self, run: Run) -> None:
        """The learner's trainable weights to the object store, for the actors."""
        self.board.publish(run.learner, run.lock)

    def _requeue_lost(self, actor: int, committed: dict[str, int]) -> None:
        """An actor's process died: the injected episodes it held are served again now."""
        if self.goal_client is not None:
            self.requeued += self.goal_client.requeue_lost(actor, committed)


def parts_of(agent: Agent) -> RayParts:
    """The Ray parts of a run built with ``run.backend: ray`` (its actors, the goal actor's
    client, what they count), for tests and benchmarks that look inside."""
    if not isinstance(agent.parts, RayParts):
        raise TypeError(f"run.backend is {agent.settings.run.backend!r}, not ray")
    return agent.parts
