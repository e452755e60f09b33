"""What a backend supplies to a run: its parts, and what the parts may use of the run.

A run (:class:`~autotelic.runtime.loop.agent.Agent`) owns what every backend shares:
the learner and its checkpoints, the episode store, the event stream, the counters,
restoring and saving. The rest it asks of the :class:`RunParts` that ``run.backend``'s
registration supplies (:func:`autotelic.core.register_backend`):

- the goal service: where goals are drawn and outcomes reported (a daemon in this
  process, or a client of one elsewhere);
- the collection: what steps the environments and commits the episodes;
- the schedule of learning, when the backend has its own for a learner kind (otherwise
  the kind's registered one, :mod:`autotelic.runtime.loop.kinds`);
- the driver: the serial unit of work and the threads of a run started as a service
  (:mod:`autotelic.runtime.loop.drivers` for the local ones).

The parts see the run through :class:`Run`, its shared pieces by name, and never
subclass it: the local backend (:mod:`autotelic.runtime.loop.local`) and the Ray backend
(:mod:`autotelic.distributed.backend`) are two sets of parts for the same run.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from autotelic.core import AlgorithmSpec, EnvSpec, GoalSpace, Learner, LearnerKind
from autotelic.goals import CurriculumStats, GoalRecord, Injection, InjectionReport
from autotelic.runtime.evaluation.periodic import PeriodicEvaluator
from autotelic.runtime.loop.collector import EpisodeListener, FinishedEpisode, GoalService
from autotelic.runtime.loop.config import RunSettings
from autotelic.runtime.loop.control import ActorState
from autotelic.runtime.loop.coordination import SafePoints
from autotelic.runtime.loop.learner_loop import LearnerLoop
from autotelic.runtime.loop.rollout import RolloutRecorder
from autotelic.runtime.loop.schedules import Schedule
from autotelic.runtime.telemetry.events import EventStream
from autotelic.storage import EpisodeStore, RunLayout


class CurriculumService(GoalService, Protocol):
    """Everything the run and its control ask of the goal daemon: the in-process
    :class:`~autotelic.goals.GoalDaemon`, or a client of a daemon that lives elsewhere."""

    @property
    def results_pending(self) -> int:
        """Reports kept until a consumer acknowledged them."""
        ...

    def goals(self) -> list[GoalRecord]:
        """Every known goal."""
        ...

    def stats(self, detail: bool = False) -> CurriculumStats:
        """Figures for metrics."""
        ...

    def inject(
        self,
        goal: str,
        episodes: int = 1,
        *,
        priority: int = 0,
        expires_at: float | None = None,
        ttl: float | None = None,
    ) -> Injection:
        """Queue a goal people asked for."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """The curriculum's part of a checkpoint."""
        ...

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict`."""
        ...

    def persist(self) -> None:
        """Write the durable facts now."""
        ...

    def owed_results(self) -> list[dict[str, Any]]:
        """Unacknowledged injection reports."""
        ...

    def acknowledge(self, message_id: str) -> bool:
        """Drop a delivered report from the outbox."""
        ...


class Collection(Protocol):
    """What collects experience for the run: one local collector, or what drives collectors
    elsewhere; the run reads its counters and hears its episodes."""

    env_steps: int
    episodes: int
    successes: int
    recorder: RolloutRecorder | None
    """Where an on-policy learner's rollouts are recorded as the envs step, when they are
    recorded here (None: not recorded, or recorded elsewhere)."""

    @property
    def listeners(self) -> list[EpisodeListener]:
        """Called with every stored episode."""
        ...

    @property
    def prompts(self) -> list[str]:
        """The policy's input for each env's current state."""
        ...

    def start(self, seed: int) -> None:
        """Start an episode in every env."""
        ...

    def step(self) -> list[FinishedEpisode]:
        """One step of every env; the episodes that ended (stored)."""
        ...


class Run(Protocol):
    """What the parts, the drivers and the schedules may use of the run they serve."""

    settings: RunSettings
    """The run's configuration, the hardware profile applied."""
    layout: RunLayout
    store: EpisodeStore
    learner: Learner
    algorithm: AlgorithmSpec
    env_spec: EnvSpec
    goal_space: GoalSpace
    lock: threading.Lock
    """The model lock: held to read or write the learner's weights."""
    events: EventStream
    points: SafePoints
    stopping: threading.Event
    restarts: int
    """This start's index (0 for a new run): with ``run.seed``, the seed of its streams."""
    daemon: CurriculumService
    collection: Collection
    learner_loop: LearnerLoop
    schedule: Schedule
    evaluator: PeriodicEvaluator | None

    @property
    def done(self) -> bool:
        """Whether the run should stop (asked to, or at ``run.max_env_steps``)."""
        ...

    def on_report(self, report: InjectionReport) -> None:
        """An injection's report, from wherever the goal daemon runs."""
        ...

    def stop(self) -> None:
        """Ask every loop to finish the step in hand and return."""
        ...


@dataclass(frozen=True)
class Worker:
    """A thread a driver runs when the run is started as a service."""

    name: str
    body: Callable[[], None]
    safe_points: bool = True
    """Whether it parks at the safe points a checkpoint pauses at (it changes what a
    checkpoint saves); a side thread (the evaluator, a report relay) does not."""
    daemon: bool = False
    """Left running at interpreter exit (a learner mid-update)."""


class Driver(Protocol):
    """How a run advances: one unit of work in the caller's thread, or worker threads."""

    def step(self) -> None:
        """One collection step and the learning it makes due (the serial unit of work)."""
        ...

    def workers(self) -> list[Worker]:
        """The threads of the run started as a service."""
        ...


@runtime_checkable
class RunParts(Protocol):
    """What a backend supplies to a run (see the module docstring). Each method is called
    once, in this order, while the run is being built."""

    def goal_service(self, run: Run) -> CurriculumService:
        """Where goals are drawn and outcomes reported; it tells ``run.on_report`` of
        injection reports."""
        ...

    def collection(self, run: Run, act_rng: np.random.Generator) -> Collection:
        """What collects, acting with ``act_rng`` (the run's stream for action draws)."""
        ...

    def schedule(
        self, run: Run, kind: LearnerKind, replay_rng: np.random.Generator
    ) -> Schedule | None:
        """The backend's own schedule for learners of ``kind``, or None for the kind's
        registered one."""
        ...

    def driver(self, run: Run) -> Driver:
        """How the run advances, serially and as a service."""
        ...

    def actors(self) -> tuple[ActorState, ...] | None:
        """The collector actors the status shows, for a backend that has them."""
        ...

    def close(self) -> None:
        """Release what the parts hold (actors, a cluster connection); called once, also
        when building the run failed."""
        ...
