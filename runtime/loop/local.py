"""The local backend's parts: everything in this process.

The goal daemon runs on the run's own store, one :class:`Collector` steps this
process's env batch (recording rollouts when the learner's kind asks for them), the
learner kind's registered schedule decides when to learn, and the serial or the
concurrent driver (``run.mode``) advances the run.
"""

from __future__ import annotations

import numpy as np

from autotelic.core import LearnerKind, TextEnvBatch
from autotelic.goals import GoalDaemon
from autotelic.runtime.loop.collector import Collector
from autotelic.runtime.loop.config import RunSettings
from autotelic.runtime.loop.control import ActorState
from autotelic.runtime.loop.drivers import ConcurrentDriver, SerialDriver
from autotelic.runtime.loop.kinds import schedule_kind
from autotelic.runtime.loop.parts import CurriculumService, Driver, Run
from autotelic.runtime.loop.precursors import Precursors
from autotelic.runtime.loop.rollout import RolloutRecorder
from autotelic.runtime.loop.schedules import Schedule


class LocalParts:
    """The goal daemon, the collector and the driver of a run in this process."""

    envs: TextEnvBatch
    """The collector's env batch as the env made it (the collector acts through the
    time-limit wrapper of ``run.time_limit``)."""

    def __init__(self, settings: RunSettings | None = None) -> None:
        """``settings`` is unused: the parts read the run's, the profile applied."""

    def goal_service(self, run: Run) -> CurriculumService:
        s = run.settings
        return GoalDaemon(
            s.curriculum,
            goal_space=run.goal_space,
            store=run.store,
            on_report=run.on_report,
            keep_results=s.service.mqtt_enabled,  # the MQTT bridge acknowledges them
        )

    def collection(self, run: Run, act_rng: np.random.Generator) -> Collector:
        s = run.settings
        self.envs = run.env_spec.make_batch(s.env)
        rollouts = schedule_kind(run.algorithm.kind).records_rollouts
        recorder = (
            RolloutRecorder(s.env.num_envs, time_limit=s.run.time_limit) if rollouts else None
        )
        return Collector(
            self.envs,
            run.learner,
            run.daemon,
            run.store,
            env_id=s.env.id,
            rng=act_rng,
            lock=run.lock,
            events=run.events,
            recorder=recorder,
            inference_batch=s.collector.inference_batch,
            epsilon=s.collector.exploration_epsilon,
            time_limit=s.run.time_limit,
            precursors=Precursors(
                share=s.collector.precursor_share,
                length=s.collector.precursor_length,
                allowance=s.collector.precursor_steps,
            ),
        )

    def schedule(
        self, run: Run, kind: LearnerKind, replay_rng: np.random.Generator
    ) -> Schedule | None:
        return None  # the kind's registered schedule

    def driver(self, run: Run) -> Driver:
        if run.settings.run.mode == "serial":
            return SerialDriver(run)
        return ConcurrentDriver(run)

    def actors(self) -> tuple[ActorState, ...] | None:
        return None

    def close(self) -> None:
        """Nothing beyond the run's own pieces, which the run closes."""
