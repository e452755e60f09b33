"""How collection and learning share time, for each kind of learner.

A schedule answers three questions the drivers ask: after a collection step,
what learning is due now (the serial driver, and the collector thread of an
on-policy run, run it inline); may the collector step now (back-pressure); and,
for a learner thread, is an update due. The serial driver (tests, experiments:
one thread, deterministic) and the concurrent one (a collector thread and, for
off-policy learning, a learner thread) drive the same schedule objects.

How the two share time also depends on the hardware, so :func:`apply_profile`
resolves ``run.profile`` first. On a CPU, one SAC update of the paper's 256
transitions with SmolLM2 takes minutes while collection makes ~10 env steps a
second; the ``cpu`` profile keeps the paper's *replay ratio* (transitions learned
per env step) with smaller, more frequent updates, and lets collection go on
while the learner is behind (``collector.when_learner_behind: skip``). The
measurements that chose it are in docs/performance.md.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, Protocol

from autotelic.core import OffPolicyConfig
from autotelic.runtime.loop.coordination import TimeShares, UpdateThrottle, WhenBehind
from autotelic.runtime.loop.learner_loop import LearnerLoop
from autotelic.runtime.loop.rollout import RolloutRecorder
from autotelic.storage import ReplaySampler

if TYPE_CHECKING:
    from autotelic.runtime.config import Settings

log = logging.getLogger(__name__)

Profile = Literal["cpu", "paper"]

CPU_PROFILE: dict[str, Any] = {"batch_size": 16, "update_every": 4}
"""Off-policy settings of the ``cpu`` profile, for fields the configuration leaves unset.

16 transitions every 4 env steps replays 4 transitions per env step, as the
paper's 256 every 64 do, in updates short enough (4-5 s for SmolLM2 in bfloat16 on
one core of a quiet 2-core machine, against 26 s for 64) that the progress line
shows updates in every 10-second interval.
"""


CPU_EVAL_INTERVAL = 2_000
"""``eval.interval_env_steps`` of the ``cpu`` profile when the configuration leaves it
unset. At the 5-10 env steps/s of a 2-core laptop (docs/performance.md) an evaluation
(about 500 env steps at the defaults, capped at eval.max_cost_fraction of the training
steps) then finishes after about 5,000 training steps, some ten minutes into a first
session; at 10,000 the first point came after half an hour.
"""


def resolve_profile(settings: Settings) -> Profile:
    """``run.profile``, with ``auto`` decided: ``cpu`` for a concurrent run on the CPU
    (where a slow learner would freeze collection); ``paper`` otherwise, since serial
    runs are experiments and keep exactly what they configure."""
    chosen = settings.run.profile
    if chosen != "auto":
        return chosen
    on_cpu = settings.model.device.split(":")[0] == "cpu"
    return "cpu" if on_cpu and settings.run.mode == "concurrent" else "paper"


def apply_profile(settings: Settings) -> Settings:
    """``settings`` with the hardware profile applied to the fields it decides.

    The profile never overrides a field the configuration sets: only algorithm
    fields left at their defaults change, and ``collector.when_learner_behind``
    when it is ``auto``. Each change is logged; the run directory's
    ``config.yaml`` records the values used.
    """
    profile = resolve_profile(settings)
    algorithm = settings.algorithm
    changes: list[str] = []
    if profile == "cpu" and isinstance(algorithm, OffPolicyConfig):
        # Without an `algorithm` section nothing in it was set (its default is validated
        # again, which marks every field as set); with one, pydantic knows what it gave.
        given = algorithm.model_fields_set if "algorithm" in settings.model_fields_set else set()
        unset = {
            key: value
            for key, value in CPU_PROFILE.items()
            if key not in given and getattr(algorithm, key) != value
        }
        changes += [f"algorithm.{k} {getattr(algorithm, k)} -> {v}" for k, v in unset.items()]
        algorithm = algorithm.model_copy(update=unset)
    collector = settings.collector
    if collector.when_learner_behind == "auto":
        when = when_learner_behind(settings)
        collector = collector.model_copy(update={"when_learner_behind": when})
        changes.append(f"collector.when_learner_behind auto -> {when}")
    evaluation = settings.eval
    if profile == "cpu" and "interval_env_steps" not in evaluation.model_fields_set:
        changes.append(
            f"eval.interval_env_steps {evaluation.interval_env_steps} -> {CPU_EVAL_INTERVAL}"
        )
        evaluation = evaluation.model_copy(update={"interval_env_steps": CPU_EVAL_INTERVAL})
    run = settings.run.model_copy(update={"profile": profile})
    if changes:
        log.info(
            "profile %s (run.profile %s): %s; set a field to keep your own value",
            profile,
            settings.run.profile,
            ", ".join(changes),
        )
    return settings.model_copy(
        update={"algorithm": algorithm, "collector": collector, "run": run, "eval": evaluation}
    )


def when_learner_behind(settings: Settings) -> WhenBehind:
    """``collector.when_learner_behind``, with ``auto`` decided by the profile."""
    chosen = settings.collector.when_learner_behind
    if chosen != "auto":
        return chosen
    return "skip" if resolve_profile(settings) == "cpu" else "wait"


class Schedule(Protocol):
    """When the learner learns, relative to the collector."""

    learner_thread: bool
    """Whether learning runs in its own thread in concurrent mode."""
    shares: TimeShares
    """Seconds spent learning (``learning``) and, concurrently, waiting for the learner
    (``collector_waiting``)."""

    def after_collect(self) -> None:
        """Run the learning a collection step made due (serial driver, or inline)."""
        ...

    def may_collect(self, timeout: float) -> bool:
        """Collector side, concurrent mode: block while learning lags too far behind."""
        ...

    def learn_once(self, timeout: float) -> bool:
        """Learner thread: run one update if one is due within ``timeout``."""
        ...

    def record_steps(self, n: int) -> None:
        """The collector stored episodes of ``n`` more env steps."""
        ...

    def stop(self) -> None:
        """Release every waiter for good."""
        ...


class OffPolicySchedule:
    """Replayed updates at ``1 / update_every`` per env step, from ``learning_starts`` on."""

    learner_thread = True

    def __init__(
        self,
        config: OffPolicyConfig,
        loop: LearnerLoop,
        sampler: ReplaySampler,
        *,
        max_lag_updates: int,
        stored_transitions: int,
        when_behind: WhenBehind = "wait",
    ) -> None:
        self.loop = loop
        self.sampler = sampler
        self.batch_size = config.batch_size
        self.throttle = UpdateThrottle(
            ratio=1.0 / config.update_every,
            learning_starts=config.learning_starts,
            max_lag_updates=max_lag_updates,
            when_behind=when_behind,
        )
        self.throttle.restore(stored_transitions, loop.learner.num_updates)
        self.shares = TimeShares()

    def _update(self) -> None:
        with self.shares.timing("learning"):
            # Micro-batches report their progress, credited to the collector's room.
            self.loop.train_step(
                self.sampler, self.batch_size, progress=self.throttle.record_progress
            )
        self.throttle.record_update()

    def after_collect(self) -> None:
        while self.throttle.owed() > 0:
            self._update()

    def may_collect(self, timeout: float) -> bool:
        with self.shares.timing("collector_waiting"):
            return self.throttle.wait_for_room(timeout=timeout)

    def learn_once(self, timeout: float) -> bool:
        if not self.throttle.wait_for_work(timeout=timeout):
            return False
        self._update()
        return True

    def record_steps(self, n: int) -> None:
        self.throttle.record_steps(n)

    def stop(self) -> None:
        self.throttle.stop()


class OnPolicySchedule:
    """One update on every ``steps_per_update`` env steps just collected, inline."""

    learner_thread = False

    def __init__(
        self,
        loop: LearnerLoop,
        recorder: RolloutRecorder,
        steps_per_update: int,
        current_prompts: Callable[[], list[str]],
    ) -> None:
        self.loop = loop
        self.recorder = recorder
        self.steps_per_update = steps_per_update
        self.current_prompts = current_prompts
        self.shares = TimeShares()

    def after_collect(self) -> None:
        if self.recorder.num_steps >= self.steps_per_update:
            with self.shares.timing("learning"):
                self.loop.train_on(self.recorder.take(self.current_prompts()))

    def may_collect(self, timeout: float) -> bool:
        return True

    def learn_once(self, timeout: float) -> bool:
        return False

    def record_steps(self, n: int) -> None:
        """Rollouts count their own steps."""

    def stop(self) -> None:
        """Nothing waits on an on-policy schedule."""
