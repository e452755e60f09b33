"""The schedules: when learning is due, for each kind of learner.

A schedule answers three questions the drivers ask: after a collection step,
what learning is due now (the serial driver, and the collector thread of an
on-policy run, run it inline); may the collector step now (back-pressure); and,
for a learner thread, is an update due. The serial driver (tests, experiments:
one thread, deterministic) and the concurrent one (a collector thread and, for
off-policy learning, a learner thread; both in ``agent``) drive the same schedule
objects, built from the primitives of ``coordination``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from autotelic.core import OffPolicyConfig
from autotelic.runtime.loop.coordination import TimeShares, UpdateThrottle, WhenBehind
from autotelic.runtime.loop.learner_loop import LearnerLoop
from autotelic.runtime.loop.rollout import RolloutRecorder
from autotelic.storage import ReplaySampler


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
        env_steps: int,
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
        # The run's env steps, not the store's transitions: past the replay's capacity
        # the store holds fewer, and counting from them would stop updates on resume
        # until the run had collected the evicted steps again.
        self.throttle.restore(env_steps, loop.learner.num_updates)
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


class InlineSchedule:
    """A schedule that learns only in :meth:`after_collect`, in the collecting thread: it
    never holds the collector back, has no learner thread and counts nothing. Subclasses
    say when to learn there (an on-policy one, or a plug-in's)."""

    learner_thread = False

    def __init__(self) -> None:
        self.shares = TimeShares()

    def after_collect(self) -> None:
        """Learn now if due."""

    def may_collect(self, timeout: float) -> bool:
        return True

    def learn_once(self, timeout: float) -> bool:
        return False

    def record_steps(self, n: int) -> None:
        """Inline learning counts what it needs itself."""

    def stop(self) -> None:
        """Nothing waits on an inline schedule."""


class OnPolicySchedule(InlineSchedule):
    """One update on every ``steps_per_update`` env steps just collected, inline (rollouts
    count their own steps)."""

    def __init__(
        self,
        loop: LearnerLoop,
        recorder: RolloutRecorder,
        steps_per_update: int,
        current_prompts: Callable[[], list[str]],
    ) -> None:
        super().__init__()
        self.loop = loop
        self.recorder = recorder
        self.steps_per_update = steps_per_update
        self.current_prompts = current_prompts

    def after_collect(self) -> None:
        if self.recorder.num_steps >= self.steps_per_update:
            with self.shares.timing("learning"):
                self.loop.train_on(self.recorder.take(self.current_prompts()))
