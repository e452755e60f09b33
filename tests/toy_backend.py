"""A third-party backend, defined outside the package: listing this module in
``run.plugins`` registers ``toy-inline``, which supplies a run with parts of its own
(nothing subclassed: a goal daemon, a collector, a schedule that learns on every step and
a driver that counts its steps), and ``toy-broken``, which supplies something else."""

from __future__ import annotations

from typing import Any

import numpy as np

from autotelic.core import LearnerKind, OffPolicyConfig, register_backend
from autotelic.goals import GoalDaemon
from autotelic.runtime.loop.collector import Collector
from autotelic.runtime.loop.control import ActorState
from autotelic.runtime.loop.parts import CurriculumService, Driver, Run, Worker
from autotelic.runtime.loop.schedules import InlineSchedule, Schedule
from autotelic.storage import ReplaySampler


class EveryStep(InlineSchedule):
    """One replayed update after every collection step, once ``learning_starts``
    transitions are stored: a schedule no built-in learner kind has."""

    def __init__(self, run: Run, sampler: ReplaySampler, config: OffPolicyConfig) -> None:
        super().__init__()
        self.run, self.sampler, self.config = run, sampler, config

    def after_collect(self) -> None:
        if self.run.store.num_transitions >= self.config.learning_starts:
            self.run.learner_loop.train_step(self.sampler, self.config.batch_size)


class CountingDriver:
    """Collect, learn, count: serially, or in one thread of its own as a service."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.steps = 0

    def step(self) -> None:
        self.run.collection.step()
        self.run.schedule.after_collect()
        self.steps += 1

    def workers(self) -> list[Worker]:
        return [Worker("toy-loop", self._forever)]

    def _forever(self) -> None:
        while not self.run.done:
            self.run.points.checkpoint("toy-loop")
            self.step()
        self.run.stop()


class ToyParts:
    """The parts of ``toy-inline``, each built here from the run's shared pieces."""

    def __init__(self, settings: Any) -> None:
        self.closed = False
        self.counting: CountingDriver | None = None

    def goal_service(self, run: Run) -> CurriculumService:
        return GoalDaemon(run.settings.curriculum, goal_space=run.goal_space, store=run.store,
                          on_report=run.on_report)  # fmt: skip

    def collection(self, run: Run, act_rng: np.random.Generator) -> Collector:
        s = run.settings
        envs = run.env_spec.make_batch(s.env)
        return Collector(envs, run.learner, run.daemon, run.store, env_id=s.env.id, rng=act_rng,
                         lock=run.lock, events=run.events, time_limit=s.run.time_limit)  # fmt: skip

    def schedule(self, run: Run, kind: LearnerKind, replay_rng: np.random.Generator) -> Schedule:
        config = run.settings.algorithm
        assert isinstance(config, OffPolicyConfig)
        sampler = ReplaySampler.from_config(
            run.settings.replay, run.store, run.goal_space, n_step=config.n_step,
            gamma=config.gamma, time_limit=run.settings.run.time_limit, rng=replay_rng,
        )  # fmt: skip
        return EveryStep(run, sampler, config)

    def driver(self, run: Run) -> Driver:
        self.counting = CountingDriver(run)
        return self.counting

    def actors(self) -> tuple[ActorState, ...] | None:
        steps = self.counting.steps if self.counting is not None else 0
        return (ActorState(actor=0, pid=0, node="toy", alive=True, env_steps=steps, episodes=0,
                           steps_per_s=0.0, policy_version=0, lag=0, restarts=0),)  # fmt: skip

    def close(self) -> None:
        self.closed = True


register_backend(
    "toy-inline", parts=ToyParts, description="a plug-in's own parts, run in this process",
    modes=("serial",),
)  # fmt: skip
register_backend("toy-broken", parts=lambda settings: object(), description="no parts")
