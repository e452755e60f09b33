"""A collector actor: the runtime's :class:`~autotelic.runtime.loop.collector.Collector` on an
env batch of its own, with its own copy of the policy, in a Ray worker process.

It is the local collector with one change: episodes that end are not stored here but
handed back with the call that collected them (:class:`HandOffCollector`), so the one
process that writes the store stores them, durably, before anyone hears of them.
Goals come from the shared goal actor. Before collecting, the actor loads the newest
published weights when its copy is older (:mod:`autotelic.distributed.weights`), and
records the version that acted at every step.

If Ray restarts the actor after its process died, the constructor runs again: a fresh
env batch on new seeds; only the episodes that were unfinished (or finished but not
yet handed back) are lost.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import ray
import torch
from pydantic import BaseModel, ConfigDict, Field

from autotelic.core import OnPolicyConfig, Rollout, algorithm_spec, env_spec, load_plugins
from autotelic.core.registry import algorithm_config, env_config
from autotelic.core.time_limit import TimeLimit
from autotelic.distributed.goal_actor import GoalDaemonClient
from autotelic.distributed.records import CollectedBatch, EndedEpisode
from autotelic.distributed.weights import Published, load_weights
from autotelic.goals import GoalAssignment
from autotelic.learners.models import ModelConfig
from autotelic.runtime.loop.collector import Collector, FinishedEpisode
from autotelic.runtime.loop.precursors import Precursors
from autotelic.runtime.loop.rollout import RolloutRecorder
from autotelic.storage import Episode, EpisodeBuilder


class CollectorSpec(BaseModel):
    """Everything an actor needs to build its collector: plain data, sent once."""

    model_config = ConfigDict(extra="forbid")

    index: int = Field(description="The actor's number, 0..num_collectors-1.")
    plugins: list[str] = Field(description="Plug-in modules to import first (run.plugins).")
    env: dict[str, Any] = Field(description="The env section, num_envs set for this actor.")
    algorithm: dict[str, Any] = Field(description="The algorithm section (after the profile).")
    model: dict[str, Any] = Field(description="The model section, device set for this actor.")
    time_limit: TimeLimit = Field(description="run.time_limit.")
    epsilon: float = Field(description="collector.exploration_epsilon.")
    precursor_share: float = Field(
        0.0, description="collector.precursor_share (each actor learns from its own episodes)."
    )
    precursor_length: int = Field(3, description="collector.precursor_length.")
    precursor_steps: int = Field(6, description="collector.precursor_steps.")
    inference_batch: int | None = Field(description="collector.inference_batch.")
    torch_threads: int = Field(description="torch threads in the actor.")
    seed: list[int] = Field(description="Entropy of the actor's seeds (run seed, start, index).")
    goal_actor: str = Field(description="Name of the goal-daemon actor.")
    namespace: str = Field(description="Its Ray namespace.")


class _NoStore:
    """A collector actor stores nothing itself: ended episodes leave through its outbox."""

    def put_many(self, episodes: Sequence[Episode]) -> list[int]:
        raise RuntimeError("a collector actor hands episodes back; it never stores them")


class HandOffCollector(Collector):
    """A :class:`Collector` whose ended episodes wait in :attr:`outbox` for the store writer
    instead of being stored and reported here; each carries ``provenance`` (which actor,
    process and node collected it) in its ``extra`` field."""

    outbox: list[EndedEpisode]
    provenance: dict[str, Any]

    def _finish(
        self, ended: list[tuple[EpisodeBuilder, GoalAssignment]], version: int
    ) -> list[FinishedEpisode]:
        for builder, assignment in ended:
            built = builder.build()
            episode = built.model_copy(
                update={"extra": {**built.extra, "collector": dict(self.provenance)}}
            )
            self.outbox.append(EndedEpisode(episode, assignment, version))
        return []


class CollectorActor:
    """One env batch and one policy copy, stepped on request (see the module docstring)."""

    def __init__(self, spec: CollectorSpec) -> None:
        load_plugins(spec.plugins)
        torch.set_num_threads(spec.torch_threads)
        self.spec = spec
        env = env_config(spec.env)
        algorithm = algorithm_config(spec.algorithm)
        self.learner = algorithm_spec(algorithm.name).build(
            ModelConfig.model_validate(spec.model), algorithm
        )
        # The process id joins the seeds: a restarted actor draws new streams.
        seeds = np.random.SeedSequence([*spec.seed, os.getpid()])
        env_seed, act_seed = seeds.generate_state(2)
        self.recorder = (
            RolloutRecorder(env.num_envs, time_limit=spec.time_limit)
            if isinstance(algorithm, OnPolicyConfig)
            else None
        )
        goals = GoalDaemonClient(
            ray.get_actor(spec.goal_actor, namespace=spec.namespace), holder=spec.index
        )
        self.collector = HandOffCollector(
            env_spec(env.id).make_batch(env),
            self.learner,
            goals,
            _NoStore(),
            env_id=env.id,
            rng=np.random.default_rng(act_seed),
            recorder=self.recorder,
            inference_batch=spec.inference_batch,
            epsilon=spec.epsilon,
            time_limit=spec.time_limit,
            precursors=Precursors(
                spec.precursor_share, spec.precursor_length, spec.precursor_steps
            ),
        )
        self.node_ip = str(ray.util.get_node_ip_address())  # type: ignore[no-untyped-call]
        self.collector.outbox = []
        self.collector.provenance = {"actor": spec.index, "pid": os.getpid(), "node": self.node_ip}
        self.num_envs = env.num_envs
        self.learner.policy_version = -1  # no published weights loaded yet
        self._env_seed = int(env_seed)
        self._started = False

    def _refresh(self, latest: list[Published]) -> None:
        """Load the newest published weights if this copy is older."""
        if latest and latest[0].version != self.learner.policy_version:
            load_weights(self.learner, ray.get(latest[0].ref))

    def collect(self, steps: int, latest: list[Published]) -> CollectedBatch:
        """``steps`` steps of the whole batch with the newest weights; returns what ended.

        ``latest`` is a one-element list so that Ray passes the reference unresolved:
        the weights are fetched only when their version is new to this actor.
        """
        began = time.perf_counter()
        self._refresh(latest)
        if not self._started:
            self.collector.start(seed=self._env_seed)
            self._started = True
        versions = []
        for _ in range(steps):
            versions.append(int(self.learner.policy_version))
            self.collector.step()
        ended, self.collector.outbox = self.collector.outbox, []
        return CollectedBatch(
            actor=self.spec.index,
            env_steps=steps * self.num_envs,
            ended=ended,
            acting_versions=versions,
            seconds=time.perf_counter() - began,
            rollout_steps=self.recorder.num_steps if self.recorder is not None else 0,
            pid=os.getpid(),
            node_ip=self.node_ip,
        )

    def take_rollout(self) -> Rollout | None:
        """The on-policy rollout collected since the last call (then cleared); None when
        there is none."""
        if self.recorder is None or self.recorder.num_steps == 0:
            return None
        return self.recorder.take(self.collector.prompts)

    def where(self) -> tuple[int, str]:
        """This actor's process id and node address."""
        return os.getpid(), self.node_ip
